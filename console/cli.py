"""`gatewatch`: the console (default), `serve`, `demo`, `export`, `stats`, `replay`, `prune`. A thin layer over `proxy`.

Examples:
    gatewatch                                  # console + gateway on 127.0.0.1:8000
    gatewatch serve --port 8000                # headless, one line per call
    gatewatch demo                             # console on a simulated upstream, no credentials
    gatewatch export model:flash since:2h --format kong --output calls.jsonl
    gatewatch stats since:1d
    gatewatch stats --by session --by agent since:1d
    gatewatch stats since:1d --price-as gemini-2.5-flash-lite   # the same usage at another model's prices
    gatewatch replay 3f9a1c --target studio    # one stored call again, on another target, side by side
    gatewatch replay model:pro since:1d --target flash --limit 20 --yes
    gatewatch show req_3f2a                    # what the gateway did to one call (an id or a prefix)
    gatewatch prune --older-than 30d
    gatewatch statusline --config gatewatch.toml < claude-code-status.json
    gatewatch claude                           # Claude Code through the gateway, set up for its first target
    gatewatch --config g.toml claude --target pro -p "explain this repo"   # anything after is Claude Code's
"""

# The dispatcher: the parser from each command's module (console/commands/), then the command's `run`. The
# docstring above is `gatewatch --help`'s description.

from __future__ import annotations

import argparse
import sys

from proxy import __version__

from .commands import Command, bootstrap, claude, demo, export, interactive, prune, replay, serve, show, stats
from .commands import statusline as statusline_command

COMMANDS: dict[str, Command] = {
    "serve": serve,
    "demo": demo,
    "export": export,
    "stats": stats,
    "replay": replay,
    "show": show,
    "statusline": statusline_command,
    "claude": claude,
    "prune": prune,
}
"""in the order `gatewatch --help` lists them; without a command, the console (commands/interactive.py)"""
FILTERED = ("export", "stats", "replay")
"""the commands whose words are a filter: `-word` there is a negated term, not an option"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gatewatch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bootstrap.common(p, sub=False)
    p.add_argument("--version", action="version", version=f"gatewatch {__version__}")
    interactive.add_options(p)
    sub = p.add_subparsers(dest="command")
    for command in COMMANDS.values():
        command.add(sub)
    return p


def negations_as_terms(argv: list[str]) -> tuple[list[str], list[str]]:
    """`gatewatch export -model:pro` means the filter term, not an option: for export and stats, a word that
    starts with a single "-" and is not one of their options is taken out as a filter term.
    Returns (argv for argparse, the terms taken out)."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] not in FILTERED or "--" in argv:
        return argv, []
    keep, terms = [], []
    for a in argv:
        if a.startswith("-") and not a.startswith("--") and a not in ("-o", "-h", "-y") and len(a) > 1:
            terms.append(a)
        else:
            keep.append(a)
    return keep, terms


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["statusline"]:
        from console.statusline import main as statusline

        return statusline(argv[1:])
    if "claude" in argv:  # what follows is Claude Code's, untouched; gatewatch's options come before it
        known, _ = parser().parse_known_args(argv)
        if known.command == "claude":
            return claude.run(known, argv[argv.index("claude") + 1 :])
    argv, negated = negations_as_terms(argv)
    args = parser().parse_args(argv)
    run = COMMANDS[args.command].run if args.command else interactive.run
    return run(args, negated)


if __name__ == "__main__":
    sys.exit(main())
