"""`gatewatch statusline [--db PATH] [--config gatewatch.toml]`: reads the JSON Claude Code pipes to its
`statusLine` command and prints one line from the store (see proxy/statusline.py). Imports nothing heavy."""

from __future__ import annotations

import argparse
import sys

from proxy.paths import default_path
from proxy.statusline import caps_from, line, read, session_of


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gatewatch statusline",
        description="One line for Claude Code's statusLine: the session's cost at Gemini prices, tokens, "
        "context fill, the model that answered, budget left.",
    )
    p.add_argument(
        "--db", help="SQLite store (default: $GATEWATCH_DB or $XDG_DATA_HOME/gatewatch/gatewatch.db)"
    )
    p.add_argument("--config", help="the gateway's gatewatch.toml, for its [budget] caps")
    return p


def main(argv: list[str] | None = None, stdin: str | None = None) -> int:
    args = parser().parse_args(argv)
    text = sys.stdin.read() if stdin is None else stdin
    sid = session_of(text)
    facts = read(args.db or default_path(), sid) if sid else None
    print(line(facts, caps_from(args.config)) if sid else "gatewatch · no session id on stdin")
    return 0
