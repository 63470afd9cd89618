"""The garbage-collector policy (proxy/collector.py) is applied wherever the gateway is hosted, full collections
run when the gateway is idle, never while a call is in flight (short of the memory bound), and Python's own
policy comes back when the last host stops."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys

import aiohttp
import anthropic
import pytest

from proxy import collector
from proxy import config as cfg
from proxy.collector import MAX_WAIT_S, NO_AUTOMATIC_FULL, PROCESS, SWITCH_INTERVAL_S, YOUNG0, Policy
from proxy.service import Service
from proxy.simulator import Reply
from proxy.store import Store
from tests.conftest import API_KEY, target_for
from tests.serving import serve
from tests.test_console import call, make_app, wait_for


async def health(port: int) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as r:
        return (await r.json())["collector"]


async def test_serve_applies_the_policy_and_collects_when_idle(fake, tmp_path):
    env = {"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url, "GATEWATCH_GC_IDLE_EVERY_S": "0.2"}
    proc, port = await serve(env, tmp_path)
    try:
        await asyncio.wait_for(proc.stdout.readline(), 20)  # listening
        before = await health(port)
        assert before["applied"] and before["thresholds"][2] == NO_AUTOMATIC_FULL
        assert before["frozen"] > 1000  # start-up's objects (aiohttp, pydantic, the config…) never rescanned
        fake.script(Reply.text("collected"))
        client = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=0)
        msg = await client.messages.create(
            model="claude-opus-5-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        await client.close()
        assert msg.content[0].text == "collected"
        after = await health(port)
        for _ in range(200):  # idle now: a full collection comes (waited for, not timed)
            if after["full_collections"] > before["full_collections"]:
                break
            await asyncio.sleep(0.05)
            after = await health(port)
        assert after["full_collections"] > before["full_collections"]
        assert after["max_full_ms"] >= after["last_full_ms"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert b"1 records written, 0 lost" in err


async def test_the_console_hosts_its_gateway_under_the_same_policy(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.host.service.gateway is not None)
        report = app.host.service.gateway.reports["collector"]()
        assert report["applied"] and report["thresholds"][2] == NO_AUTOMATIC_FULL
        assert gc.get_threshold()[0] == YOUNG0 == 10_000  # the youngest generation collected less often
        assert (
            gc.get_threshold()[2] == NO_AUTOMATIC_FULL
            and sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S) == 0.001
        )
        app.host.service.collector.idle_every_s = 0.1
        seen = PROCESS.full
        await call(app, "collect after me", stream=True)
        await wait_for(pilot, lambda: PROCESS.full > seen)
    assert app.host.service.gateway is not None  # stopped with the app: Python's own policy is back
    assert gc.get_threshold()[2] != NO_AUTOMATIC_FULL and gc.get_freeze_count() == 0
    assert gc.get_threshold()[0] != YOUNG0  # Python's own again


async def test_no_full_collection_while_a_call_is_in_flight(fake, sa_json, tmp_path):
    config = cfg.from_mapping({"gateway": {"port": 0}, "targets": [target_for("gemini", fake, sa_json)]}, "t")
    svc = Service(config, Store(tmp_path / "s.db", secrets=config.secrets()))
    svc.collector.idle_every_s = 0.05
    await svc.start()
    try:
        assert PROCESS.saved is not None and PROCESS.hosts == 1
        fake.script(Reply.text("one two three four five six", chunks=6, chunk_delay=0.15))
        client = anthropic.AsyncAnthropic(base_url=svc.url, api_key="k", max_retries=0)
        seen: list[int] = []
        async with client.messages.stream(
            model="claude-opus-5-5", max_tokens=50, messages=[{"role": "user", "content": "slow"}]
        ) as s:
            async for _ in s:
                if svc.in_flight:  # (the last events are read after the call has ended)
                    seen.append(PROCESS.full)
        await client.close()
        assert len(seen) >= 5 and len(set(seen)) == 1  # not one full collection among the events
        first = seen[0]
        for _ in range(100):
            if PROCESS.full > first:
                break
            await asyncio.sleep(0.05)
        assert PROCESS.full > first  # and one once the call was over
    finally:
        await svc.stop()
    assert PROCESS.saved is None and PROCESS.hosts == 0 and gc.get_freeze_count() == 0


async def test_the_memory_bound_holds_under_traffic_that_never_pauses():
    busy = Policy(lambda: True, idle_every_s=1.0)
    idle = Policy(lambda: False, idle_every_s=1.0)
    last = PROCESS.last
    assert not busy.due(last + 30) and idle.due(last + 1.0)
    assert busy.due(last + MAX_WAIT_S)


async def test_two_hosts_in_one_process_share_the_policy():
    saved = gc.get_threshold(), sys.getswitchinterval()
    a, b = Policy(lambda: False), Policy(lambda: False)
    a.start()
    b.start()
    await a.stop()
    assert gc.get_threshold()[2] == NO_AUTOMATIC_FULL  # b still hosts
    kept = [[n] for n in range(5000)]  # made after start-up: frozen by `settle`, at b's next idle check
    frozen = gc.get_freeze_count()
    collector.settle()
    for _ in range(100):
        if not PROCESS.settling:
            break
        await asyncio.sleep(0.05)
    assert not PROCESS.settling and gc.get_freeze_count() >= frozen + len(kept)
    await b.stop()
    assert (gc.get_threshold(), sys.getswitchinterval()) == saved and gc.get_freeze_count() == 0


async def test_a_long_lived_simulator_keeps_only_what_it_is_told_to():
    """The demo's upstream and the benchmarks' stand-in keep no request bodies: every kept 57 KB body is thousands
    of objects each full collection scans, and the stand-in's 46-90 ms collections were read as the gateway's
    stream gaps (issue 26). Tests keep every one (the default) and read them back."""
    from proxy.simulator import GeminiSimulator

    async def send(sim: GeminiSimulator, n: int) -> None:
        url = f"{sim.url}/v1beta/models/gemini-2.5-flash:generateContent"
        async with aiohttp.ClientSession() as http:
            for i in range(n):
                body = {"contents": [{"role": "user", "parts": [{"text": f"call {i}"}]}]}
                async with http.post(url, json=body) as r:
                    assert r.status == 200

    sims = {keep: GeminiSimulator(keep=keep) for keep in (None, 0, 3)}
    for sim in sims.values():
        sim.require_auth = False
        await sim.start()
    try:
        for sim in sims.values():
            await send(sim, 10)
        assert [r.body["contents"][0]["parts"][0]["text"] for r in sims[None].received] == [
            f"call {i}" for i in range(10)
        ]
        assert sims[0].received == []
        kept = [r.body["contents"][0]["parts"][0]["text"] for r in sims[3].received]
        assert 3 <= len(kept) < 6 and kept[-3:] == ["call 7", "call 8", "call 9"]
        assert all(len(sim.requests) == 10 for sim in sims.values())
    finally:
        for sim in sims.values():
            await sim.stop()


def test_the_demo_s_upstream_keeps_no_request():
    from console.demo import Demo

    assert Demo(seed=1).sim.keep == 0  # a demo left running for hours must not grow


async def test_health_reports_the_frozen_count_kept_at_each_freeze_without_walking_them(monkeypatch):
    """Counting the frozen objects walks every one (~3 ms for serve's 95,000): `/health`, which an attached
    console asks every second, cost an idle serve 1 % of a core. The count is taken when they are frozen."""
    policy = Policy(lambda: False, idle_every_s=0.05)
    policy.start()
    try:
        at_start = PROCESS.frozen
        assert at_start > 1000
        walks: list[int] = []
        real = gc.get_freeze_count
        monkeypatch.setattr(gc, "get_freeze_count", lambda: walks.append(1) or real())
        assert [policy.report()["frozen"] for _ in range(10)] == [at_start] * 10
        assert walks == []  # not one walk for ten reports
        kept = [[n] for n in range(5000)]
        collector.settle()  # a freeze later on counts them again, once
        for _ in range(100):
            if not PROCESS.settling:
                break
            await asyncio.sleep(0.05)
        assert policy.report()["frozen"] >= at_start + len(kept) and len(walks) == 1
    finally:
        await policy.stop()
    assert PROCESS.frozen == 0 == gc.get_freeze_count()
