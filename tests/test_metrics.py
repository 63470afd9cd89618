"""`GET /metrics`, through the real service (store, gateway, bus) and the strict fake, read with
prometheus_client's own parser: Kong's names and labels, and values that match the records the store kept."""

from __future__ import annotations

from collections import Counter

import aiohttp
import anthropic
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from proxy import config as cfg
from proxy.record.events import RecordsLost
from proxy.service import Service
from proxy.simulator import Reply
from proxy.store import Store
from tests.conftest import target_for

TOKEN = "gw-metrics-token-0123456789"
KONG_EMPTY = ("cache_status", "vector_db", "embeddings_provider", "embeddings_model", "workspace")


def make_service(tmp_path, fake, sa_json, **gateway) -> Service:
    raw = {
        "gateway": {"port": 0, "auth_token": TOKEN, **gateway},
        "balancer": {"algorithm": "priority"},
        "budget": {"daily_usd": 100.0},
        "targets": [
            target_for("gemini", fake, sa_json, name="first", weight=200),
            target_for("gemini", fake, sa_json, name="second", weight=100),
        ],
    }
    return Service(cfg.from_mapping(raw, "test"), Store(tmp_path / "g.db"))


async def scrape(url: str, **headers: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/metrics", headers=headers) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def total(found: list[tuple[str, dict[str, str], float]], name: str, **match: str) -> float:
    return sum(v for n, labels, v in found if n == name and all(labels.get(k) == w for k, w in match.items()))


async def test_metrics_match_the_records_the_store_kept(tmp_path, fake, sa_json):
    svc = make_service(tmp_path, fake, sa_json)
    url = await svc.start()
    client = anthropic.AsyncAnthropic(base_url=url, api_key=TOKEN, max_retries=0)
    ask = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    try:
        fake.script(Reply.text("one two three", prompt_tokens=1200))
        await client.messages.create(**ask)
        fake.script(Reply.text("a streamed answer of some words", prompt_tokens=3400, cached_tokens=1000))
        async with client.messages.stream(**ask) as stream:
            await stream.get_final_message()
        # the first target is unavailable: the call falls back to the second
        fake.script(
            Reply.error(503, "UNAVAILABLE", "overloaded"), Reply.text("from second", prompt_tokens=50)
        )
        await client.messages.create(**ask)
        fake.script(Reply.error(400, "INVALID_ARGUMENT", "bad request"))
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(**ask)
        # answered by the gateway itself, recorded, but no LLM call: not in Kong's metrics
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(**ask, extra_headers={"x-api-key": "wrong", "authorization": ""})
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(**{**ask, "max_tokens": 0})
        status, ctype, text = await scrape(url, authorization=f"Bearer {TOKEN}")
    finally:
        await client.close()
        await svc.stop()
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert TOKEN not in text
    kept = [svc.store.get(s.id) for s in svc.store.page() if s.kind == "messages"]
    assert sorted(r.status for r in kept) == [200, 200, 200, 400, 400, 401]
    records = [r for r in kept if r.tried_targets]
    assert len(records) == 4 and sum(1 for r in records if r.status != 200) == 1
    found = samples(text)

    # requests: one per call, with Kong's labels (the ones that mean nothing here present and empty)
    assert total(found, "kong_ai_llm_requests_total") == 4
    for mode in ("stream", "oneshot"):
        want = sum(1 for r in records if r.request_mode == mode)
        assert total(found, "kong_ai_llm_requests_total", request_mode=mode) == want
    assert total(found, "kong_ai_llm_requests_total", ai_provider="gemini", ai_model="gemini-2.5-flash") == 4
    for _, labels, _ in (s for s in found if s[0] == "kong_ai_llm_requests_total"):
        assert all(labels[k] == "" for k in KONG_EMPTY)

    # tokens and cost: the sums of the records' usage
    prompt = sum(
        r.usage.input_tokens + r.usage.cache_read_tokens + r.usage.cache_creation_tokens for r in records
    )
    completion = sum(r.usage.output_tokens for r in records)
    assert prompt >= 1200 + 3400 + 50 and completion > 0
    assert total(found, "kong_ai_llm_tokens_total", token_type="prompt_tokens") == prompt
    assert total(found, "kong_ai_llm_tokens_total", token_type="completion_tokens") == completion
    assert total(found, "kong_ai_llm_tokens_total", token_type="total_tokens") == sum(
        r.usage.total_tokens for r in records
    )
    cost = sum(r.usage.cost or 0 for r in records)
    assert cost > 0
    assert total(found, "kong_ai_llm_cost_total") == pytest.approx(cost)

    # histograms: one observation per record that has the figure, and the same sum
    latencies = [r.llm_latency_ms for r in records if r.llm_latency_ms is not None]
    assert len(latencies) >= 3
    assert total(found, "kong_ai_llm_provider_latency_ms_count") == len(latencies)
    assert total(found, "kong_ai_llm_provider_latency_ms_sum") == pytest.approx(sum(latencies))
    assert total(found, "kong_ai_llm_provider_latency_ms_bucket", le="+Inf") == len(latencies)
    assert total(found, "kong_ai_llm_provider_latency_ms_bucket", le="60000.0") == len(latencies)
    ttft = [r.usage.time_to_first_token for r in records if r.usage.time_to_first_token is not None]
    assert ttft and total(found, "kong_ai_llm_ttft_latency_ms_count") == len(ttft)
    tpot = [r.usage.time_per_token for r in records if r.usage.time_per_token is not None]
    assert total(found, "kong_ai_llm_tpot_latency_ms_count") == len(tpot)

    # gatewatch's own: every attempt by target and status, the fallback, nothing lost or in flight
    attempts = Counter((a.target, str(a.status)) for r in records for a in r.tried_targets)
    assert attempts[("first", "503")] == 1 and attempts[("first", "400")] == 1
    for (target, code), n in attempts.items():
        assert total(found, "gatewatch_upstream_attempts_total", target=target, status=code) == n
    assert total(found, "gatewatch_upstream_attempts_total") == sum(attempts.values())
    assert total(found, "gatewatch_fallbacks_total") == 1
    assert total(found, "gatewatch_in_flight") == 0
    assert total(found, "gatewatch_records_lost_total") == 0
    assert total(found, "gatewatch_target_state", target="first", state="ok") == 1
    assert total(found, "gatewatch_target_state", target="second", state="cooling") == 0
    assert total(found, "gatewatch_budget_spend_usd", scope="daily") == pytest.approx(cost)


async def test_a_call_that_cost_nothing_has_no_cost_series(tmp_path, fake, sa_json):
    svc = make_service(tmp_path, fake, sa_json)
    url = await svc.start()
    client = anthropic.AsyncAnthropic(base_url=url, api_key=TOKEN, max_retries=0)
    try:
        fake.script(Reply.error(400, "INVALID_ARGUMENT", "bad request"))
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(
                model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
            )
        status, _, text = await scrape(url, authorization=f"Bearer {TOKEN}")
    finally:
        await client.close()
        await svc.stop()
    found = samples(text)
    assert status == 200 and total(found, "kong_ai_llm_requests_total") == 1
    # Kong counts cost only for a call that cost something: no zero series to chart
    assert not [s for s in found if s[0].startswith("kong_ai_llm_cost")]


async def test_metrics_need_the_gateway_token_and_pass_the_door_first(tmp_path, fake, sa_json):
    svc = make_service(tmp_path, fake, sa_json)
    url = await svc.start()
    try:
        status, _, body = await scrape(url)
        assert status == 401 and '"authentication_error"' in body
        status, _, body = await scrape(url, **{"x-api-key": "not-the-token"})
        assert status == 401 and "kong_ai" not in body
        status, _, body = await scrape(url, Origin="https://evil.example", authorization=f"Bearer {TOKEN}")
        assert status == 403 and '"permission_error"' in body
        status, _, body = await scrape(url, **{"x-api-key": TOKEN})
        assert status == 200 and "# TYPE kong_ai_llm_requests_total counter" in body
        assert svc.bus.wants(RecordsLost)
    finally:
        await svc.stop()
    assert not svc.bus.wants(RecordsLost)  # a stopped gateway's metrics leave the bus, which outlives it


async def test_metrics_can_be_switched_off(tmp_path, fake, sa_json):
    svc = make_service(tmp_path, fake, sa_json, metrics=False)
    url = await svc.start()
    try:
        status, _, body = await scrape(url, authorization=f"Bearer {TOKEN}")
        assert status == 404 and '"not_found_error"' in body
        assert svc.gateway is not None and svc.gateway.metrics is None
    finally:
        await svc.stop()


def test_the_calls_figures_are_the_text_prometheus_clients_own_metrics_give():
    """The calls' counters and histograms are plain numbers made into families at scrape time: the same
    samples as prometheus_client's Counter and Histogram fed the same calls (a value on a bound counts in
    that bound's bucket, a call with no cost has no cost series)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from proxy.observe.metrics import KONG_LABELS, LATENCY_BUCKETS_MS, TPOT_BUCKETS_MS, Metrics
    from proxy.record import Attempt, Record, Usage
    from proxy.record.events import Bus, CallFinished

    bus, ref = Bus(), CollectorRegistry()
    metrics = Metrics(bus)
    requests = Counter("kong_ai_llm_requests_total", "", KONG_LABELS, registry=ref)
    cost = Counter("kong_ai_llm_cost_total", "", KONG_LABELS, registry=ref)
    latency = Histogram(
        "kong_ai_llm_provider_latency_ms", "", KONG_LABELS, buckets=LATENCY_BUCKETS_MS, registry=ref
    )
    tpot = Histogram("kong_ai_llm_tpot_latency_ms", "", KONG_LABELS, buckets=TPOT_BUCKETS_MS, registry=ref)
    tried = Counter("gatewatch_upstream_attempts_total", "", ("target", "status"), registry=ref)
    for i in range(40):
        mode = "stream" if i % 2 else "oneshot"
        status = None if i % 9 == 0 else 200
        rec = Record(
            id=f"r{i}",
            started_at=1.0,
            provider="gemini",
            response_model="gemini-2.5-flash" if i % 3 else "gemini-2.5-pro",
            request_mode=mode,
            llm_latency_ms=(250, 250.5, 0.1, 90000, 1000)[i % 5],
            tried_targets=[Attempt(target="t", provider="gemini", model="gemini-2.5-flash", status=status)],
            usage=Usage(
                input_tokens=10 * i,
                output_tokens=i,
                cost=0.001 * i if i % 4 else None,
                time_per_token=(1, 7.5, 3000)[i % 3],
            ),
        )
        bus.emit(CallFinished(rec))
        labels = ("gemini", rec.response_model, "", "", "", "", "", mode)
        requests.labels(*labels).inc()
        if rec.usage.cost:
            cost.labels(*labels).inc(rec.usage.cost)
        latency.labels(*labels).observe(rec.llm_latency_ms)
        tpot.labels(*labels).observe(rec.usage.time_per_token)
        tried.labels("t", str(status) if status else "error").inc()
    want = samples(generate_latest(ref).decode())
    got = samples(metrics.exposition().decode())
    for name in {n for n, _, _ in want}:
        assert sorted((str(sorted(lb.items())), v) for n, lb, v in got if n == name) == pytest.approx(
            sorted((str(sorted(lb.items())), v) for n, lb, v in want if n == name)
        ), name
