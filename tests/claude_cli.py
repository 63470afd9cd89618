"""The real Claude Code CLI against a loopback gateway, where it is installed (CI installs it from npm)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

CLAUDE = os.environ.get("GATEWATCH_TEST_CLAUDE") or shutil.which("claude")
"""`GATEWATCH_TEST_CLAUDE=/path/to/claude` tries another release (e.g. one installed to a scratch prefix)."""


def env(url: str, home: Path, **extra: str) -> dict[str, str]:
    """A fresh HOME, the gateway as base URL, any client credential (the gateway has no token here)."""
    out = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "anything",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    out.update(extra)
    return out


async def run(url: str, home: Path, *args: str, timeout: float = 180, **extra: str) -> dict[str, Any]:
    """`claude -p … --output-format json`, its result object (with `stderr` added)."""
    assert CLAUDE is not None
    home.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        CLAUDE,
        "-p",
        *args,
        "--output-format",
        "json",
        env=env(url, home, **extra),
        cwd=str(home),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    try:
        result: dict[str, Any] = json.loads(out.decode())
    except ValueError:
        raise AssertionError(
            f"claude printed no JSON: {out.decode()[:500]!r} {err.decode()[:500]!r}"
        ) from None
    result["stderr"] = err.decode()
    return result
