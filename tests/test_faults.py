"""Faults and bad input, through real sockets: the client always gets an Anthropic error, the record says what
happened, the gateway keeps serving, nothing is lost and nothing leaks."""

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import aiohttp
import anthropic
import pytest
from multidict import CIMultiDict

from proxy.simulator import Reply
from proxy.store import Store, StoreError
from proxy.store.query import parse
from tests import warmcli
from tests.conftest import API_KEY, run_gateway, target_for

MSG = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}


def one_target(fake, sa_json, **gateway):
    return {"gateway": {"ping_interval": 0.2, **gateway}, "targets": [target_for("gemini", fake, sa_json)]}


async def post(url: str, body: dict | bytes, headers: dict | None = None) -> tuple[int, str, dict]:
    async with aiohttp.ClientSession() as http:
        kw = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with http.post(url + "/v1/messages", headers=headers or {}, **kw) as r:
            return r.status, await r.text(), CIMultiDict(r.headers)


async def still_serves(gw) -> None:
    gw.fake.script(Reply.text("still here"))
    msg = await gw.client.messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert msg.content[0].text == "still here"


@pytest.mark.parametrize(
    "reply,status,etype,needle",
    [
        (
            Reply(raw=b"<html><body>502 Bad Gateway</body></html>", status=502),
            529,
            "overloaded_error",
            "non-JSON body",
        ),
        (
            Reply(raw=b'{"candidates": [{"content": {"parts": [{"te', status=200),
            502,
            "api_error",
            "not a Gemini response",
        ),
        (Reply(raw=b"<html>oops</html>", status=200), 502, "api_error", "not a Gemini response"),
        (Reply.error(429, "RESOURCE_EXHAUSTED", "no retry info"), 429, "rate_limit_error", "no retry info"),
        (
            Reply.error(429, "RESOURCE_EXHAUSTED", "with header", headers={"Retry-After": "42"}),
            429,
            "rate_limit_error",
            "with header",
        ),
        (Reply.error(500, "INTERNAL", "boom"), 500, "api_error", "boom"),
        (Reply.error(503, "UNAVAILABLE", "busy"), 529, "overloaded_error", "busy"),
        (Reply.error(504, "DEADLINE_EXCEEDED", "slow"), 504, "overloaded_error", "slow"),
    ],
)
async def test_upstream_junk_and_errors_become_anthropic_errors(fake, sa_json, reply, status, etype, needle):
    async for gw in run_gateway(one_target(fake, sa_json), fake):
        fake.script(reply)
        code, text, headers = await post(gw.url, MSG)
        body = json.loads(text)
        assert code == status and body["type"] == "error" and body["error"]["type"] == etype
        assert needle in body["error"]["message"]
        if status == 429:
            assert headers["retry-after"] == ("42" if "header" in needle else "5")
        rec = gw.records[-1]
        assert rec.status == status and rec.error_type == etype
        await still_serves(gw)


async def test_a_500_storm_answers_every_call_and_keeps_serving(fake, sa_json):
    async for gw in run_gateway(one_target(fake, sa_json), fake):
        fake.script(*[Reply.error(500, "INTERNAL", f"storm {i}") for i in range(30)])
        results = await asyncio.gather(*(post(gw.url, MSG) for _ in range(30)))
        assert [r[0] for r in results] == [500] * 30
        assert len(gw.records) == 30 and all(r.error_type == "api_error" for r in gw.records)
        await still_serves(gw)


async def test_connection_refused_is_a_retryable_error(fake, sa_json):
    raw = one_target(fake, sa_json)
    raw["targets"][0]["api_endpoint"] = "http://127.0.0.1:9"
    async for gw in run_gateway(raw, fake):
        code, text, _ = await post(gw.url, MSG)
        assert code == 502 and "cannot connect" in json.loads(text)["error"]["message"]
        assert gw.records[-1].tried_targets[0].error


async def test_a_reset_mid_stream_ends_with_an_sse_error_and_a_record(fake, sa_json):
    async for gw in run_gateway(one_target(fake, sa_json), fake):
        fake.script(Reply.text("a b c d e f", chunks=6, cut_after=2))
        code, text, _ = await post(gw.url, {**MSG, "stream": True})
        assert code == 200 and "event: message_start" in text and "event: error" in text
        assert "message_stop" not in text
        assert gw.records[-1].error_type == "api_error"
        await still_serves(gw)


async def test_a_silent_upstream_hits_the_first_byte_timeout(fake, sa_json):
    async for gw in run_gateway(one_target(fake, sa_json, first_byte_timeout=0.3), fake):
        fake.script(Reply.text("late", delay=2))
        code, text, _ = await post(gw.url, MSG)
        assert code == 504 and "first_byte_timeout" in json.loads(text)["error"]["message"]
        assert json.loads(text)["error"]["type"] == "overloaded_error"


async def test_a_stall_before_the_first_chunk_of_a_stream(fake, sa_json):
    async for gw in run_gateway(one_target(fake, sa_json, first_byte_timeout=0.5), fake):
        fake.script(Reply.text("a b", chunks=2, stall_after=0))
        code, text, _ = await post(gw.url, {**MSG, "stream": True})
        # pings kept the client company, then the stall became an SSE error it can retry
        assert (
            code == 200 and "event: ping" in text and "event: error" in text and "first_byte_timeout" in text
        )


async def test_a_target_timeout_overrides_the_gateway_one(fake, sa_json):
    raw = one_target(fake, sa_json, idle_timeout=60)
    raw["targets"][0]["idle_timeout"] = 0.3
    async for gw in run_gateway(raw, fake):
        fake.script(Reply.text("a b c", chunks=3, stall_after=1))
        t0 = time.monotonic()
        code, text, _ = await post(gw.url, {**MSG, "stream": True})
        assert "idle_timeout" in text and time.monotonic() - t0 < 5


async def test_a_slow_body_is_cut_off_and_other_clients_are_served(fake, sa_json):
    async for gw in run_gateway(one_target(fake, sa_json, client_timeout=0.5), fake):
        port = int(gw.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"model":'
        )
        await writer.drain()
        await still_serves(gw)  # the slow client holds nobody up
        data = await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        assert b"408" in data.split(b"\r\n")[0] and b"client_timeout" in data
        assert gw.records[-1].status == 408


async def test_a_thousand_concurrent_connections_are_all_answered(fake, sa_json):
    async for gw in run_gateway(one_target(fake, sa_json), fake):
        conn = aiohttp.TCPConnector(limit=1000)
        async with aiohttp.ClientSession(connector=conn) as http:

            async def one(url: str) -> int:
                async with http.post(url + "/v1/messages", json=MSG) as r:
                    return r.status

            statuses = await asyncio.wait_for(asyncio.gather(*(one(gw.url) for _ in range(1000))), 120)
        assert statuses.count(200) == 1000 and len(gw.records) == 1000


async def test_a_token_is_demanded_when_configured(fake, sa_json, monkeypatch):
    monkeypatch.setenv("GATEWATCH_TOKEN", "gw-token-abcdef123456")
    async for gw in run_gateway(one_target(fake, sa_json), fake):
        code, text, _ = await post(gw.url, MSG)
        assert code == 401 and json.loads(text)["error"]["type"] == "authentication_error"
        assert "ANTHROPIC_AUTH_TOKEN" in json.loads(text)["error"]["message"]
        assert gw.records[-1].status == 401 and not fake.received
        ok = anthropic.AsyncAnthropic(base_url=gw.url, auth_token="gw-token-abcdef123456", max_retries=0)
        await ok.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        await ok.close()
        code, _, _ = await post(gw.url, MSG, {"x-api-key": "gw-token-abcdef123456"})
        assert code == 200
        async with aiohttp.ClientSession() as http:
            async with http.head(gw.url + "/") as r:
                assert r.status == 200  # Claude Code's probe carries no auth
            async with http.get(gw.url + "/health") as r:
                assert r.status == 401


async def test_binding_beyond_loopback_needs_a_token_or_insecure(fake, sa_json):
    from proxy import config as cfg
    from proxy.edge.server import Gateway, InsecureBind, start

    gw = Gateway(cfg.from_mapping(one_target(fake, sa_json), "t", {}))
    with pytest.raises(InsecureBind, match="--insecure"):
        await start(gw, "0.0.0.0", 0)
    runner, _ = await start(gw, "0.0.0.0", 0, insecure=True)
    await runner.cleanup()


def test_a_second_writer_on_the_same_database_is_refused(tmp_path):
    first = Store(tmp_path / "w.db").start()
    with pytest.raises(StoreError, match="another gatewatch is writing"):
        Store(tmp_path / "w.db").start()
    first.close()
    Store(tmp_path / "w.db").start().close()


def test_records_handed_over_survive_a_kill_before_the_commit(tmp_path):
    db = tmp_path / "k.db"
    script = f"""
import os, signal, sys
sys.path.insert(0, {os.getcwd()!r})
import proxy.store.sqlite as st
import proxy.store.writer as wr
wr.BATCH_WAIT = 30  # the writer would wait 30 s to fill its batch: nothing is committed before the kill
from tests.test_store import make
s = st.SqliteStore({str(db)!r}).start()
for i in range(200):
    s.submit(make(i))
os.kill(os.getpid(), signal.SIGKILL)
"""
    subprocess.run([sys.executable, "-c", script], timeout=60)
    assert Store(db).count() == 0  # nothing had been committed…
    s = Store(db).start()  # …the next writer replays the journal
    assert s.replayed == 200
    s.close()
    assert Store(db).count() == 200 and Store(db).count(parse("number")) == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_cmd(port: int, db, cwd: str | None = None) -> list[str]:
    return [sys.executable, "-m", "console.cli", "serve", "--port", str(port), "--db", str(db)]


def serve_env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env.update(extra)
    return env


async def test_kill_9_under_load_keeps_every_completed_call(fake, tmp_path):
    port = free_port()
    proc = await warmcli.create_subprocess_exec(
        *serve_cmd(port, tmp_path / "k.db"),
        env=serve_env({"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await asyncio.wait_for(proc.stdout.readline(), 20)
    url = f"http://127.0.0.1:{port}"
    completed: list[str] = []
    stop = asyncio.Event()

    async def worker(http):
        while not stop.is_set():
            try:
                async with http.post(url + "/v1/messages", json={**MSG, "stream": True}) as r:
                    body = await r.read()  # the whole response, to its last chunk
                    if r.status == 200 and b"message_stop" in body:
                        completed.append(r.headers["request-id"])
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return

    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(worker(http)) for _ in range(8)]
        while len(completed) < 150:
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    store = Store(tmp_path / "k.db").start()  # what a restarted gatewatch does first
    store.close()
    conn = store.reader()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {r[0] for r in conn.execute("SELECT id FROM records")}
    missing = set(completed) - ids
    assert not missing, f"{len(missing)} of {len(completed)} completed calls lost"


async def test_sigterm_lets_a_call_in_flight_finish_and_flushes_it(fake, tmp_path):
    port = free_port()
    proc = await warmcli.create_subprocess_exec(
        *serve_cmd(port, tmp_path / "t.db"),
        env=serve_env({"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await asyncio.wait_for(proc.stdout.readline(), 20)
    fake.script(Reply.text("slow but complete " * 3, chunks=6, chunk_delay=0.2))
    call = asyncio.create_task(post(f"http://127.0.0.1:{port}", {**MSG, "stream": True}))
    await asyncio.sleep(0.4)
    proc.send_signal(signal.SIGTERM)
    code, text, _ = await asyncio.wait_for(call, 20)
    assert code == 200 and "message_stop" in text
    await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0
    assert Store(tmp_path / "t.db").count() == 1


async def test_no_secret_reaches_the_store_the_file_log_an_export_or_the_screen(fake, sa_json, tmp_path):
    from console.app import GatewatchApp
    from console.history import HistoryTable
    from proxy import config as cfg
    from proxy.reports.export import export_file

    secrets = [
        "sk-ant-api03-CLIENTKEY123456",
        "Bearer-OAUTH-TOKEN-987654",
        "session=COOKIE-555555",
        "AIza-HEADER-LEAK-444444",
        "gw-token-SECRET-3333333",
        API_KEY,
    ]
    log = tmp_path / "claude.json"
    config = cfg.from_mapping(
        {
            "gateway": {"auth_token": "gw-token-SECRET-3333333", "port": 0},  # never a fixed port
            "log": {"file": str(log)},
            "targets": [
                target_for("vertex", fake, sa_json),
                target_for("gemini", fake, sa_json, name="g2", model="gemini-2.5-pro"),
            ],
        },
        "t",
        {},
    )
    store = Store(tmp_path / "s.db", secrets=config.secrets())
    app = GatewatchApp(config, store, export_dir=str(tmp_path))  # its service mirrors to [log] file
    async with app.run_test(size=(160, 50)) as pilot:
        headers = {
            "x-api-key": "gw-token-SECRET-3333333",
            "authorization": "Bearer Bearer-OAUTH-TOKEN-987654",
            "cookie": "session=COOKIE-555555",
            "x-goog-api-key": "AIza-HEADER-LEAK-444444",
            "proxy-authorization": "Basic sk-ant-api03-CLIENTKEY123456",
        }
        for model in ("m", "gemini-2.5-pro"):
            code, _, _ = await post(app.url, {**MSG, "model": model, "stream": True}, headers)
            assert code == 200
        table = app.query_one(HistoryTable)
        for _ in range(100):
            if table.row_count == 2:
                break
            await pilot.pause(0.05)
        screens = [app.export_screenshot()]
        table.focus()
        await pilot.press("enter")
        await pilot.pause(0.5)
        from textual.widgets import TabbedContent

        for tab in ("tab-request", "tab-upstream", "tab-headers", "tab-timing"):
            app.screen.query_one(TabbedContent).active = tab
            await pilot.pause(0.2)
            screens.append(app.export_screenshot())
        await pilot.press("escape")
        await app.shutdown()
    export = tmp_path / "all.json"
    export_file(Store(tmp_path / "s.db").iter_records(), "kong", export)
    key = json.loads(sa_json)["private_key"].split("\n")[1]
    blobs = {
        "database": b"".join(p.read_bytes() for p in tmp_path.glob("s.db*")),
        "file-log": log.read_bytes(),
        "export": export.read_bytes(),
        "screen": "".join(screens).encode(),
    }
    assert log.read_bytes().count(b"\n") == 2
    for where, blob in blobs.items():
        for secret in secrets + [key, "ya29.sim-"]:
            assert secret.encode() not in blob, f"{secret} leaked into the {where}"
    assert (
        stat.S_IMODE(os.stat(log).st_mode) == 0o600
        and stat.S_IMODE(os.stat(tmp_path / "s.db").st_mode) == 0o600
    )


def test_the_paste_hint_names_the_token_variable_never_the_token(fake, sa_json):
    from console.hint import usage_hint
    from proxy import config as cfg

    c = cfg.from_mapping(
        {"gateway": {"auth_token": "gw-token-XYZ-123456"}, "targets": [target_for("gemini", fake, sa_json)]},
        "t",
        {},
    )
    hint = usage_hint("http://127.0.0.1:8000", c)
    assert "ANTHROPIC_AUTH_TOKEN=$GATEWATCH_TOKEN" in hint and "XYZ" not in hint


def test_the_paste_hint_gives_claude_code_a_credential_so_it_does_not_say_not_logged_in(fake, sa_json):
    from console.hint import usage_hint
    from proxy import config as cfg

    c = cfg.from_mapping({"targets": [target_for("gemini", fake, sa_json)]}, "t", {})
    assert usage_hint("http://127.0.0.1:8000", c) == (
        "ANTHROPIC_BASE_URL=http://127.0.0.1:8000 ANTHROPIC_AUTH_TOKEN=gatewatch "
        "ANTHROPIC_MODEL=gemini-2.5-flash claude"
    )


def test_a_paste_hint_too_wide_for_the_screen_is_the_gatewatch_claude_line(fake, sa_json):
    from console.hint import usage_hint
    from proxy import config as cfg

    c = cfg.from_mapping({"targets": [target_for("gemini", fake, sa_json)]}, "gatewatch.toml", {})
    full = usage_hint("http://0.0.0.0:8000", c)
    assert usage_hint("http://0.0.0.0:8000", c, len(full)) == full
    assert usage_hint("http://0.0.0.0:8000", c, 78) == "gatewatch --attach http://127.0.0.1:8000 claude"
    other = cfg.from_mapping({"targets": [target_for("gemini", fake, sa_json)]}, "team/g.toml", {})
    assert usage_hint("http://127.0.0.1:8000", other, 78) == (
        "gatewatch --config team/g.toml --attach http://127.0.0.1:8000 claude"
    )


def test_the_paste_hint_names_no_model_for_a_passthrough_pattern():
    from console.hint import usage_hint
    from proxy import config as cfg

    target = {"name": "claude", "provider": "anthropic", "model": "*", "api_endpoint": "http://127.0.0.1:9"}
    c = cfg.from_mapping({"targets": [target]}, "t", {})
    hint = usage_hint("http://127.0.0.1:8000", c)
    # not ANTHROPIC_MODEL=*, and no made-up credential: the client's own Anthropic key goes through
    assert hint == "ANTHROPIC_BASE_URL=http://127.0.0.1:8000 claude"
    # bound to every address: the client on this machine connects to loopback, not to 0.0.0.0
    assert usage_hint("http://0.0.0.0:8000", c) == hint
    assert usage_hint("http://[::]:8000", c) == "ANTHROPIC_BASE_URL=http://[::1]:8000 claude"
