"""The `gatewatch` command: `statusline` goes straight to its lean module (Claude Code waits for it after every
message), everything else to the full CLI."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:2] == ["statusline"]:
        from console.statusline import main as statusline

        return statusline(sys.argv[2:])
    from console.cli import main as cli

    return cli()
