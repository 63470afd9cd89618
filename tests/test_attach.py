"""A console attached to a gateway it does not host: `gatewatch serve` in a real process, or another console.

The viewer follows the gateway's event feed (`GET /gatewatch/events`) and reads the shared store; closing it
leaves the gateway running."""

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
import anthropic
import pytest
from pydantic import SecretStr

from console.app import GatewatchApp
from console.cli import main as cli_main
from console.remote import Attached, discover, probe
from proxy import config as cfg
from proxy.record.events import CallFinished
from proxy.simulator import Reply
from proxy.store import Store
from tests import warmcli
from tests.conftest import API_KEY
from tests.serving import free_port, serve
from tests.test_console import pane_text, wait_for

TOKEN = "gw-token-for-the-attach-tests"


async def start_serve(fake, tmp_path, token: str | None = TOKEN):
    env = {"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}
    if token:
        env["GATEWATCH_TOKEN"] = token
    proc, port = await serve(env, tmp_path, db="serve.db")
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert b"listening" in line, line
    return proc, f"http://127.0.0.1:{port}"


async def ask(url: str, prompt: str, token: str | None = TOKEN) -> str:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=token or "sk-ant-x", max_retries=0)
    try:
        async with client.messages.stream(
            model="gemini-2.5-flash", max_tokens=50, messages=[{"role": "user", "content": prompt}]
        ) as s:
            msg = await s.get_final_message()
        return msg.content[0].text
    finally:
        await client.close()


async def stop(proc) -> bytes:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    return err


def viewer_app(url: str, tmp_path) -> GatewatchApp:
    config = cfg.from_mapping({}, "test", env={"GATEWATCH_TOKEN": TOKEN})
    viewer = Attached(url, config.gateway.auth_token)
    return GatewatchApp(config, Store(tmp_path / "serve.db", create=False), host=viewer)


async def test_a_console_attached_to_serve_shows_a_call_within_a_second_and_closing_it_leaves_serve_running(
    fake, tmp_path
):
    proc, url = await start_serve(fake, tmp_path)
    try:
        fake.script(Reply.text("before"))
        assert await ask(url, "made before the viewer opened") == "before"
        app = viewer_app(url, tmp_path)
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.query_one("#history")
            await wait_for(pilot, lambda: table.row_count == 1)  # the history, from the shared store
            assert app.sub_title == f"attached to {url}"
            await wait_for(pilot, lambda: app.host.connected)
            fake.script(Reply.text("live"))
            assert await ask(url, "made while attached") == "live"
            answered = time.monotonic()
            await wait_for(pilot, lambda: table.row_count == 2, timeout=5)
            shown = time.monotonic() - answered
            assert shown < 1.0, f"the call took {shown:.2f}s to show"
            assert "made while attached" in str(table.get_row_at(table.row_count - 1))  # newest at the bottom
            # the panes count it from the feed: one call, on the serve's target, answered 200
            assert app.main.stats.calls == 1 and app.main.stats.targets["gemini"].last_status == 200
            assert "gemini" in pane_text(app, "pane-targets")
            await pilot.press("q")
        # the viewer is closed: the gateway answers on, and records as before
        fake.script(Reply.text("after"))
        assert await ask(url, "made after the viewer closed") == "after"
        assert proc.returncode is None
    finally:
        err = await stop(proc)
    assert proc.returncode == 0, err
    assert b"3 records written, 0 lost" in err


async def test_the_feed_wants_the_gateway_token_and_never_sends_it(fake, tmp_path):
    proc, url = await start_serve(fake, tmp_path)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/gatewatch/events") as r:
                assert r.status == 401
            async with s.get(url + "/gatewatch") as r:  # says what it is, and nothing more
                body = await r.json()
                assert body["token_required"] is True and "store" not in body
            assert probe(url, SecretStr(TOKEN))["store"] == str((tmp_path / "serve.db").resolve())
            viewer = Attached(url, SecretStr(TOKEN))
            finished: list = []
            viewer.bus.subscribe(CallFinished, finished.append)
            viewer.start()
            for _ in range(100):
                if viewer.connected:
                    break
                await asyncio.sleep(0.05)
            fake.script(Reply.text("ok"))
            await ask(url, "secret-free")
            for _ in range(100):
                if finished:
                    break
                await asyncio.sleep(0.05)
            viewer.stop()
            rec = finished[0].record
            assert rec.preview == "secret-free" and rec.status == 200 and rec.usage.output_tokens > 0
            assert rec.request_headers == {} and rec.client_request is None  # bodies and headers stay home
            with pytest.raises(Exception, match="wants its token"):
                Attached(url, None).start()
    finally:
        await stop(proc)


async def test_a_second_console_attaches_to_the_one_that_hosts(fake, sa_json, tmp_path):
    from tests.conftest import target_for

    port = free_port()
    config = cfg.from_mapping(
        {"gateway": {"port": port}, "targets": [target_for("gemini", fake, sa_json)]}, "test"
    )
    host = GatewatchApp(config, Store(tmp_path / "c.db"), export_dir=str(tmp_path))
    async with host.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: bool(host.url))
        assert host.sub_title == f"hosting {host.url}"
        # the second console, with the same config, finds the first instead of failing on the port
        url = await asyncio.to_thread(discover, config)
        assert url == f"http://127.0.0.1:{port}"
        viewer = Attached(url, None)
        finished: list = []
        viewer.bus.subscribe(CallFinished, finished.append)
        await asyncio.to_thread(viewer.start)
        assert viewer.identity["store"] == str((tmp_path / "c.db").resolve())
        await wait_for(pilot, lambda: viewer.connected)
        fake.script(Reply.text("seen twice"))
        await ask(url, "from the second console's view", token=None)
        await wait_for(pilot, lambda: bool(finished))
        await asyncio.to_thread(viewer.stop)
        assert finished[0].record.preview == "from the second console's view"
        assert host.host.service.gateway is not None  # closing the viewer changed nothing for the host
        await ask(url, "still served", token=None)


def test_nothing_listening_means_no_gatewatch_to_attach_to_and_attach_fails_clearly(tmp_path, capsys):
    port = free_port()
    config = cfg.from_mapping({"gateway": {"port": port}}, "test")
    assert discover(config) is None
    with pytest.raises(SystemExit) as e:
        cli_main(["--attach", f"http://127.0.0.1:{port}", "--db", str(tmp_path / "x.db")])
    assert e.value.code == 2
    assert f"no gatewatch answers at http://127.0.0.1:{port}/gatewatch" in capsys.readouterr().err


async def test_a_second_serve_on_the_same_port_points_at_the_first(fake, tmp_path):
    proc, url = await start_serve(fake, tmp_path)
    try:
        port = url.rsplit(":", 1)[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
        env.update(GEMINI_API_KEY=API_KEY, GEMINI_API_ENDPOINT=fake.url, GATEWATCH_TOKEN=TOKEN)
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        second = await warmcli.create_subprocess_exec(
            sys.executable,
            "-m",
            "console.cli",
            "serve",
            "--port",
            port,
            "--db",
            str(tmp_path / "2.db"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 2
        assert f"a gatewatch is already listening at {url}: run `gatewatch` to watch it" in err.decode()
    finally:
        await stop(proc)


async def test_gatewatch_beside_a_running_serve_opens_as_its_viewer_on_its_store(fake, tmp_path, monkeypatch):
    import console.app

    proc, url = await start_serve(fake, tmp_path)
    opened: list = []
    monkeypatch.setattr(
        console.app,
        "run_console",
        lambda config, store, config_error=None, host=None, **kw: opened.append((store, host)) or 0,
    )
    monkeypatch.setenv("GATEWATCH_TOKEN", TOKEN)
    monkeypatch.delenv("GATEWATCH_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the viewer's own default store: not used
    monkeypatch.chdir(tmp_path)
    try:
        port = url.rsplit(":", 1)[1]
        assert await asyncio.to_thread(cli_main, ["--port", port]) == 0
        ((store, attach),) = opened
        assert attach is not None and attach.url == url
        assert store.path == (tmp_path / "serve.db").resolve()  # the history the serve writes
        assert not (tmp_path / "xdg").exists()
    finally:
        await stop(proc)


async def test_a_viewer_that_attaches_mid_call_sees_the_call_in_flight_then_finish(fake, sa_json):
    from tests.conftest import run_gateway, target_for

    fake.script(Reply.text("slow answer", delay=1.0))
    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake):
        call = asyncio.create_task(ask(gw.url, "in flight when the viewer came", token=None))
        while not gw.gateway.in_flight:
            await asyncio.sleep(0.01)
        viewer = Attached(gw.url, None)
        finished: list = []
        viewer.bus.subscribe(CallFinished, finished.append)
        await asyncio.to_thread(viewer.start)
        try:
            for _ in range(100):
                if viewer.in_flight:
                    break
                await asyncio.sleep(0.02)
            assert viewer.in_flight == 1  # from the feed's hello: the calls already in flight
            assert await call == "slow answer"
            for _ in range(100):
                if finished:
                    break
                await asyncio.sleep(0.02)
            assert finished[0].record.preview == "in flight when the viewer came" and viewer.in_flight == 0
        finally:
            await asyncio.to_thread(viewer.stop)
