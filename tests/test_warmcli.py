"""The tests' warm CLI (tests/warmcli.py) starts `python -m console.cli` as the real interpreter does: the same
output and exit status, the caller's environment and working directory, signals delivered to the command itself,
and a cold start wherever the interpreter would start differently."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp

from tests import warmcli
from tests.conftest import API_KEY

CLI = [sys.executable, "-m", "console.cli"]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    return {**out, "PYTHONPATH": warmcli.ROOT, **extra}


def test_a_warm_command_prints_and_exits_as_a_cold_one(tmp_path):
    e = env(XDG_DATA_HOME=str(tmp_path / "xdg"))
    for args in (["nonsense"], ["stats", "--db", "relative.db"]):  # a usage error; the store in the cwd
        assert warmcli._warm_ok([*CLI, *args], {"env": e, "cwd": tmp_path})
        warm = warmcli.run([*CLI, *args], capture_output=True, text=True, env=e, cwd=tmp_path, timeout=60)
        cold = subprocess.run([*CLI, *args], capture_output=True, text=True, env=e, cwd=tmp_path, timeout=60)
        assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr), (
            args
        )
    # the caller's environment and working directory, not the warm process's
    r = warmcli.run([*CLI, "stats"], capture_output=True, text=True, env=e, cwd=tmp_path, timeout=60)
    assert f"{tmp_path / 'xdg'}/gatewatch/gatewatch.db: no such database (from the default)" in r.stderr
    r = warmcli.run(
        [*CLI, "stats", "--db", "relative.db"], capture_output=True, text=True, env=e, cwd=tmp_path
    )
    assert f"{tmp_path / 'relative.db'}: no such database (from --db)" in r.stderr


def test_what_the_warm_process_cannot_reproduce_starts_cold(tmp_path):
    e = env()
    assert warmcli._warm_ok([*CLI, "stats"], {"env": e})
    assert not warmcli._warm_ok([sys.executable, "-c", "pass"], {"env": e})  # only the CLI is preloaded
    assert not warmcli._warm_ok([*CLI, "stats"], {"env": {**e, "PYTHONIOENCODING": "latin-1"}})
    assert not warmcli._warm_ok([*CLI, "stats"], {"env": {**e, "TZ": "Asia/Kolkata"}})
    assert not warmcli._warm_ok([*CLI, "stats"], {"env": e, "preexec_fn": os.setsid})
    assert not warmcli._warm_ok([*CLI, "stats"], {"env": e, "cwd": tmp_path / "missing"})
    r = warmcli.run(
        [*CLI, "--version"], capture_output=True, text=True, env={**e, "PYTHONIOENCODING": "latin-1"}
    )
    assert r.returncode == 0 and r.stdout.startswith("gatewatch ")  # run by the real interpreter


async def test_signals_reach_the_command_and_its_exit_status_is_reported(tmp_path, fake):
    async def serve() -> asyncio.subprocess.Process:
        e = env(GEMINI_API_KEY=API_KEY, GEMINI_API_ENDPOINT=fake.url)
        proc = await warmcli.create_subprocess_exec(
            *CLI, "serve", "--port", "0", "--db", str(tmp_path / "s.db"), env=e,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        url = line.decode().split("listening on ")[1].split()[0]
        async with aiohttp.ClientSession() as http, http.get(url + "/health") as r:
            assert r.status == 200  # serving: past its start-up, signal handlers set
        return proc

    proc = await serve()
    proc.send_signal(signal.SIGTERM)  # a graceful stop: it drains, flushes and says so
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0 and b"records written" in err
    proc = await serve()
    proc.kill()
    assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
    with warmcli.Popen([*CLI, "--version"], env=env(), stdout=subprocess.PIPE) as sync:
        assert sync.wait(30) == 0 and sync.stdout.read().startswith(b"gatewatch ")
