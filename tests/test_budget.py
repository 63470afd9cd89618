"""Budgets with a brake, through the real service (store, gateway, bus) and the strict fake: a session warns at
80 %, is refused at its cap with the documented error, the refusal is recorded, and the spend survives a
restart because it comes from the store."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from proxy import config as cfg
from proxy.events import BudgetCrossed, CallFinished
from proxy.service import Service
from proxy.simulator import Reply
from proxy.store import Store
from tests import cc_session as cs
from tests.conftest import target_for

# gemini-2.5-flash input is $0.30 per 1M tokens: a 1M-token prompt costs $0.30 (plus a few output tokens)
MILLION = 1_000_000


def make_service(tmp_path, fake, sa_json, **budget) -> Service:
    raw = {
        "gateway": {"port": 0},
        "targets": [target_for("gemini", fake, sa_json)],
        "budget": budget,
    }
    return Service(cfg.from_mapping(raw, "test"), Store(tmp_path / "g.db"))


async def send(url: str, prompt: str = "go on") -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        req = cs.body(prompt)
        async with http.post(f"{url}/v1/messages?beta=true", data=json.dumps(req), headers=cs.headers()) as r:
            text = await r.text()
            return r.status, (json.loads(text) if r.status != 200 else {"headers": dict(r.headers)})


async def test_a_session_budget_warns_then_refuses_and_the_refusal_is_recorded(tmp_path, fake, sa_json):
    svc = make_service(tmp_path, fake, sa_json, session_usd=1.0)
    seen: list[BudgetCrossed] = []
    svc.bus.subscribe(BudgetCrossed, seen.append)
    url = await svc.start()
    try:
        fake.script(Reply.text("one", prompt_tokens=MILLION), Reply.text("two", prompt_tokens=2 * MILLION))
        assert (await send(url))[0] == 200  # $0.30
        assert (await send(url))[0] == 200 and not seen  # $0.90: the warning comes with the next call
        fake.script(Reply.text("three", prompt_tokens=MILLION))
        assert (await send(url))[0] == 200  # $1.20
        assert [(e.scope, e.level) for e in seen] == [("session", "warning")]
        assert seen[0].key == cs.SESSION and seen[0].spend == pytest.approx(0.9, abs=0.01)
        status, body = await send(url)
        assert status == 400
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        msg = body["error"]["message"]
        assert "budget.session_usd = $1.00" in msg and "$1.20" in msg and "[budget] session_usd" in msg
        assert seen[-1].level == "refused"
        assert len(fake.received) == 3  # the refused call never went upstream
    finally:
        await svc.stop()
    refused = svc.store.page()[0]
    assert refused.status == 400 and "budget.session_usd" in (refused.error_message or "")
    assert refused.session_id == cs.SESSION

    again = make_service(tmp_path, fake, sa_json, session_usd=1.0)  # a restart: spend comes from the store
    url = await again.start()
    try:
        status, body = await send(url)
        assert status == 400 and "$1.20" in body["error"]["message"]
    finally:
        await again.stop()


async def test_a_daily_budget_counts_every_session_of_the_day(tmp_path, fake, sa_json):
    svc = make_service(tmp_path, fake, sa_json, daily_usd=0.25)
    url = await svc.start()
    assert svc.gateway is not None and svc.gateway.budget is not None
    budget = svc.gateway.budget
    try:
        fake.script(Reply.text("one", prompt_tokens=MILLION))
        assert (await send(url))[0] == 200
        status, body = await send(url)
        assert status == 400 and "budget.daily_usd = $0.25" in body["error"]["message"]
        assert "today's spend $0.30" in body["error"]["message"]
    finally:
        await svc.stop()
    # a stopped gateway's budget leaves the bus, which outlives it (the store's)
    assert budget._finished not in svc.bus._subs.get(CallFinished, ())


def test_a_budget_must_be_positive():
    with pytest.raises(cfg.ConfigError, match="budget.session_usd"):
        cfg.from_mapping({"budget": {"session_usd": 0}}, "t.toml")


def test_session_tallies_are_bounded_and_a_dropped_one_is_read_again(monkeypatch):
    from proxy import budget as bmod
    from proxy.events import Bus

    reads: list[str] = []

    class Source:
        def spend_today(self) -> float:
            return 0.0

        def session_spend(self, session_id: str) -> float:
            reads.append(session_id)
            return 1.0

    monkeypatch.setattr(bmod, "SESSIONS_KEPT", 3)
    b = bmod.Budget(cfg.BudgetSettings(session_usd=5.0), Source(), Bus())
    for s in ["a", "b", "c", "a", "d"]:  # 'a' is checked again before 'd' arrives: 'b' is the oldest
        b.check(s)
    assert list(b._sessions) == ["c", "a", "d"]
    assert reads == ["a", "b", "c", "d"]
    b.check("b")
    assert reads[-1] == "b" and len(b._sessions) == 3
    b.close()


async def test_two_replicas_on_one_postgresql_store_brake_on_their_shared_spend(
    tmp_path, fake, sa_json, pg_server, monkeypatch
):
    from proxy import service as svc_mod
    from proxy.store import open_store

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(svc_mod, "SHARED_BUDGET_REFRESH_S", 0.0)  # read the shared spend at every check
    url = pg_server.fresh_url()
    raw = {
        "gateway": {"port": 0},
        "targets": [target_for("gemini", fake, sa_json)],
        "budget": {"session_usd": 1.0},
    }
    a = Service(cfg.from_mapping(raw, "a"), open_store(url))
    b = Service(cfg.from_mapping(raw, "b"), open_store(url))
    url_a, url_b = await a.start(), await b.start()
    try:
        fake.script(Reply.text("small", prompt_tokens=1000))
        assert (await send(url_b))[0] == 200  # b has seen the session (its tally is read) ...
        fake.script(Reply.text("big", prompt_tokens=4 * MILLION))
        assert (await send(url_a))[0] == 200  # ... then a spends $1.20 of it
        for _ in range(100):  # until a's writer has committed it
            if await asyncio.to_thread(b.store.session_spend, cs.SESSION) >= 1.0:
                break
            await asyncio.sleep(0.05)
        status, body = await send(url_b)
        assert status == 400 and "budget.session_usd" in body["error"]["message"]
    finally:
        await a.stop()
        await b.stop()
        pg_server.drop(url)


async def test_a_budget_on_a_store_that_goes_away_keeps_counting_and_fails_no_call(
    tmp_path, fake, sa_json, monkeypatch
):
    """PostgreSQL stops under a gateway with a budget: calls are still answered (not a 500 per call), the
    brake keeps counting from the last spend it read, /health says the spend is not the store's, and once the
    server is back the budget reads it again."""
    from proxy import budget as budget_mod
    from proxy import service as svc_mod
    from proxy.store import open_store
    from tests.pg import Server

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(svc_mod, "SHARED_BUDGET_REFRESH_S", 0.0)  # read the store at every check
    monkeypatch.setattr(budget_mod, "RETRY_S", 0.2)
    server = Server().start()  # its own server: this test stops it
    try:
        raw = {
            "gateway": {"port": 0},
            "targets": [target_for("gemini", fake, sa_json)],
            "budget": {"daily_usd": 5.0, "session_usd": 1.0},
        }
        svc = Service(cfg.from_mapping(raw, "a"), open_store(server.url))
        url = await svc.start()
        try:

            async def health() -> dict:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"{url}/health") as r:
                        return await r.json()

            fake.script(Reply.text("one", prompt_tokens=MILLION))
            assert (await send(url))[0] == 200  # $0.30, read from the store
            assert (await health())["budget"] == {"spend": "store"}
            server.stop()
            fake.script(*(Reply.text(t, prompt_tokens=MILLION) for t in ("two", "three", "four")))
            assert (await send(url))[0] == 200  # $0.60: answered though the store is gone
            h = await health()
            assert h["status"] == "degraded" and "last known" in h["budget"]["spend"]
            assert "127.0.0.1" in h["budget"]["error"]
            await asyncio.sleep(0.3)  # past RETRY_S: the next check tries the store again, and fails again
            assert (await send(url))[0] == 200  # $0.90
            assert (await send(url))[0] == 200  # $1.20
            status, body = await send(url)  # the tally kept counting while the store was away
            assert status == 400 and "$1.20" in body["error"]["message"]
            assert status == 400 and "budget.session_usd" in body["error"]["message"]
            server.restart()
            await asyncio.sleep(0.3)
            await send(url)  # refused or not, its check reads the store again
            assert (await health())["budget"] == {"spend": "store"}
        finally:
            await svc.stop()
    finally:
        server.remove()
