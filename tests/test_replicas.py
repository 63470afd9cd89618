"""Several gateways, one PostgreSQL store: three `gatewatch serve` processes behind no balancer but the test,
the strict fake Gemini upstream, the official SDK as client, and a console that reads the shared store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import anthropic
import psycopg
import pytest
from textual.widgets import Static

from console.app import GatewatchApp
from proxy import config as cfg
from proxy.store.postgres import PostgresStore
from proxy.store.query import parse
from tests import warmcli
from tests.conftest import API_KEY, target_for
from tests.serving import free_port
from tests.test_console import plain, wait_for

SESSION = "team-session-0001"


@pytest.fixture
def pg_url(pg_server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    url = pg_server.fresh_url()
    yield url
    pg_server.drop(url)


async def start_replica(fake, url: str, tmp_path, n: int):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    env.update(GEMINI_API_KEY=API_KEY, GEMINI_API_ENDPOINT=fake.url, XDG_DATA_HOME=str(tmp_path / f"xdg{n}"))
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = await warmcli.create_subprocess_exec(
        sys.executable,
        "-m",
        "console.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        url,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert b"listening" in line, line + await proc.stderr.read()
    return proc, f"http://127.0.0.1:{port}"


async def replicas(fake, url: str, tmp_path, n: int = 3):
    return await asyncio.gather(*(start_replica(fake, url, tmp_path, i) for i in range(n)))


async def stop_all(procs) -> list[bytes]:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    errs = []
    for p in procs:
        _, err = await asyncio.wait_for(p.communicate(), 60)
        errs.append(err)
    return errs


async def ask(client: anthropic.AsyncAnthropic, prompt: str) -> str:
    msg = await client.messages.create(
        model="gemini-2.5-flash",
        max_tokens=50,
        messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-claude-code-session-id": SESSION},
    )
    assert msg.content and msg.content[0].type == "text"
    return msg._request_id or ""


async def test_three_gateways_under_load_record_every_completed_call_exactly_once(fake, pg_url, tmp_path):
    running = await replicas(fake, pg_url, tmp_path)
    procs = [p for p, _ in running]
    clients = [anthropic.AsyncAnthropic(base_url=u, api_key="sk-ant-x", max_retries=0) for _, u in running]
    try:
        # 3 × 50 concurrent calls
        ids = await asyncio.gather(*(ask(clients[i % 3], f"call number {i}") for i in range(150)))
    finally:
        for c in clients:
            await c.close()
        errs = await stop_all(procs)
    assert all(p.returncode == 0 for p in procs), errs
    written = [int(e.split(b" records written")[0].rsplit(b" ", 1)[1]) for e in errs]
    assert written == [50, 50, 50], errs  # each replica wrote its own calls…
    assert all(b", 0 lost" in e for e in errs)
    store = PostgresStore(pg_url)
    assert len(set(ids)) == 150 and all(ids)
    stored = [s.id for s in store.summaries()]
    assert sorted(stored) == sorted(ids)  # …and every answered call is in the one store, once
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(DISTINCT id), count(*) FROM gatewatch.records").fetchone() == (
            150,
            150,
        )
    # the roll-ups, read and written by three writers, add up
    s = store.session(SESSION)
    assert s is not None and s.calls == 150 and s.errors == 0
    assert s.input_tokens == sum(x.input_tokens for x in store.summaries())
    assert store.count(parse("number")) == 150  # each in the full-text index


async def test_a_console_on_the_shared_store_sees_every_replica_s_calls(fake, sa_json, pg_url, tmp_path):
    running = await replicas(fake, pg_url, tmp_path)
    procs = [p for p, _ in running]
    config = cfg.from_mapping(
        {"gateway": {"port": 0}, "targets": [target_for("gemini", fake, sa_json)]}, "test"
    )
    # `gatewatch --db postgresql://…`: a console hosting a gateway of its own, on the shared store
    app = GatewatchApp(config, PostgresStore(pg_url, secrets=config.secrets()), export_dir=str(tmp_path))
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.query_one("#history")
            await wait_for(pilot, lambda: bool(app.url))
            for n, (_, url) in enumerate(running):
                client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-x", max_retries=0)
                try:
                    await ask(client, f"asked replica {n}")
                finally:
                    await client.close()
            # no call went through this console's own gateway: the rows come from the others' commits
            await wait_for(pilot, lambda: table.row_count == 3, timeout=15)
            shown = " ".join(str(table.get_row_at(i)) for i in range(table.row_count))
            assert all(f"asked replica {n}" in shown for n in range(3)), shown
            assert app.main.stats.calls == 0  # its own gateway's panes saw none of them
            await pilot.press("q")
    finally:
        await stop_all(procs)


async def test_the_console_with_no_target_on_the_shared_store_watches_every_replica(
    fake, pg_url, tmp_path, monkeypatch
):
    """`gatewatch --db postgresql://…` where no target is configured (the README's way to watch replicas)
    opened red, "gateway not running / no upstream target", its figures at 0. It is a viewer of the shared
    store: no error, no gateway of its own on a port, and the live figures count the calls the replicas
    record (the store's notifications), from the moment it opened."""
    from console import app as console_app
    from console.cli import main
    from console.host import Hosting

    monkeypatch.chdir(tmp_path)  # no gatewatch.toml here, and no key in the environment: no target
    for name in [k for k in os.environ if k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))]:
        monkeypatch.delenv(name)
    opened: dict = {}
    monkeypatch.setattr(
        console_app, "run_console", lambda config, store, **kw: opened.update(kw, config=config, store=store)
    )
    main(["--db", pg_url, "--port", "0"])  # (--port 0: no gateway listening to discover and attach to)
    host, store = opened.get("host"), opened["store"]
    assert host is not None and not isinstance(host, Hosting)  # nothing hosted: no gateway, no port
    assert opened.get("config_error") is None
    running = await replicas(fake, pg_url, tmp_path, n=2)
    procs = [p for p, _ in running]
    clients = [
        anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-x", max_retries=0) for _, url in running
    ]
    app = GatewatchApp(opened["config"], store, host=host)
    try:
        await ask(clients[0], "before the console opened")  # in the history, not in "since start"…
        for _ in range(200):  # …once committed (the replica's writer commits after the answer)
            if store.count() == 1:
                break
            await asyncio.sleep(0.05)
        assert store.count() == 1
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.query_one("#history")
            await wait_for(pilot, lambda: app.main.ready and table.row_count == 1)
            assert app.main.problem is None and app.sub_title == f"watching {store.where}"
            header = plain(app.query_one("#banner", Static).content)
            assert "⚠" not in header and "no gateway here" in header and store.where in header
            assert all(len(line) <= 78 for line in header.splitlines())  # whole at 80 columns
            assert app.main.stats.calls == 0
            for n in range(4):
                await ask(clients[n % 2], f"asked replica {n % 2}, call {n}")
            await wait_for(pilot, lambda: app.main.stats.calls == 4, timeout=15)
            await wait_for(pilot, lambda: table.row_count == 5, timeout=15)
            stats = app.main.stats
            assert stats.errors == 0 and stats.targets["gemini"].calls == 4
            since = [s for s in store.summaries() if "call" in (s.preview or "")]
            assert stats.tokens["input"] == sum(s.input_tokens for s in since) > 0
            assert "4 calls since start" in plain(app.query_one("#summary", Static).content, width=78)
            await pilot.press("q")
    finally:
        for c in clients:
            await c.close()
        await stop_all(procs)
        store.close()


async def test_a_console_attached_to_one_replica_also_sees_the_others(fake, pg_url, tmp_path):
    from console.remote import Attached

    running = await replicas(fake, pg_url, tmp_path, n=2)
    procs = [p for p, _ in running]
    (_, mine), (_, other) = running
    config = cfg.from_mapping({}, "test")
    app = GatewatchApp(config, PostgresStore(pg_url, create=False), host=Attached(mine, None))
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.query_one("#history")
            await wait_for(pilot, lambda: app.host.connected)
            for n, url in enumerate((mine, other)):
                client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-x", max_retries=0)
                try:
                    await ask(client, f"asked replica {n}")
                finally:
                    await client.close()
            await wait_for(pilot, lambda: table.row_count == 2, timeout=15)
            shown = " ".join(str(table.get_row_at(i)) for i in range(table.row_count))
            assert "asked replica 0" in shown and "asked replica 1" in shown
            assert app.main.stats.calls == 1  # the feed of the replica it is attached to: its own call only
            await pilot.press("q")
    finally:
        await stop_all(procs)
