"""The provider registry: a provider kind declared once is known everywhere.

The toy provider below is added by this test alone, through `proxy.registry`: a Gemini-speaking upstream with a URL
shape and an auth header of its own. Nothing else in the gateway names it, and yet the config takes it, a real call
reaches the strict fake Gemini through it, and the record, the price, the metrics, OpenTelemetry, the Kong export,
`gatewatch show` and the query language all name it.
"""

from __future__ import annotations

import asyncio
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from proxy import config as cfg
from proxy import providers, registry
from proxy.config import TargetConfig
from proxy.observe import genai
from proxy.providers.base import Provider, base_url
from proxy.providers.served import segment
from proxy.record import Record, pricing
from proxy.reports.export import kong_record
from proxy.reports.inspection import inspect
from proxy.simulator import GeminiSimulator, Reply
from proxy.store import query
from tests.conftest import API_KEY, run_gateway

TOY_KEY = "toy-key-0123456789"
MODEL = "gemini-2.5-flash"


class ToyProvider(Provider):
    """A Gemini-speaking upstream: `/toy/v9/{model}/{action}`, authenticated by an `x-toy-key` header."""

    def __init__(self, target: TargetConfig):
        super().__init__(target)
        self._base = base_url(target.api_endpoint, "toy.invalid")
        self._key = target.api_key.get_secret_value() if target.api_key else ""
        self.credential = f"the toy key of target '{target.name}'"
        self.fix = f"set targets.{target.name}.api_key to a key the toy accepts"

    def url(self, action: str) -> str:
        suffix = "?alt=sse" if action == "streamGenerateContent" else ""
        return f"{self._base}/toy/v9/{segment(self.model)}/{action}{suffix}"

    async def headers(self) -> dict[str, str]:
        return {"x-toy-key": self._key}


TOY = registry.Kind(
    "toy",
    provider="tests.test_registry:ToyProvider",
    dialect="gemini",
    credential="api_key",
    otel="toy.genai",
    kong="toy-kong",
    pricing="google",
)


@pytest.fixture
def toy() -> Any:
    with registry.registered(TOY):
        yield TOY


@asynccontextmanager
async def toy_upstream(fake: GeminiSimulator) -> AsyncIterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """The toy's own front on loopback: checks its URL shape and header, then hands the body to the strict fake
    Gemini (which validates it against Google's protos) and streams the fake's answer back."""
    seen: list[tuple[str, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((request.path_qs, dict(request.headers)))
        if request.headers.get("x-toy-key") != TOY_KEY:
            return web.json_response(
                {"error": {"code": 401, "message": "toy key refused", "status": "UNAUTHENTICATED"}},
                status=401,
            )
        model, action = request.match_info["model"], request.match_info["action"]
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{fake.url}/v1beta/models/{model}:{action}",
                params=request.query,
                data=await request.read(),
                headers={"content-type": "application/json", "x-goog-api-key": API_KEY},
            ) as up:
                out = web.StreamResponse(status=up.status, headers={"content-type": up.content_type})
                await out.prepare(request)
                async for chunk in up.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out

    app = web.Application()
    app.router.add_post("/toy/v9/{model}/{action}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def toy_target(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "toy-1",
        "provider": "toy",
        "model": MODEL,
        "api_key": TOY_KEY,
        "api_endpoint": url,
        **extra,
    }


async def counted(url: str, calls: int) -> dict[tuple[str, str], float]:
    """`kong_ai_llm_requests_total` by (ai_provider, request_mode), once it counts `calls` (a call is counted
    after its last bytes, so a moment after the client has its answer)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            async with http.get(url + "/metrics") as r:
                text = await r.text()
            found = {
                (s.labels["ai_provider"], s.labels["request_mode"]): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "kong_ai_llm_requests_total"
            }
            if sum(found.values()) >= calls:
                break
            await asyncio.sleep(0.05)
    return found


async def test_a_toy_provider_added_through_the_registry_alone_serves_a_call_and_is_named_everywhere(
    fake, toy
):
    fake.script(Reply.text("one two three"), Reply.text("four five six", chunks=3))
    async with toy_upstream(fake) as (url, seen):
        async for gw in run_gateway({"targets": [toy_target(url)]}, fake):
            msg = await gw.client.messages.create(
                model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
            )
            async with gw.client.messages.stream(
                model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "again"}]
            ) as s:
                streamed = await s.get_final_message()
            metrics = await counted(gw.url, 2)
            async with aiohttp.ClientSession() as http:
                async with http.get(gw.url + "/v1/models") as r:
                    models = await r.json()
            records = list(gw.records)
    assert msg.content[0].text == "one two three" and streamed.content[0].text == "four five six"
    # the toy's URL shape and its header auth, and none of Google's
    assert [p for p, _ in seen] == [
        f"/toy/v9/{MODEL}/generateContent",
        f"/toy/v9/{MODEL}/streamGenerateContent?alt=sse",
    ]
    for _, headers in seen:
        assert headers["x-toy-key"] == TOY_KEY
        assert "x-goog-api-key" not in headers and "authorization" not in {k.lower() for k in headers}
    # the strict fake took both bodies (it answers 400 to one Google would refuse)
    assert [r.action for r in fake.received] == ["generateContent", "streamGenerateContent"]

    assert len(records) == 2
    for rec in records:
        assert rec.status == 200 and rec.provider == "toy" and rec.target == "toy-1"
        (attempt,) = rec.tried_targets
        assert attempt.provider == "toy" and attempt.upstream_uri.startswith(f"/toy/v9/{MODEL}/")
        # priced at the price library's provider the kind names
        u = rec.usage
        expected = pricing.library_cost(
            MODEL,
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_creation_tokens,
            rec.started_at,
            provider="google",
        )
        assert expected and u.cost == pytest.approx(expected)
        kong = kong_record(rec)
        assert kong["ai"]["proxy"]["meta"]["provider_name"] == "toy-kong"
        assert [t["provider"] for t in kong["ai"]["proxy"]["tried_targets"]] == ["toy-kong"]
        assert genai.chat_attributes(rec)["gen_ai.provider.name"] == "toy.genai"
        span = genai.attempt_attributes(rec, attempt, True)
        assert (
            span["gen_ai.provider.name"] == "toy.genai"
            and span["gen_ai.operation.name"] == "generate_content"
        )
        # `gatewatch show` reads the upstream request as Gemini's (a raw diff would add `contents`)
        diff = inspect(rec).diff
        assert diff is not None and not any(c.path.startswith("contents") for c in diff)
    assert metrics == {("toy", "oneshot"): 1.0, ("toy", "stream"): 1.0}
    assert any(f"{MODEL} (toy)" in m["description"] for m in models["data"])
    assert query.parse("provider:toy") is not None


async def test_the_toy_kinds_credential_is_checked_and_its_refusal_named_through_its_dialect(fake, toy):
    with pytest.raises(cfg.ConfigError, match=r"provider 'toy' needs api_key"):
        cfg.from_mapping({"targets": [toy_target("http://127.0.0.1:9", api_key="")]}, "test", {})
    async with toy_upstream(fake) as (url, _):
        async for gw in run_gateway({"targets": [toy_target(url, api_key="not-the-toy-key")]}, fake):
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    gw.url + "/v1/messages",
                    json={"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
                ) as r:
                    body = await r.json()
    # Google's 401, mapped by the Gemini dialect into the gateway's own failure, naming the toy's credential
    assert r.status == 502 and "the toy key of target 'toy-1'" in body["error"]["message"]
    assert "set targets.toy-1.api_key to a key the toy accepts" in body["error"]["message"]


def test_a_kind_no_longer_registered_is_refused_by_the_config_and_the_query_language():
    with registry.registered(TOY):
        assert (
            cfg.from_mapping({"targets": [toy_target("http://127.0.0.1:9")]}, "t", {}).targets[0].provider
            == "toy"
        )
    with pytest.raises(
        cfg.ConfigError, match=r"provider: Input should be 'vertex', 'gemini', 'anthropic' or"
    ):
        cfg.from_mapping({"targets": [toy_target("http://127.0.0.1:9")]}, "t", {})
    with pytest.raises(query.QueryError, match="provider:toy: use one of vertex, gemini"):
        query.parse("provider:toy")
    # an old record of a kind gone: named as it was recorded, read by its body's shape
    rec = Record(id="r", started_at=1.0, provider="toy")
    assert kong_record(rec)["ai"]["proxy"]["meta"]["provider_name"] == "toy"
    assert genai.chat_attributes(rec)["gen_ai.provider.name"] == "toy"


def test_every_shipped_entry_names_code_that_exists():
    for kind in registry.KINDS.values():
        cls = providers.provider_class(kind.name)
        assert issubclass(cls, Provider) and kind.dialect in registry.DIALECTS
    for d in registry.DIALECTS.values():
        assert callable(pkgutil.resolve_name(d.relay))
        assert d.view is None or callable(pkgutil.resolve_name(d.view))


def test_the_registry_refuses_a_kind_twice_or_of_an_unknown_dialect_and_takes_nothing_then():
    with pytest.raises(ValueError, match="kind 'vertex' is already registered"):
        registry.register(TOY, registry.KINDS["vertex"])
    assert "toy" not in registry.KINDS  # all or nothing
    odd = registry.Kind(
        "odd", "x:Y", dialect="openai", credential="api_key", otel="o", kong="o", pricing=None
    )
    with pytest.raises(ValueError, match="no dialect 'openai'"):
        registry.register(odd)


def test_the_price_library_provider_a_kind_names_is_the_one_asked():
    # Google's table prices Claude on Vertex too: the kind's provider decides, the model's name only guesses
    by_kind = pricing.find("claude-sonnet-4-5", "google")
    assert by_kind is not None and by_kind[0].id == "google"
    guessed = pricing.find("claude-sonnet-4-5")
    assert guessed is not None and guessed[0].id == "anthropic"
    # a model the kind's provider does not list falls back to the guess
    other = pricing.find("claude-sonnet-4-5", "openai")
    assert other is not None and other[0].id == "anthropic"
