"""Real Claude Code (`claude` on PATH) run headless against a loopback gateway; tests use the anthropic SDK
where it is not installed."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import claude_cli

CLAUDE = claude_cli.CLAUDE
"""the CLI these tests drive (`GATEWATCH_TEST_CLAUDE` names another release): one place, `claude_cli`"""


@dataclass
class Run:
    code: int
    out: str
    err: str

    def result(self) -> dict[str, Any]:
        """`--output-format json`'s result object."""
        parsed: dict[str, Any] = json.loads(self.out.strip().splitlines()[-1])
        return parsed


def env(base_url: str, home: Path, **extra: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return claude_cli.env(base_url, home, **extra)


async def prompt(base_url: str, text: str, home: Path, *args: str, timeout: float = 180, **extra: str) -> Run:
    """`claude -p TEXT --output-format json`, awaited without blocking the loop the gateway runs on."""
    assert CLAUDE is not None
    proc = await asyncio.create_subprocess_exec(
        CLAUDE,
        "-p",
        text,
        "--output-format",
        "json",
        *args,
        env=env(base_url, home, **extra),
        cwd=str(home),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Run(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
