"""Claude Code's own telemetry joined to the wire: OTLP/HTTP logs (JSON and protobuf) posted to the gateway's
own address, behind its door, joined to the records by request id whichever arrives first (and across a
killed writer), so records carry Claude Code's prompt id, cost estimate and query source, calls group into
turns, and `gatewatch stats --by prompt` lists them. The real CLI, where installed, does it end to end."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

import aiohttp
import orjson
import pytest

from proxy import config as cfg
from proxy.edge.server import Gateway, start
from proxy.simulator import Reply
from proxy.store import Store
from tests.cc_requests import SESSION
from tests.conftest import target_for
from tests.otlp_bodies import Exporter, protobuf
from tests.test_cli import cli

PROMPT = "rename UserStore to AccountStore everywhere"


async def post(url: str, doc: dict, fmt: str, headers: dict | None = None) -> aiohttp.ClientResponse:
    data = protobuf(doc) if fmt == "protobuf" else orjson.dumps(doc)
    ctype = "application/x-protobuf" if fmt == "protobuf" else "application/json"
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{url}/v1/logs", data=data, headers={"content-type": ctype, **(headers or {})}
        ) as r:
            await r.read()
            return r


async def gateway(raw: dict, store=None, records: list | None = None):
    config = cfg.from_mapping(raw, "test")
    gw = Gateway(
        config,
        on_record=records.append if records is not None else store.submit,
        on_telemetry=store.submit_telemetry if store is not None else None,
    )
    runner, port = await start(gw, "127.0.0.1", 0)
    return runner, f"http://127.0.0.1:{port}"


async def call(url: str, text: str = "hi", session: str = SESSION) -> str:
    import anthropic

    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-x", max_retries=0)
    try:
        resp = await client.messages.with_raw_response.create(
            model="gemini-2.5-flash",
            max_tokens=20,
            messages=[{"role": "user", "content": text}],
            extra_headers={"x-claude-code-session-id": session},
        )
        return resp.headers["request-id"]
    finally:
        await client.close()


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_events_join_their_records_before_or_after_and_a_turn_is_listed(fmt, fake, sa_json, backend):
    store = backend.open().start()
    held: list = []  # the gateway's records, handed to the store when the test says
    runner, url = await gateway({"targets": [target_for("gemini", fake, sa_json)]}, store, held)
    try:
        fake.script(Reply.text("one"), Reply.text("two"))
        first = await call(url, PROMPT)
        second = await call(url, "and the tests too")
        assert {r.id for r in held} == {first, second}
        store.submit(held[0])  # the first call's record is in before its event…
        cc = Exporter(SESSION)
        prompt_id = str(uuid.uuid4())
        doc = cc.body(
            cc.user_prompt(prompt_id, PROMPT),
            cc.api_request(first, prompt_id, 0.0471),
            cc.api_request(second, prompt_id, 0.0122, "agent:builtin:general-purpose"),
            cc.event("tool_result", **{"tool_name": "Bash", "success": "true"}),  # read past
        )
        r = await post(url, doc, fmt)
        assert r.status == 200
        assert r.headers["content-type"].startswith(
            "application/x-protobuf" if fmt == "protobuf" else "application/json"
        )
        store.submit(held[1])  # …the second call's after it
    finally:
        await runner.cleanup()
    store.close()
    one, two = store.get(first), store.get(second)
    assert (one.prompt_id, one.cc_cost, one.query_source) == (prompt_id, 0.0471, "repl_main_thread")
    assert (two.prompt_id, two.cc_cost, two.query_source) == (
        prompt_id,
        0.0122,
        "agent:builtin:general-purpose",
    )
    rows = {s.id: s for s in store.summaries()}
    assert rows[first].prompt_id == prompt_id and rows[second].cc_cost == 0.0122
    [turn] = store.turns(SESSION)
    assert (turn.prompt_id, turn.calls, turn.text) == (prompt_id, 2, PROMPT)
    assert turn.cc_cost == pytest.approx(0.0593)
    view = store.session_view(SESSION)
    assert view.cc_cost == pytest.approx(0.0593) and view.cost == pytest.approx(
        one.usage.cost + two.usage.cost
    )
    out = cli("stats", "--by", "prompt", "--db", backend.where)
    assert out.returncode == 0, out.stderr
    [line] = [ln for ln in out.stdout.splitlines() if ln.startswith(prompt_id)]
    assert PROMPT in line and " 2 " in line and "0.0593" in line
    assert "waste: none found" in out.stdout


async def test_a_prompt_text_follows_log_payloads_and_the_stores_redaction(fake, sa_json, tmp_path):
    secret = "AIzaSy-leaked-in-a-prompt-0123456789"
    raw = {"gateway": {"log_payloads": False}, "targets": [target_for("gemini", fake, sa_json)]}
    store = Store(tmp_path / "g.db", secrets=[secret]).start()
    runner, url = await gateway(raw, store)
    cc = Exporter(SESSION)
    try:
        fake.script(Reply.text("ok"))
        rid = await call(url)
        await post(
            url, cc.body(cc.user_prompt("p-1", "what is in .env?"), cc.api_request(rid, "p-1", 0.01)), "json"
        )
    finally:
        await runner.cleanup()
    store.close()
    [turn] = store.turns(SESSION)
    assert turn.prompt_id == "p-1" and turn.text is None  # log_payloads = false: the prompt is not kept

    store = Store(tmp_path / "h.db", secrets=[secret]).start()
    runner, url = await gateway({"targets": [target_for("gemini", fake, sa_json)]}, store)
    try:
        fake.script(Reply.text("ok"))
        rid = await call(url)
        doc = cc.body(cc.user_prompt("p-2", f"use the key {secret}"), cc.api_request(rid, "p-2", 0.01))
        await post(url, doc, "json")
    finally:
        await runner.cleanup()
    store.close()
    [turn] = store.turns(SESSION)
    assert turn.text == "use the key REDACTED"
    assert secret.encode() not in (tmp_path / "h.db").read_bytes()


async def test_the_otlp_routes_stand_behind_the_gateways_door(fake, sa_json, tmp_path):
    store = Store(tmp_path / "g.db").start()
    raw = {"gateway": {"auth_token": "s3cret-token"}, "targets": [target_for("gemini", fake, sa_json)]}
    runner, url = await gateway(raw, store)
    cc = Exporter()
    doc = cc.body(cc.api_request("req_x", "p", 0.1))
    try:
        assert (await post(url, doc, "json")).status == 401
        assert (await post(url, doc, "protobuf", {"authorization": "Bearer wrong"})).status == 401
        ok = {"authorization": "Bearer s3cret-token"}
        assert (await post(url, doc, "json", {**ok, "origin": "https://evil.example"})).status == 403
        assert (await post(url, doc, "protobuf", ok)).status == 200
        async with aiohttp.ClientSession() as s:
            async with s.post(
                f"{url}/v1/logs", data=b"{}", headers={**ok, "content-type": "text/plain"}
            ) as r:
                assert r.status == 415  # what a web page could send without asking
            async with s.post(
                f"{url}/v1/logs", data=b"\x0a\xff", headers={**ok, "content-type": "application/x-protobuf"}
            ) as r:
                assert r.status == 400
            metrics = {"resourceMetrics": []}
            async with s.post(f"{url}/v1/metrics", json=metrics, headers=ok) as r:
                assert r.status == 200 and await r.json() == {}
            async with s.post(f"{url}/v1/traces", json={"resourceSpans": []}, headers=ok) as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
    store.close()


def test_events_a_killed_writer_journaled_join_the_record_that_comes_after(tmp_path):
    """No event lost on a restart: journaled like records, replayed by the next writer, joined later."""
    from proxy.store import connect
    from tests.test_store import make

    db = tmp_path / "g.db"
    blocker = connect(db)
    blocker.execute("BEGIN IMMEDIATE")  # the writer can't commit: what it is given stays in its journal
    events = [
        {
            "event": "api_request",
            "request_id": "req_000000000000000000000007",
            "prompt_id": "p-7",
            "session_id": "sess-1",
            "cost_usd": 0.5,
            "query_source": "repl_main_thread",
            "at": 1.0,
        }
    ]
    code = (
        "import os, signal\n"
        "from proxy.store import Store\n"
        f"s = Store({str(db)!r}).start()\n"
        f"s.submit_telemetry({events!r})\n"
        "print('journaled', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == -signal.SIGKILL and "journaled" in r.stdout
    blocker.rollback()
    blocker.close()
    store = Store(db).start()  # replays the journal
    rec = make(7)
    rec.id, rec.session_id = "req_000000000000000000000007", "sess-1"
    store.submit(rec)
    store.close()
    got = store.get(rec.id)
    assert (got.prompt_id, got.cc_cost, got.query_source) == ("p-7", 0.5, "repl_main_thread")


@pytest.mark.skipif(shutil.which("claude") is None, reason="the Claude Code CLI is not installed here")
@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
async def test_real_claude_code_telemetry_joins_its_records(protocol, fake, sa_json, tmp_path):
    db = tmp_path / "g.db"
    store = Store(db).start()
    runner, url = await gateway({"targets": [target_for("gemini", fake, sa_json)]}, store)
    home = tempfile.mkdtemp(dir=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_", "CLAUDE_"))}
    env.update(
        HOME=home,
        ANTHROPIC_BASE_URL=url,
        ANTHROPIC_API_KEY="anything",
        ANTHROPIC_MODEL="gemini-2.5-flash",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_ENABLE_TELEMETRY="1",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        OTEL_LOGS_EXPORT_INTERVAL="500",
        OTEL_LOG_USER_PROMPTS="1",
    )
    try:
        fake.script(Reply.text("Hello from the strict fake."))
        proc = await asyncio.create_subprocess_exec(
            shutil.which("claude"),
            "-p",
            "say hello",
            env=env,
            cwd=home,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"Hello from the strict fake." in out
    finally:
        await runner.cleanup()
    store.close()
    [row] = [s for s in store.summaries() if s.kind == "messages" and s.status == 200]
    assert row.prompt_id and row.cc_cost and row.cc_cost > 0 and row.query_source
    [turn] = store.turns(row.session_id)
    assert turn.prompt_id == row.prompt_id and turn.text == "say hello"
    stats = cli("stats", "--by", "prompt", "--db", str(db))
    assert stats.returncode == 0, stats.stderr
    assert any(ln.startswith(row.prompt_id) and "say hello" in ln for ln in stats.stdout.splitlines())


@pytest.mark.skipif(shutil.which("claude") is None, reason="the Claude Code CLI is not installed here")
async def test_a_turn_holds_the_sub_agent_calls_its_prompt_caused(fake, sa_json, tmp_path):
    """The real CLI hands a task to a sub-agent: the sub-agent's call carries the same prompt id, so the turn
    of the user's prompt counts it (and its query source says whose it is)."""
    store = Store(tmp_path / "g.db").start()
    runner, url = await gateway({"targets": [target_for("gemini", fake, sa_json)]}, store)
    fake.script(
        Reply.call(
            "Agent",
            {
                "description": "look around",
                "prompt": "List the files here.",
                "subagent_type": "general-purpose",
            },
        ),
        Reply.text("sub done"),
        Reply.text("done"),
        Reply.text("done"),
    )
    home = tempfile.mkdtemp(dir=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_", "CLAUDE_"))}
    env.update(
        HOME=home,
        ANTHROPIC_BASE_URL=url,
        ANTHROPIC_API_KEY="anything",
        ANTHROPIC_MODEL="gemini-2.5-flash",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_ENABLE_TELEMETRY="1",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        OTEL_LOGS_EXPORT_INTERVAL="500",
        OTEL_LOG_USER_PROMPTS="1",
    )
    try:
        proc = await asyncio.create_subprocess_exec(
            shutil.which("claude"),
            "-p",
            "use a sub-agent to look around",
            "--allowedTools",
            "Agent",
            env=env,
            cwd=home,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        await runner.cleanup()
    store.close()
    rows = [s for s in store.summaries() if s.kind == "messages"]
    [sub] = [r for r in rows if r.agent_id]
    spawner = next(r for r in rows if "Agent" in r.tools_used)
    assert sub.prompt_id == spawner.prompt_id and sub.query_source.startswith("agent:")
    turn = next(t for t in store.turns(sub.session_id) if t.prompt_id == sub.prompt_id)
    assert turn.text == "use a sub-agent to look around" and turn.calls >= 3
    assert turn.calls == sum(1 for r in rows if r.prompt_id == turn.prompt_id)
