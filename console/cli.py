"""`gatewatch`'s command line: without a command the console, else one of COMMANDS, each a module of
console/commands/ (its arguments and its `run`). `gatewatch --help` is `description()` and EXAMPLES."""

# The dispatcher: the parser from each command's module (console/commands/), then the command's `run`.

from __future__ import annotations

import argparse
import sys
import textwrap

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


EXAMPLES = """examples:
  gatewatch                    # the console: watches the gateway, or runs one
  gatewatch serve --port 8000  # the gateway alone, one line per call
  gatewatch demo               # the console on a simulated Gemini, no keys
  gatewatch claude             # Claude Code through the gateway
  gatewatch --config g.toml claude --target pro -p "explain this repo"
  gatewatch show req_3f2a      # what the gateway did to one call
  gatewatch export model:flash since:2h --format kong --output calls.jsonl
  gatewatch stats since:1d     # calls, tokens, cost and latency per model
  gatewatch stats --by session --by agent since:1d
  gatewatch stats since:1d --price-as gemini-2.5-flash-lite  # at its prices
  gatewatch replay 3f9a1c --target studio  # a stored call again, on studio
  gatewatch replay model:pro since:1d --target flash --limit 20 --yes
  gatewatch statusline --config gatewatch.toml < claude-code-status.json
  gatewatch prune --older-than 30d
"""


def description() -> str:
    """What `gatewatch --help` says first (in 80 columns): what gatewatch is, then every command, from
    COMMANDS, so that none is left out of the list."""
    names = list(COMMANDS)
    commands = f"Without a command, the console. Commands: {', '.join(names[:-1])} and {names[-1]}"
    return (
        "gatewatch: Claude Code (or any Anthropic API client) through your own gateway to\n"
        "Google Gemini, with every call recorded and shown.\n\n"
        + textwrap.fill(commands + " (each with --help).", 80)
        + "\n\n"
        + EXAMPLES
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gatewatch", description=description(), formatter_class=argparse.RawDescriptionHelpFormatter
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
