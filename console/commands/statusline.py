"""`gatewatch statusline`: one line for Claude Code's statusLine. console/cli.py hands `gatewatch statusline …`
to console/statusline.py before it builds any parser (Claude Code waits for the line after every message);
the parser lists it for --help."""

from __future__ import annotations

import argparse

from . import Subcommands


def add(sub: Subcommands) -> None:
    sub.add_parser("statusline", help="one line for Claude Code's statusLine (reads its JSON on stdin)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    """`gatewatch --config F statusline`: the options given before the command are the statusline's."""
    from console.statusline import main

    given = [(f"--{name}", getattr(args, name, None)) for name in ("db", "config")]
    return main([word for option, value in given if value for word in (option, value)])
