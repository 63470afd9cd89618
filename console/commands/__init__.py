"""The `gatewatch` commands, one module each: its arguments (`add`, called by console/cli.py as it builds the
parser) and what it does (`run`). What several share (the config, the store, the common options, dying with a
message) is in bootstrap.py; each command imports its heavy parts when it runs, not when the parser is built."""

from __future__ import annotations

import argparse
from typing import Protocol, TypeAlias

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""what `add_subparsers()` returns: each command adds its parser to it"""


class Command(Protocol):
    """A command's module."""

    def add(self, sub: Subcommands) -> None:
        """Add the command's parser (its name, help, arguments)."""

    def run(self, args: argparse.Namespace, extra: list[str]) -> int:
        """Do it; the exit status. `extra`: the words argparse was not given (a filter's negated terms,
        Claude Code's own arguments)."""
