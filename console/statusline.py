"""`gatewatch statusline [--db PATH] [--config gatewatch.toml]`: reads the JSON Claude Code pipes to its
`statusLine` command and prints one line from the store (see proxy/reports/statusline.py). Imports nothing heavy (not
even argparse: its two options are read by hand)."""

from __future__ import annotations

import os
import sys

from proxy.paths import default_path
from proxy.reports.statusline import caps_from, line, read, session_of, store_from

USAGE = """usage: gatewatch statusline [--db PATH] [--config FILE]

One line for Claude Code's statusLine: the session's cost at Gemini prices, tokens, context fill, the model
that answered, budget left. Reads Claude Code's JSON on standard input.

  --db PATH      SQLite store (default: the config's [store] path, else $GATEWATCH_DB, else
                 $XDG_DATA_HOME/gatewatch/gatewatch.db)
  --config FILE  the gateway's gatewatch.toml, for its [store] and its [budget] caps
"""


def options(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name in ("--db", "--config"):
            out[name[2:]] = value if eq else next(it, "")
        elif arg in ("-h", "--help"):
            out["help"] = "1"
        else:
            raise SystemExit(f"gatewatch statusline: unknown argument {arg!r}\n\n{USAGE}")
    return out


def main(argv: list[str] | None = None, stdin: str | None = None) -> int:
    opts = options(sys.argv[2:] if argv is None else argv)
    if "help" in opts:
        print(USAGE)
        return 0
    text = sys.stdin.read() if stdin is None else stdin
    sid = session_of(text)
    if not sid:
        print("gatewatch · no session id on stdin")
        return 0
    # where the gateway writes, as the other commands find it: --db, the config's [store], the default
    db = opts.get("db") or store_from(opts.get("config")) or str(default_path())
    if db.startswith(("postgresql://", "postgres://")):
        print("gatewatch · the statusline reads a SQLite store; this config's store is PostgreSQL")
    elif not os.path.exists(db):
        print(f"gatewatch · no store at {db}")
    else:
        print(line(read(db, sid), caps_from(opts.get("config"))))
    return 0
