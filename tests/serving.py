"""`gatewatch serve` as a real subprocess on a free loopback port, for the tests that need a separate gateway."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests import warmcli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(
    env_extra: dict[str, str], tmp_path: Path, *args: str, db: str = "s.db", cwd: Path | None = None
) -> tuple[asyncio.subprocess.Process, int]:
    """Start `serve` with the machine's GEMINI_/GCP_/GATEWATCH_ variables replaced by `env_extra`, on `db`
    in `tmp_path`; returns the process (stdout and stderr piped) and its port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    env.update(env_extra)
    env["PYTHONPATH"] = ROOT
    proc = await warmcli.create_subprocess_exec(
        sys.executable,
        "-m",
        "console.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        str(tmp_path / db),
        *args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    return proc, port
