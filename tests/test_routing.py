"""Targets: fallback, balancer algorithms, cool-down, routing by model, Anthropic passthrough, Kong import."""

import json
from collections import Counter
from types import SimpleNamespace

import aiohttp
import anthropic
import orjson
import pytest
from aiohttp import web

from proxy.config import BalancerSettings, RouteConfig
from proxy.exchange.routing import Router
from proxy.simulator import Reply
from tests.conftest import run_gateway, target_for


def two_targets(fake, sa_json, **balancer):
    return {
        "balancer": balancer,
        "targets": [
            target_for("gemini", fake, sa_json, name="first", model="gemini-2.5-flash"),
            target_for("vertex", fake, sa_json, name="second", model="gemini-2.5-flash-lite"),
        ],
    }


async def test_a_429_falls_back_to_the_next_target_with_both_attempts_recorded(fake, sa_json):
    async for gw in run_gateway(two_targets(fake, sa_json), fake):
        fake.script(Reply.error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), Reply.text("from the second"))
        msg = await gw.client.messages.create(
            model="claude-opus-5-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        assert msg.content[0].text == "from the second"
        rec = gw.records[-1]
        assert [(a.target, a.status) for a in rec.tried_targets] == [("first", 429), ("second", 200)]
        assert "Quota exceeded" in rec.tried_targets[0].error and rec.target == "second"
        assert rec.status == 200 and rec.error_type is None
        assert [r.model for r in fake.received] == ["gemini-2.5-flash", "gemini-2.5-flash-lite"]


async def test_a_stream_falls_back_when_the_first_target_fails_before_any_byte(fake, sa_json):
    async for gw in run_gateway(two_targets(fake, sa_json), fake):
        fake.script(
            Reply.error(503, "UNAVAILABLE", "overloaded"), Reply.text("streamed by the second", chunks=3)
        )
        async with gw.client.messages.stream(
            model="m", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            msg = await s.get_final_message()
        assert msg.content[0].text == "streamed by the second"
        assert [a.status for a in gw.records[-1].tried_targets] == [503, 200]


async def test_a_connection_refused_target_falls_back(fake, sa_json):
    raw = two_targets(fake, sa_json)
    raw["targets"][0]["api_endpoint"] = "http://127.0.0.1:9"  # discard port: nothing listens
    async for gw in run_gateway(raw, fake):
        msg = await gw.client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        assert msg.content[0].text
        first = gw.records[-1].tried_targets[0]
        assert first.status is None and "cannot connect" in first.error


async def test_a_400_is_not_retried_elsewhere(fake, sa_json):
    async for gw in run_gateway(two_targets(fake, sa_json), fake):
        fake.script(Reply.error(400, "INVALID_ARGUMENT", "bad schema"))
        with pytest.raises(anthropic.BadRequestError):
            await gw.client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert len(gw.records[-1].tried_targets) == 1 and len(fake.received) == 1


async def test_when_every_target_fails_the_last_error_is_answered(fake, sa_json):
    async for gw in run_gateway(two_targets(fake, sa_json), fake):
        fake.script(Reply.error(429, "RESOURCE_EXHAUSTED", "one"), Reply.error(503, "UNAVAILABLE", "two"))
        with pytest.raises(anthropic.APIStatusError) as e:
            await gw.client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert e.value.status_code == 529
        assert [a.status for a in gw.records[-1].tried_targets] == [429, 503]


async def test_retries_limit_how_many_targets_are_tried(fake, sa_json):
    async for gw in run_gateway(two_targets(fake, sa_json, retries=0), fake):
        fake.script(Reply.error(429, "RESOURCE_EXHAUSTED", "one"))
        with pytest.raises(anthropic.RateLimitError):
            await gw.client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert len(gw.records[-1].tried_targets) == 1


def fake_providers(*specs):
    return [SimpleNamespace(name=n, model=m, target=SimpleNamespace(weight=w)) for n, m, w in specs]


def test_priority_always_picks_the_highest_weight_first():
    r = Router(fake_providers(("a", "m1", 10), ("b", "m2", 50), ("c", "m3", 20)), BalancerSettings(), [])
    assert {tuple(p.name for p in r.candidates("claude-x")) for _ in range(20)} == {("b", "c", "a")}


def test_round_robin_spreads_calls_by_weight():
    r = Router(fake_providers(("a", "m1", 3), ("b", "m2", 1)), BalancerSettings(algorithm="round-robin"), [])
    firsts = Counter(r.candidates("claude-x")[0].name for _ in range(400))
    assert firsts == {"a": 300, "b": 100}


def test_lowest_latency_prefers_the_faster_target_once_measured():
    r = Router(
        fake_providers(("a", "m1", 1), ("b", "m2", 1)), BalancerSettings(algorithm="lowest-latency"), []
    )
    r.success("a", 900)
    assert r.candidates("x")[0].name == "b"  # untried counts as fastest
    r.success("b", 100)
    assert [r.candidates("x")[0].name for _ in range(10)] == ["b"] * 10
    for _ in range(10):
        r.success("b", 2000)
    assert r.candidates("x")[0].name == "a"


def test_lowest_usage_prefers_the_target_with_fewer_tokens():
    r = Router(fake_providers(("a", "m1", 1), ("b", "m2", 1)), BalancerSettings(algorithm="lowest-usage"), [])
    r.success("a", 10, tokens=5000)
    r.success("b", 10, tokens=100)
    assert r.candidates("x")[0].name == "b"
    r.success("b", 10, tokens=10000)
    assert r.candidates("x")[0].name == "a"


def test_a_failing_target_is_cooled_down_then_tried_again():
    r = Router(
        fake_providers(("a", "m1", 2), ("b", "m2", 1)), BalancerSettings(failure_threshold=3, cooldown=30), []
    )
    for _ in range(2):
        r.failure("a", now=100)
    assert r.candidates("x", now=100)[0].name == "a"
    r.failure("a", now=100)
    assert [p.name for p in r.candidates("x", now=101)] == ["b", "a"]
    assert r.health(now=101)["a"]["state"] == "cooling"
    assert r.candidates("x", now=131)[0].name == "a"  # recovered after the cool-down
    r.success("a", 50)
    assert r.health(now=131)["a"] == {**r.health(now=131)["a"], "state": "ok", "consecutive_failures": 0}


def test_routes_pick_targets_by_requested_model_and_a_named_model_goes_direct():
    providers = fake_providers(
        ("lite", "gemini-2.5-flash-lite", 1), ("pro", "gemini-2.5-pro", 1), ("flash", "gemini-2.5-flash", 1)
    )
    r = Router(providers, BalancerSettings(), [RouteConfig(model="claude-*haiku*", targets=["lite"])])
    assert r.candidates("claude-haiku-5-5")[0].name == "lite"
    assert r.candidates("claude-opus-5-5")[0].name == "pro"  # the route's target is reserved for it
    assert "lite" not in [p.name for p in r.candidates("claude-opus-5-5")]
    assert r.candidates("gemini-2.5-flash")[0].name == "flash"


def test_pools_are_remembered_per_model_and_a_flood_of_model_names_stays_bounded(monkeypatch):
    # `pool` is remembered per model (it depends on the targets and routes only); models a client makes up
    # must not grow that memory without bound, and the answers stay the same after it is forgotten
    import proxy.exchange.routing as routing

    monkeypatch.setattr(routing, "POOLS_KEPT", 8)
    providers = fake_providers(("lite", "gemini-2.5-flash-lite", 1), ("pro", "gemini-2.5-pro", 1))
    r = Router(providers, BalancerSettings(), [RouteConfig(model="claude-*haiku*", targets=["lite"])])
    assert r.pool("claude-haiku-5-5") is r.pool("claude-haiku-5-5")
    for i in range(50):
        assert [p.name for p in r.candidates(f"claude-made-up-{i}")] == ["pro"]
        assert len(r._pools) <= 8
    assert [p.name for p in r.candidates("claude-haiku-5-5")] == ["lite"]
    assert [p.name for p in r.candidates("gemini-2.5-flash-lite")] == ["lite", "pro"]


async def test_health_reports_a_cooling_target(fake, sa_json):
    raw = two_targets(fake, sa_json, failure_threshold=1, cooldown=60)
    async for gw in run_gateway(raw, fake):
        fake.script(Reply.error(503, "UNAVAILABLE", "down"))
        await gw.client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        async with aiohttp.ClientSession() as http:
            async with http.get(gw.url + "/health") as r:
                health = await r.json()
        assert health["status"] == "degraded"
        assert [t["state"] for t in health["targets"]] == ["cooling", "ok"]
        # while cooling, the second target answers first
        await gw.client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert [a.target for a in gw.records[-1].tried_targets] == ["second"]


# -- Anthropic passthrough ----------------------------------------------------------------------------------


class AnthropicStandIn:
    """A loopback stand-in for the Anthropic API (and Claude on Vertex's rawPredict)."""

    def __init__(self):
        self.received = []
        self.status = 200

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.received.append((request.path_qs, dict(request.headers), raw))
        if self.status != 200:
            return web.json_response(
                {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
                status=self.status,
                headers={"retry-after": "3"},
            )
        body = json.loads(raw)
        if request.path.endswith("count_tokens") or "count-tokens" in request.path:
            return web.json_response({"input_tokens": 77})
        msg = {
            "id": "msg_x",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [{"type": "text", "text": "hello from anthropic"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 40,
                "output_tokens": 4,
                "cache_read_input_tokens": 10,
                "cache_creation_input_tokens": 0,
            },
        }
        if not body.get("stream") and not request.path.endswith("streamRawPredict"):
            return web.json_response(msg)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        events = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **msg,
                        "content": [],
                        "stop_reason": None,
                        "usage": {"input_tokens": 40, "output_tokens": 1},
                    },
                },
            ),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "hello "},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "streamed"},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 6},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        for e, d in events:
            await resp.write(f"event: {e}\ndata: {json.dumps(d)}\n\n".encode())
        await resp.write_eof()
        return resp


@pytest.fixture
async def standin():
    s = AnthropicStandIn()
    app = web.Application()
    app.router.add_post("/{tail:.*}", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield s
    await runner.cleanup()


async def test_passthrough_forwards_bytes_and_headers_faithfully_and_never_stores_the_key(
    standin, fake, tmp_path
):
    from proxy.store import Store

    store = Store(tmp_path / "p.db").start()
    raw = {
        "targets": [{"name": "anthropic", "provider": "anthropic", "model": "*", "api_endpoint": standin.url}]
    }
    async for gw in run_gateway(raw, fake):
        gw.gateway.on_record = lambda r, gw=gw: (gw.records.append(r), store.submit(r))
        body = b'{"model":"claude-sonnet-4-6","max_tokens":50,  "messages":[{"role":"user","content":"hi"}]}'
        async with aiohttp.ClientSession() as http:
            async with http.post(
                gw.url + "/v1/messages?beta=true",
                data=body,
                headers={
                    "x-api-key": "sk-ant-api03-PASSTHROUGHSECRET",
                    "anthropic-version": "2023-06-01",
                    "anthropic-beta": "claude-code-20250219",
                    "content-type": "application/json",
                    "x-claude-code-session-id": "s-1",
                },
            ) as r:
                answer = await r.json()
        assert answer["content"][0]["text"] == "hello from anthropic"
        path, headers, sent = standin.received[-1]
        assert sent == body and path == "/v1/messages?beta=true"
        assert headers["x-api-key"] == "sk-ant-api03-PASSTHROUGHSECRET"
        assert (
            headers["anthropic-beta"] == "claude-code-20250219"
            and headers["x-claude-code-session-id"] == "s-1"
        )
        rec = gw.records[-1]
        assert (
            rec.usage.input_tokens == 40 and rec.usage.cache_read_tokens == 10 and rec.provider == "anthropic"
        )
        assert rec.usage.cost == pytest.approx((40 * 3 + 4 * 15 + 10 * 0.30) / 1e6)
        # streaming passes through too, recorded as it goes by
        async with gw.client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            msg = await s.get_final_message()
        assert msg.content[0].text == "hello streamed"
        assert gw.records[-1].usage.output_tokens == 6 and gw.records[-1].response_text == "hello streamed"
    store.close()
    data = (
        (tmp_path / "p.db").read_bytes() + (tmp_path / "p.db-wal").read_bytes()
        if (tmp_path / "p.db-wal").exists()
        else (tmp_path / "p.db").read_bytes()
    )
    assert b"PASSTHROUGHSECRET" not in data


async def test_passthrough_errors_come_back_as_sent_and_fall_back(standin, fake, sa_json):
    raw = {
        "targets": [
            {"name": "anthropic", "provider": "anthropic", "model": "*", "api_endpoint": standin.url},
            target_for("gemini", fake, sa_json),
        ]
    }
    async for gw in run_gateway(raw, fake):
        standin.status = 429
        msg = await gw.client.messages.create(
            model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        assert msg.content[0].text == "Hello from the simulated Gemini."
        assert [a.status for a in gw.records[-1].tried_targets] == [429, 200]


async def test_vertex_anthropic_uses_raw_predict_with_a_bearer_token(standin, fake, rsa_key):
    from tests.conftest import SA_EMAIL, service_account_info

    fake.public_keys[SA_EMAIL] = rsa_key.public_key()
    key = json.dumps(service_account_info(rsa_key, f"{fake.url}/token"))
    raw = {
        "targets": [
            {
                "name": "claude-vertex",
                "provider": "vertex-anthropic",
                "model": "claude-sonnet-4-6@20250929",
                "project_id": "p1",
                "location_id": "us-east5",
                "api_endpoint": standin.url,
                "service_account_json": key,
            }
        ]
    }
    async for gw in run_gateway(raw, fake):
        msg = await gw.client.messages.create(
            model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        assert msg.content[0].text == "hello from anthropic"
        path, headers, sent = standin.received[-1]
        assert (
            path
            == "/v1/projects/p1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-6@20250929:rawPredict"
        )
        assert headers["Authorization"].startswith("Bearer ya29.sim-")
        body = orjson.loads(sent)
        assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
        n = await gw.client.messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}]
        )
        assert n.input_tokens == 77
        assert standin.received[-1][0].endswith("/publishers/anthropic/models/count-tokens:rawPredict")


def test_an_anthropic_target_with_a_model_rewrites_only_the_model():
    from proxy.config import TargetConfig
    from proxy.providers.anthropic import AnthropicProvider

    raw = b'{"model":"claude-opus-5-5","max_tokens":5,"messages":[]}'
    body = json.loads(raw)
    keep = AnthropicProvider(TargetConfig(name="a", provider="anthropic", model="*"))
    assert keep.request_body(raw, body, False) is raw
    pinned = AnthropicProvider(TargetConfig(name="a", provider="anthropic", model="claude-sonnet-4-6"))
    assert json.loads(pinned.request_body(raw, body, False)) == {**body, "model": "claude-sonnet-4-6"}
