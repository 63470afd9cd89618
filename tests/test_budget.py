"""Budgets that hold, through the real service (store, gateway, bus), real sockets and the strict fake: a call is
admitted only if spend + reservations + its estimate stays within every cap; a refusal is Anthropic's spend-cap
answer (429 `billing_error`, `x-should-retry: false`, `retry-after`); replicas on one PostgreSQL hold one cap; a
stalled store delays no call past `[budget] store_wait`; a kill -9 leaves its calls in flight counted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from proxy import config as cfg
from proxy.exchange import budget as bmod
from proxy.record.events import BudgetCrossed, CallFinished
from proxy.service import Service
from proxy.simulator import Reply
from proxy.store import Store, open_store
from tests import cc_session as cs
from tests import warmcli
from tests.conftest import target_for
from tests.serving import free_port

# gemini-2.5-flash: input $0.30, output $2.50 per 1M tokens
MILLION = 1_000_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_service(tmp_path, fake, sa_json, store=None, target=None, **budget) -> Service:
    raw = {
        "gateway": {"port": 0},
        "targets": [target or target_for("gemini", fake, sa_json)],
        "budget": budget,
    }
    return Service(cfg.from_mapping(raw, "test"), store or Store(tmp_path / "g.db"))


async def send(url: str, prompt: str = "go on", body: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        req = body or cs.body(prompt)
        async with http.post(f"{url}/v1/messages?beta=true", data=json.dumps(req), headers=cs.headers()) as r:
            text = await r.text()
            return r.status, (json.loads(text) if r.status != 200 else {}) | {"headers": r.headers.copy()}


async def committed(store, n: int) -> None:
    """Wait until the store holds `n` records (the writer commits after the answer went out)."""
    for _ in range(400):
        if await asyncio.to_thread(store.count) >= n:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"the store never held {n} records")


def spent(store) -> float:
    return sum(s.cost or 0.0 for s in store.summaries())


async def health(url: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/health") as r:
            return await r.json()


def small(max_tokens: int = 50_000, stream: bool = True, model: str = "gemini-2.5-flash") -> dict:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "count to three"}],
    }


def estimate_of(body: dict, service: Service) -> float:
    assert service.gateway is not None
    est = bmod.estimate(len(json.dumps(body)), body["max_tokens"], service.gateway.providers)
    assert est.usd is not None
    return est.usd


def full_usage(prompt: int, out: int) -> dict:
    return {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out}


async def test_a_session_budget_warns_then_refuses_in_claude_code_s_terms_and_the_refusal_is_recorded(
    tmp_path, fake, sa_json
):
    svc = make_service(tmp_path, fake, sa_json, session_usd=1.0)
    seen: list[BudgetCrossed] = []
    svc.bus.subscribe(BudgetCrossed, seen.append)
    url = await svc.start()
    try:
        fake.script(Reply.text("one", prompt_tokens=MILLION), Reply.text("two", prompt_tokens=2 * MILLION))
        assert (await send(url))[0] == 200  # $0.30
        await committed(svc.store, 1)
        assert (await send(url))[0] == 200 and not seen  # $0.90: the warning comes with the next call
        await committed(svc.store, 2)
        fake.script(Reply.text("three", prompt_tokens=MILLION))
        assert (await send(url))[0] == 200  # $1.20 (its estimate, ~$0.08, fitted under the cap)
        assert [(e.scope, e.level) for e in seen] == [("session", "warning")]
        assert seen[0].key == cs.SESSION and seen[0].spend == pytest.approx(0.9, abs=0.01)
        await committed(svc.store, 3)
        status, body = await send(url)
        assert status == 429
        assert body["type"] == "error" and body["error"]["type"] == "billing_error"
        assert body["headers"]["x-should-retry"] == "false" and int(body["headers"]["retry-after"]) > 0
        msg = body["error"]["message"]
        assert "budget.session_usd = $1.00" in msg and "$1.20" in msg and "[budget] session_usd" in msg
        assert "does not reset" in msg
        assert seen[-1].level == "refused"
        assert len(fake.received) == 3  # the refused call never went upstream
    finally:
        await svc.stop()
    refused = svc.store.page()[0]
    assert refused.status == 429 and "budget.session_usd" in (refused.error_message or "")
    assert refused.session_id == cs.SESSION

    again = make_service(tmp_path, fake, sa_json, session_usd=1.0)  # a restart: spend comes from the store
    url = await again.start()
    try:
        status, body = await send(url)
        assert status == 429 and "$1.20" in body["error"]["message"]
    finally:
        await again.stop()


async def test_a_daily_budget_names_its_reset(tmp_path, fake, sa_json):
    svc = make_service(tmp_path, fake, sa_json, daily_usd=0.25)
    url = await svc.start()
    assert svc.gateway is not None and svc.gateway.budget is not None
    budget = svc.gateway.budget
    try:
        fake.script(Reply.text("one", prompt_tokens=MILLION))
        assert (await send(url))[0] == 200
        await committed(svc.store, 1)
        status, body = await send(url)
        assert status == 429 and "budget.daily_usd = $0.25" in body["error"]["message"]
        assert "today's spend $0.30" in body["error"]["message"]
        assert "resets at local midnight" in body["error"]["message"]
        assert 0 < int(body["headers"]["retry-after"]) <= 24 * 3600
    finally:
        await svc.stop()
    # a stopped gateway's budget leaves the bus, which outlives it (the store's)
    assert budget._finished not in svc.bus._subs.get(CallFinished, ())


def test_a_budget_must_be_positive():
    with pytest.raises(cfg.ConfigError, match="budget.session_usd"):
        cfg.from_mapping({"budget": {"session_usd": 0}}, "t.toml")


async def concurrent_calls(urls: list[str], n: int, body: dict) -> list[int]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(i: int) -> int:
            url = urls[i % len(urls)]
            async with http.post(f"{url}/v1/messages", data=json.dumps(body), headers=cs.headers()) as r:
                await r.read()
                return r.status

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_two_hundred_concurrent_calls_spend_at_most_the_cap_plus_one_estimate(tmp_path, fake, sa_json):
    """Every call costs what it may (max_tokens of output): without reservations all 200 were served."""
    # store_wait: a loaded CI machine must not degrade the budget here (degraded, replicas don't share)
    svc = make_service(tmp_path, fake, sa_json, daily_usd=2.0, store_wait=10)
    url = await svc.start()
    body = small()
    est = estimate_of(body, svc)
    fake.responder = lambda _b: Reply.text("one two three", usage=full_usage(5, 49_990), delay=0.5)
    try:
        statuses = await concurrent_calls([url], 200, body)
        served = statuses.count(200)
        assert statuses.count(429) == 200 - served
        assert served >= int(2.0 // est) - 1  # the cap's room was used, not refused from the start
        await committed(svc.store, 200)
        assert spent(svc.store) <= 2.0 + est
        assert len(fake.received) == served
    finally:
        await svc.stop()


async def test_three_replicas_on_one_postgresql_hold_one_cap(tmp_path, fake, sa_json, pg_server, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    url = pg_server.fresh_url()
    svcs = [
        make_service(tmp_path, fake, sa_json, store=open_store(url), daily_usd=2.0, store_wait=10)
        for _ in range(3)
    ]
    try:
        urls = [await s.start() for s in svcs]
        body = small()
        est = estimate_of(body, svcs[0])
        fake.responder = lambda _b: Reply.text("one two three", usage=full_usage(5, 49_990), delay=0.5)
        statuses = await concurrent_calls(urls, 200, body)
        served = statuses.count(200)
        assert statuses.count(429) == 200 - served and served >= int(2.0 // est) - 1
        await committed(svcs[0].store, 200)
        assert spent(svcs[0].store) <= 2.0 + est
    finally:
        for s in svcs:
            await s.stop()
        pg_server.drop(url)


async def test_an_unpriced_model_under_a_budget_is_refused_unless_its_target_sets_prices(
    tmp_path, fake, sa_json
):
    target = target_for("gemini", fake, sa_json, model="gemini-nobody-prices-9", name="mystery")
    svc = make_service(tmp_path, fake, sa_json, target=target, daily_usd=5.0)
    url = await svc.start()
    try:
        status, body = await send(url, body=small(model="gemini-nobody-prices-9"))
        assert status == 429 and body["error"]["type"] == "billing_error"
        msg = body["error"]["message"]
        assert "'mystery'" in msg and "no known price" in msg and "input_cost and output_cost" in msg
        assert not fake.received
    finally:
        await svc.stop()
    priced = dict(target, input_cost=1.0, output_cost=2.0)
    svc = make_service(tmp_path, fake, sa_json, target=priced, daily_usd=5.0)
    url = await svc.start()
    try:
        fake.script(Reply.text("priced by the target"))
        assert (await send(url, body=small(model="gemini-nobody-prices-9")))[0] == 200
    finally:
        await svc.stop()


async def test_a_stalled_postgresql_delays_no_call_past_the_store_wait(tmp_path, fake, sa_json, monkeypatch):
    """The database's processes are stopped (SIGSTOP): every statement hangs. Calls are served, none waits
    longer than `store_wait` for the budget, `/health` says the budget is degraded; back, it is exact again."""
    from tests.pg import Server

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(bmod, "RETRY_S", 0.5)
    server = Server().start()  # its own server: this test freezes it
    try:
        svc = make_service(
            tmp_path, fake, sa_json, store=open_store(server.url), daily_usd=50.0, store_wait=0.3
        )
        url = await svc.start()
        try:
            fake.script(Reply.text("before"))
            assert (await send(url, body=small(stream=False)))[0] == 200
            assert (await health(url))["budget"]["spend"] == "store"
            server.pause()
            worst = 0.0
            for i in range(6):
                fake.script(Reply.text(f"during {i}"))
                t0 = time.monotonic()
                status, _ = await send(url, body=small(stream=False))
                worst = max(worst, time.monotonic() - t0)
                assert status == 200
                if i == 2:
                    await asyncio.sleep(0.6)  # past RETRY_S: the store is asked again (and waited for again)
            h = await health(url)
            assert h["status"] == "degraded" and "store_wait = 0.3 s" in h["budget"]["error"]
            # the call itself takes milliseconds on loopback; a frozen read would hold it until resumed
            assert worst < 0.3 + 2.0, worst
            server.resume()
            for _ in range(100):
                await asyncio.sleep(0.1)
                fake.script(Reply.text("after"))
                await send(url, body=small(stream=False))
                if (await health(url))["budget"]["spend"] == "store":
                    break
            assert (await health(url))["budget"]["spend"] == "store"
            # the calls admitted while it was frozen were reserved when it woke, and settled by their records:
            # nothing is left counted at an estimate
            import psycopg

            def left() -> int:
                with psycopg.connect(server.url) as conn:
                    return int(conn.execute("SELECT count(*) FROM gatewatch.reservations").fetchone()[0])

            for _ in range(200):
                if svc.store.pending == 0 and await asyncio.to_thread(left) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await asyncio.to_thread(left) == 0
        finally:
            server.resume()
            await svc.stop()
    finally:
        server.remove()


async def test_a_replay_of_a_capped_session_is_refused(tmp_path, fake, sa_json):
    """A replay spends its original's session's money: under a spent session cap it is refused like a call."""
    svc = make_service(tmp_path, fake, sa_json, session_usd=0.5)
    svc.config = svc.config.model_copy(
        update={"gateway": svc.config.gateway.model_copy(update={"log_payloads": True})}
    )
    url = await svc.start()
    try:
        fake.script(Reply.text("one", prompt_tokens=2 * MILLION))  # $0.60 of a $0.50 cap
        assert (await send(url))[0] == 200
        await committed(svc.store, 1)
        (original,) = svc.store.page()
        rec = svc.store.get(original.id)
        assert rec is not None and rec.client_request is not None
        # the body sent again names no session: the gateway takes the original's
        replayed = dict(rec.client_request)
        replayed.pop("metadata", None)
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/gatewatch/replay",
                params={"of": original.id, "target": "studio"},
                data=json.dumps(replayed),
                headers={"content-type": "application/json", "anthropic-version": "2023-06-01"},
            ) as r:
                status, answer = r.status, await r.json()
        assert status == 429 and answer["error"]["type"] == "billing_error"
        assert "budget.session_usd" in answer["error"]["message"]
        assert len(fake.received) == 1
        await committed(svc.store, 2)
        refused = svc.store.page()[0]
        assert refused.replay_of == original.id and refused.session_id == cs.SESSION
    finally:
        await svc.stop()


async def test_a_cut_stream_is_priced_for_what_google_generated(tmp_path, fake, sa_json):
    """The client hangs up after the first chunks; the usage Google reports comes only in the last chunk, so
    the output is estimated from the text received and marked so."""
    svc = make_service(tmp_path, fake, sa_json, daily_usd=50.0)
    url = await svc.start()
    words = " ".join(f"word{i}" for i in range(400))
    fake.script(Reply.text(words, chunks=8, chunk_delay=0.3))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/v1/messages", data=json.dumps(small(max_tokens=4000)), headers=cs.headers()
            ) as r:
                async for line in r.content:
                    if b"content_block_delta" in line:
                        break  # the first text arrived: hang up
        await committed(svc.store, 1)
        (s,) = svc.store.page()
        rec = svc.store.get(s.id)
        assert rec is not None and rec.cancelled
        assert rec.usage.estimated and rec.usage.output_tokens > 0
        assert rec.usage.cost is not None and rec.usage.cost > rec.usage.input_tokens * 0.30 / MILLION
        assert any("cut before Google reported" in n.detail for n in rec.notes)
    finally:
        await svc.stop()


async def test_a_changed_budget_in_the_config_file_applies_without_a_restart(tmp_path, fake, sa_json):
    path = tmp_path / "gatewatch.toml"
    target = target_for("gemini", fake, sa_json)

    def write(daily: float) -> None:
        lines = ["[gateway]", "port = 0", "", "[[targets]]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in target.items()]
        lines += ["", "[budget]", f"daily_usd = {daily}"]
        path.write_text("\n".join(lines) + "\n")
        os.utime(path, (time.time() + 2, time.time() + 2))  # a new mtime even within the clock's grain

    write(0.25)
    svc = Service(cfg.load(path), Store(tmp_path / "g.db"))
    url = await svc.start()
    try:
        fake.script(Reply.text("one", prompt_tokens=MILLION))
        assert (await send(url))[0] == 200
        await committed(svc.store, 1)
        assert (await send(url))[0] == 429
        write(5.0)
        for _ in range(100):  # the file is looked at every RELOAD_EVERY_S
            await asyncio.sleep(0.1)
            assert svc.gateway is not None and svc.gateway.budget is not None
            if svc.gateway.budget.settings.daily_usd == 5.0:
                break
        fake.script(Reply.text("two"))
        assert (await send(url))[0] == 200
    finally:
        await svc.stop()


async def test_sighup_makes_serve_apply_its_config_s_budget_now(tmp_path, fake, sa_json):
    """`kill -HUP` a `serve` (proxy/service.py's reload_budget names it): the config file's [budget] applies at
    once, here a change the file watch can't see (the same size and modification time, which is all it
    compares), and serve says what is in force. Before, SIGHUP's default ended the gateway."""
    path = tmp_path / "gatewatch.toml"
    target = target_for("gemini", fake, sa_json)

    def write(daily: str) -> None:
        lines = ["[[targets]]", *(f"{k} = {json.dumps(v)}" for k, v in target.items())]
        path.write_text("\n".join([*lines, "", "[budget]", f"daily_usd = {daily}"]) + "\n")

    write("0.25")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    env.update(PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "xdg"))
    db = tmp_path / "g.db"
    argv = ["serve", "--config", str(path), "--db", str(db), "--port", "0"]
    proc = await warmcli.create_subprocess_exec(
        sys.executable, "-m", "console.cli", *argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "listening on http://" in line, line
        url = line.split(" on ", 1)[1].split()[0]
        fake.script(Reply.text("one", prompt_tokens=MILLION))  # $0.30 of input: past the $0.25 cap
        assert (await send(url))[0] == 200
        await committed(open_store(db, create=False), 1)
        assert (await send(url))[0] == 429
        before = os.stat(path)
        write("5.00")  # the same length…
        os.utime(
            path, ns=(before.st_atime_ns, before.st_mtime_ns)
        )  # …and the same time: the watch sees nothing
        assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert (await send(url))[0] == 429  # the cap in force is still the old one
        proc.send_signal(signal.SIGHUP)
        said = b""
        while not said.startswith(b"gatewatch: SIGHUP"):
            said = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert said, "serve ended on SIGHUP"
        assert said.decode().strip() == f"gatewatch: SIGHUP: [budget] of {path} in force: daily_usd = 5.0"
        fake.script(Reply.text("two"))
        assert (await send(url))[0] == 200  # admitted under the cap SIGHUP applied
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err


async def test_sighup_from_a_closed_terminal_still_stops_serve_drained(tmp_path, fake, sa_json):
    """SIGHUP is also what closing a terminal sends: a serve whose terminal hung up stops (exit 0, its records
    flushed), as it did before SIGHUP meant "apply the budget", instead of running on, orphaned, on its port."""
    import pty

    path = tmp_path / "gatewatch.toml"
    target = target_for("gemini", fake, sa_json)
    lines = ["[[targets]]", *(f"{k} = {json.dumps(v)}" for k, v in target.items())]
    path.write_text("\n".join([*lines, "", "[budget]", "daily_usd = 1.0"]) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    env.update(PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "xdg"))
    argv = ["serve", "--config", str(path), "--db", str(tmp_path / "g.db"), "--port", "0"]
    terminal, its_end = pty.openpty()  # serve's stdin is a terminal, as when it is started in one
    proc = await warmcli.create_subprocess_exec(
        sys.executable, "-m", "console.cli", *argv, env=env, stdin=its_end, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(its_end)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "listening on http://" in line, line
        fake.script(Reply.text("one"))
        assert (await send(line.split(" on ", 1)[1].split()[0]))[0] == 200
        os.close(terminal)  # the terminal window closes: the kernel hangs its end up…
        terminal = -1
        proc.send_signal(signal.SIGHUP)  # …and its session's jobs are sent SIGHUP
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if terminal >= 0:
            os.close(terminal)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert b"1 records written, 0 lost" in err and b"SIGHUP:" not in err


def _serve(tmp_path, fake, sa_json, port: int) -> subprocess.Popen:
    path = tmp_path / "gatewatch.toml"
    target = target_for("gemini", fake, sa_json)
    lines = ["[[targets]]", *(f"{k} = {json.dumps(v)}" for k, v in target.items())]
    lines += ["", "[budget]", "daily_usd = 1.0"]
    path.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    env.update(PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "xdg"))
    argv = ["serve", "--config", str(path), "--db", str(tmp_path / "g.db"), "--port", str(port)]
    return warmcli.Popen(
        [sys.executable, "-m", "console.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def _listening(url: str) -> None:
    for _ in range(600):
        try:
            await health(url)
            return
        except aiohttp.ClientError:
            await asyncio.sleep(0.05)
    raise AssertionError("the gateway never listened")


async def test_a_kill_9_with_calls_in_flight_leaves_them_counted_after_restart(tmp_path, fake, sa_json):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, fake, sa_json, port)
    body = small(max_tokens=40_000)  # ~$0.10 reserved each
    try:
        await _listening(url)
        fake.responder = lambda _b: Reply.text("slow", delay=5)
        calls = [asyncio.create_task(send(url, body=body)) for _ in range(8)]
        for _ in range(400):  # every call admitted and at the upstream
            if len(fake.received) >= 8:
                break
            await asyncio.sleep(0.025)
        assert len(fake.received) == 8
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        await asyncio.gather(*calls, return_exceptions=True)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    again = _serve(tmp_path, fake, sa_json, port)
    try:
        await _listening(url)
        left = (await health(url))["budget"]["left_in_flight"]
        assert left["calls"] == 8 and left["estimated"] is True and left["usd"] > 0.7
        fake.responder = lambda _b: Reply.text("fast")
        # $0.80 held by the calls the kill cut off: a $0.20 call no longer fits the $1 cap, a $0.10 one does
        status, answer = await send(url, body=small(max_tokens=80_000))
        assert status == 429 and "reserved by calls in flight" in answer["error"]["message"]
        assert (await send(url, body=body))[0] == 200
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=60)


@pytest.mark.parametrize(("flag", "value"), [("--limit", "1001"), ("--concurrency", "17"), ("--limit", "0")])
def test_replay_s_limit_and_concurrency_are_bounded(flag, value, capsys):
    from console.cli import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["replay", "model:pro", "--target", "flash", flag, value])
    assert "gatewatch replay" in capsys.readouterr().err or value == "0"
    ok = parser().parse_args(
        ["replay", "model:pro", "--target", "flash", "--limit", "1000", "--concurrency", "16"]
    )
    assert (ok.limit, ok.concurrency) == (1000, 16)


def test_the_estimate_is_the_dearest_target_that_may_serve_the_call():
    from proxy import providers

    def target(**kw):
        return providers.make(cfg.TargetConfig.model_validate({"provider": "gemini", "api_key": "k", **kw}))

    flash = target(name="flash", model="gemini-2.5-flash")
    pro = target(name="pro", model="gemini-2.5-pro")
    own = target(name="own", model="gemini-nobody-prices-9", input_cost=1.0, output_cost=10.0)
    # 3,000 bytes → 1,000 input tokens; 10,000 output tokens
    est = bmod.estimate(3000, 10_000, [flash])
    assert est.usd == pytest.approx(1000 * 0.30e-6 + 10_000 * 2.50e-6)
    assert bmod.estimate(3000, 10_000, [flash, pro]).usd == pytest.approx(1000 * 1.25e-6 + 10_000 * 10e-6)
    assert bmod.estimate(3000, 10_000, [own]).usd == pytest.approx(1000 * 1e-6 + 10_000 * 10e-6)
    unknown = bmod.estimate(3000, 10_000, [flash, target(name="odd", model="gemini-nobody-prices-9")])
    assert unknown.usd is None and "'odd'" in unknown.unpriced
    passthrough = providers.make(
        cfg.TargetConfig.model_validate(
            {"name": "claude", "provider": "anthropic", "model": "*", "api_endpoint": "http://127.0.0.1:9"}
        )
    )
    assert bmod.estimate(3000, 10_000, [passthrough], asked="claude-sonnet-4-5").usd is not None
