"""`gatewatch serve` as a user runs it: the seed's environment variables, a real process, a real store."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys

import anthropic
import pytest

from proxy.simulator import Reply
from tests.conftest import API_KEY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serve(env_extra: dict, tmp_path, *args):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_"))}
    env.update(env_extra)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "console.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        str(tmp_path / "s.db"),
        *args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path if args else None,
    )
    return proc, port


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
async def test_serve_with_the_seed_variables_answers_and_records(provider, fake, sa_json, tmp_path):
    if provider == "gemini":
        env = {"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}
    else:
        env = {
            "GCP_PROJECT_ID": "example-project",
            "GEMINI_LOCATION_ID": "europe-west4",
            "GEMINI_API_ENDPOINT": fake.url,
            "GEMINI_API_KEY": sa_json,
        }
    proc, port = await _serve(env, tmp_path)
    env_cwd = os.getcwd()
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert (
            f"listening on http://127.0.0.1:{port}" in banner and f"({provider} gemini-2.5-flash)" in banner
        )
        fake.script(Reply.text("served"))
        client = anthropic.AsyncAnthropic(
            base_url=f"http://127.0.0.1:{port}", api_key="sk-ant-x", max_retries=0
        )
        msg = await client.messages.create(
            model="claude-opus-5-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        await client.close()
        assert msg.content[0].text == "served"
        if provider == "vertex":
            assert "/locations/europe-west4/" in fake.received[-1].path
        line = ""
        while "→" not in line or "claude-opus-5-5" not in line:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert " 200 claude-opus-5-5 → " in line and "oneshot" in line and "ms" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert b"1 records written, 0 lost" in err
    assert env_cwd == os.getcwd()
    from proxy.store import Store

    assert Store(tmp_path / "s.db").count() == 1


async def test_a_config_error_names_file_and_key_and_exits_before_listening(tmp_path):
    (tmp_path / "gatewatch.toml").write_text(
        '[[targets]]\nname = "x"\nprovider = "vertex"\nmodel = "m"\n[gateway]\nport = "eighty"\n'
    )
    proc, _ = await _serve({}, tmp_path, "--config", "gatewatch.toml")
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"listening" not in out
    text = err.decode()
    assert (
        "gatewatch.toml: gateway.port" in text
        and "gatewatch.toml: targets[0] (x): provider 'vertex' needs project_id" in text
    )


async def test_without_any_target_serve_says_what_to_set(tmp_path):
    proc, _ = await _serve({}, tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"set GEMINI_API_KEY" in err


async def test_export_and_stats_commands(tmp_path):
    from proxy.store import Store
    from tests.test_store import make

    store = Store(tmp_path / "s.db").start()
    for i in range(4):
        store.submit(make(i, status=500 if i == 0 else 200))
    store.close()
    out = tmp_path / "out.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "export",
            "status:200",
            "--db",
            str(tmp_path / "s.db"),
            "--format",
            "json",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "exported 3 records" in r.stderr
    assert len(json.loads(out.read_text())) == 3
    r = subprocess.run(
        [sys.executable, "-m", "console.cli", "stats", "--db", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0
    assert "gemini-2.5-flash" in r.stdout and "vertex-flash" in r.stdout
    row = [line for line in r.stdout.splitlines() if line.startswith("gemini-2.5-flash")][0].split()
    assert row[1:3] == ["4", "1"]
    r = subprocess.run(
        [sys.executable, "-m", "console.cli", "export", "since:someday", "--db", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "since/until" in r.stderr
