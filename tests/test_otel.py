"""The OpenTelemetry GenAI export, through the real service (store, gateway, bus) and the strict fake, received
by a real OTLP/HTTP endpoint on loopback that decodes every request with `opentelemetry-proto`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anthropic
import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from prometheus_client.parser import text_string_to_metric_families

from proxy import config as cfg
from proxy import registry
from proxy.config import OtelSettings
from proxy.observe import genai, otel
from proxy.record import Record
from proxy.record.events import CallFinished
from proxy.service import Service
from proxy.simulator import Reply
from proxy.store import Store
from tests.conftest import API_KEY, target_for
from tests.test_routing import AnthropicStandIn

TOKEN = "gw-otel-token-0123456789abcdef"
CLIENT_KEY = "sk-ant-client-key-never-exported-0123"
SESSION = "5f0c7e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
ASK = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 100,
    "system": "be brief",
    "messages": [{"role": "user", "content": "what is the tallest mountain?"}],
    "metadata": {"user_id": json.dumps({"device_id": "d", "account_uuid": "", "session_id": SESSION})},
}


@dataclass
class Collector:
    """An OTLP/HTTP receiver: what it decoded, and the raw bytes (to prove what never left the gateway)."""

    url: str = ""
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)

    def spans(self) -> list[tuple[Span, dict[str, Any]]]:
        return [
            (s, attributes(s.attributes))
            for req in self.traces
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]

    def metric_points(self, name: str) -> list[tuple[Any, dict[str, Any]]]:
        """The points of the last export (cumulative: it holds every call)."""
        return [
            (p, attributes(p.attributes))
            for req in self.metrics[-1:]
            for rm in req.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.histogram.data_points
        ]


def value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    got = Collector()

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        got.raw.append(body)
        got.content_types.add(request.headers.get("content-type", ""))
        got.traces.append(ExportTraceServiceRequest.FromString(body))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    async def metrics(request: web.Request) -> web.Response:
        body = await request.read()
        got.raw.append(body)
        got.metrics.append(ExportMetricsServiceRequest.FromString(body))
        return web.Response(
            body=ExportMetricsServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    got.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield got
    await runner.cleanup()


def make_service(tmp_path, fake, sa_json, otel_settings: dict[str, Any]) -> Service:
    raw = {
        "gateway": {"port": 0, "auth_token": TOKEN},
        "targets": [
            target_for("vertex", fake, sa_json, name="first", weight=200),
            target_for("gemini", fake, sa_json, name="second", weight=100),
        ],
        "otel": {"metrics_interval": 3600, **otel_settings},
    }
    return Service(cfg.from_mapping(raw, "test"), Store(tmp_path / "g.db"))


def client(url: str) -> anthropic.AsyncAnthropic:
    # the gateway token as the bearer, and a client key beside it: neither may reach the collector
    return anthropic.AsyncAnthropic(
        base_url=url,
        auth_token=TOKEN,
        max_retries=0,
        default_headers={"x-api-key": CLIENT_KEY},
    )


async def calls(url: str, fake) -> None:
    """A one-shot call that falls back from the Vertex target to the Gemini API one, and a streamed call of
    another session (the first one's stays on the Gemini API target now) answered by Vertex with cached
    tokens."""
    c = client(url)
    other = {"user_id": json.dumps({"device_id": "d", "account_uuid": "", "session_id": SESSION + "-2"})}
    try:
        fake.script(Reply.error(503, "UNAVAILABLE", "overloaded"), Reply.text("Everest.", prompt_tokens=1200))
        await c.messages.create(**ASK)
        fake.script(Reply.text("Mount Everest, 8849 m.", prompt_tokens=3400, cached_tokens=1000))
        async with c.messages.stream(**{**ASK, "metadata": other}) as stream:
            await stream.get_final_message()
    finally:
        await c.close()


async def test_a_call_reaches_the_collector_as_genai_spans_with_the_records_figures(
    tmp_path, fake, sa_json, collector
):
    svc = make_service(tmp_path, fake, sa_json, {"endpoint": collector.url})
    records: list[Record] = []
    svc.bus.subscribe(CallFinished, lambda e: records.append(e.record))
    url = await svc.start()
    try:
        assert svc.telemetry is not None
        await calls(url, fake)
        await asyncio.to_thread(svc.telemetry.flush)
    finally:
        await svc.stop()
    oneshot, streamed = records
    spans = collector.spans()
    assert collector.content_types == {"application/x-protobuf"}
    assert {
        attributes(rs.resource.attributes)["service.name"]
        for req in collector.traces
        for rs in req.resource_spans
    } == {"gatewatch"}
    chats = [(s, a) for s, a in spans if s.kind == Span.SPAN_KIND_SERVER]
    attempts = [(s, a) for s, a in spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert len(chats) == 2 and len(attempts) == 3

    by_id = {a["gen_ai.response.id"]: (s, a) for s, a in chats}
    s, a = by_id[oneshot.response_id]
    assert s.name == "chat claude-sonnet-4-6"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "gcp.gemini"  # the fallback answered
    assert a["gen_ai.request.model"] == "claude-sonnet-4-6"
    assert a["gen_ai.response.model"] == "gemini-2.5-flash"
    assert a["gen_ai.response.id"].startswith("msg_")
    assert a["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert a["gen_ai.conversation.id"] == SESSION
    assert a["gen_ai.usage.input_tokens"] == 1200
    assert a["gen_ai.usage.output_tokens"] == oneshot.usage.output_tokens > 0
    assert "error.type" not in a
    # the span's clock is the call's own
    assert s.start_time_unix_nano == int(oneshot.started_at * 1e9)
    assert s.end_time_unix_nano == int(oneshot.started_at * 1e9) + int(oneshot.latency_ms * 1e6)
    assert abs(s.end_time_unix_nano - oneshot.ended_at * 1e9) < 5e6
    kids = sorted(
        [(k, ka) for k, ka in attempts if k.parent_span_id == s.span_id],
        key=lambda x: x[0].start_time_unix_nano,
    )
    assert [k.trace_id for k, _ in kids] == [s.trace_id] * 2
    (failed, fa), (ok, oa) = kids
    assert failed.name == "generate_content gemini-2.5-flash"
    assert fa["gen_ai.operation.name"] == "generate_content"
    assert fa["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert fa["error.type"] == "503"
    assert failed.status.code == failed.status.STATUS_CODE_ERROR
    assert fa["server.address"] == "127.0.0.1" and fa["server.port"] == urlsplit(fake.url).port
    assert "gen_ai.usage.input_tokens" not in fa
    assert oa["gen_ai.provider.name"] == "gcp.gemini" and "error.type" not in oa
    assert oa["gen_ai.usage.output_tokens"] == oneshot.usage.output_tokens
    assert oa["gen_ai.response.id"] == oneshot.tried_targets[1].response_id  # Gemini's own responseId
    assert len(oa["gen_ai.response.id"]) == 16
    assert s.start_time_unix_nano <= failed.start_time_unix_nano < failed.end_time_unix_nano
    assert (
        failed.end_time_unix_nano <= ok.start_time_unix_nano < ok.end_time_unix_nano <= s.end_time_unix_nano
    )

    s, a = by_id[streamed.response_id]
    assert a["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert a["gen_ai.usage.input_tokens"] == 3400  # cached included
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(
        streamed.usage.time_to_first_token / 1000
    )
    ((k, ka),) = [(k, ka) for k, ka in attempts if k.parent_span_id == s.span_id]
    assert ka["gen_ai.response.id"] == streamed.tried_targets[0].response_id

    # the metrics: one duration per call, tokens by type, time to first chunk of the stream
    durations = collector.metric_points("gen_ai.client.operation.duration")
    assert sum(p.count for p, _ in durations) == 2
    assert {a["gen_ai.provider.name"] for _, a in durations} == {"gcp.vertex_ai", "gcp.gemini"}
    assert all(a["gen_ai.operation.name"] == "chat" for _, a in durations)
    tokens = collector.metric_points("gen_ai.client.token.usage")
    by_type = {t: sum(p.sum for p, a in tokens if a["gen_ai.token.type"] == t) for t in ("input", "output")}
    assert by_type == {
        "input": 1200 + 3400,
        "output": oneshot.usage.output_tokens + streamed.usage.output_tokens,
    }
    ttfc = collector.metric_points("gen_ai.client.operation.time_to_first_chunk")
    assert [p.count for p, _ in ttfc] == [1]

    # what never leaves the gateway: its token, the client's key, the upstream credentials, and (not opted
    # in) the prompt and the answer
    blob = b"".join(collector.raw)
    for secret in (TOKEN, CLIENT_KEY, API_KEY, "PRIVATE KEY"):
        assert secret.encode() not in blob
    assert b"tallest mountain" not in blob and b"Everest" not in blob
    assert not any(k.startswith("gen_ai.input") or k.startswith("gen_ai.output") for _, a in spans for k in a)


async def test_prompts_and_answers_go_on_the_span_only_when_opted_in(tmp_path, fake, sa_json, collector):
    svc = make_service(tmp_path, fake, sa_json, {"endpoint": collector.url, "capture_content": True})
    url = await svc.start()
    try:
        assert svc.telemetry is not None
        await calls(url, fake)
        await asyncio.to_thread(svc.telemetry.flush)
    finally:
        await svc.stop()
    chats = [a for s, a in collector.spans() if s.kind == Span.SPAN_KIND_SERVER]
    assert len(chats) == 2
    for a in chats:
        assert json.loads(a["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "what is the tallest mountain?"}]}
        ]
        assert json.loads(a["gen_ai.system_instructions"]) == [{"type": "text", "content": "be brief"}]
        (answer,) = json.loads(a["gen_ai.output.messages"])
        assert answer["role"] == "assistant" and "Everest" in answer["parts"][0]["content"]
    blob = b"".join(collector.raw)
    for secret in (TOKEN, CLIENT_KEY, API_KEY, "PRIVATE KEY"):
        assert secret.encode() not in blob


async def test_the_endpoint_variable_alone_sends_the_calls_to_the_collector(
    tmp_path, fake, sa_json, collector, monkeypatch
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gatewatch-team-a")
    svc = make_service(tmp_path, fake, sa_json, {})  # no endpoint, no enabled: the variable decides
    url = await svc.start()
    c = client(url)
    try:
        fake.script(Reply.text("via the variable"))
        await c.messages.create(**ASK)
        assert svc.telemetry is not None
        await asyncio.to_thread(svc.telemetry.flush)
    finally:
        await c.close()
        await svc.stop()
    assert len(collector.spans()) == 2
    (resource,) = {
        attributes(rs.resource.attributes)["service.name"]
        for req in collector.traces
        for rs in req.resource_spans
    }
    assert resource == "gatewatch-team-a"


@pytest.fixture
async def anthropic_api() -> AsyncIterator[AnthropicStandIn]:
    api = AnthropicStandIn()
    app = web.Application()
    app.router.add_post("/{tail:.*}", api.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield api
    await runner.cleanup()


async def test_an_anthropic_upstream_is_a_chat_attempt_of_provider_anthropic(
    tmp_path, anthropic_api, collector
):
    standin = anthropic_api
    raw = {
        "gateway": {"port": 0, "auth_token": TOKEN},
        "targets": [{"name": "claude", "provider": "anthropic", "model": "*", "api_endpoint": standin.url}],
        "otel": {"endpoint": collector.url, "metrics_interval": 3600},
    }
    svc = Service(cfg.from_mapping(raw, "test"), Store(tmp_path / "g.db"))
    url = await svc.start()
    c = client(url)
    try:
        await c.messages.create(**ASK)
        assert svc.telemetry is not None
        await asyncio.to_thread(svc.telemetry.flush)
    finally:
        await c.close()
        await svc.stop()
    assert standin.received  # the client's key went to the upstream…
    (chat,) = [a for s, a in collector.spans() if s.kind == Span.SPAN_KIND_SERVER]
    (attempt,) = [a for s, a in collector.spans() if s.kind == Span.SPAN_KIND_CLIENT]
    assert chat["gen_ai.provider.name"] == attempt["gen_ai.provider.name"] == "anthropic"
    assert attempt["gen_ai.operation.name"] == "chat"
    assert chat["gen_ai.response.id"] == attempt["gen_ai.response.id"] == "msg_x"
    assert chat["gen_ai.usage.input_tokens"] == 50 and chat["gen_ai.usage.cache_read.input_tokens"] == 10
    assert chat["gen_ai.response.finish_reasons"] == ["end_turn"]
    blob = b"".join(collector.raw)
    assert CLIENT_KEY.encode() not in blob and TOKEN.encode() not in blob  # …and never to the collector


async def test_a_call_that_carries_a_traceparent_joins_the_clients_trace(tmp_path, fake, sa_json, collector):
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    svc = make_service(tmp_path, fake, sa_json, {"endpoint": collector.url})
    url = await svc.start()
    c = client(url)
    try:
        fake.script(Reply.text("joined"))
        await c.messages.create(**ASK, extra_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
        fake.script(Reply.text("not sampled"))
        await c.messages.create(**ASK, extra_headers={"traceparent": f"00-{'1' * 32}-{parent_id}-00"})
        assert svc.telemetry is not None
        await asyncio.to_thread(svc.telemetry.flush)
    finally:
        await c.close()
        await svc.stop()
    spans = collector.spans()
    assert len(spans) == 2  # the unsampled trace's call sent none
    (chat,) = [s for s, _ in spans if s.kind == Span.SPAN_KIND_SERVER]
    assert chat.trace_id.hex() == trace_id and chat.parent_span_id.hex() == parent_id
    assert all(s.trace_id == chat.trace_id for s, _ in spans)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_collector_that_is_down_costs_the_calls_nothing_but_a_counter(
    tmp_path, fake, sa_json, monkeypatch
):
    monkeypatch.setattr(otel, "CLOSE_WAIT_S", 1.0)  # the stop's wait for the collector, 5 s in the product
    down = f"http://127.0.0.1:{closed_port()}"
    svc = make_service(tmp_path, fake, sa_json, {"endpoint": down, "max_queue_size": 4})
    url = await svc.start()
    c = client(url)
    try:
        took = []
        for _ in range(8):
            fake.script(Reply.text("fine"))
            t0 = time.perf_counter()
            msg = await c.messages.create(**ASK)
            took.append(time.perf_counter() - t0)
            assert msg.content[0].text == "fine"
        async with aiohttp.ClientSession(headers={"authorization": f"Bearer {TOKEN}"}) as http:
            async with http.get(f"{url}/health") as r:
                health = await r.json()
            async with http.get(f"{url}/metrics") as r:
                text = await r.text()
    finally:
        await c.close()
        t0 = time.perf_counter()
        await svc.stop()
        stopped_in = time.perf_counter() - t0
    # 8 calls of 2 spans each, at most 4 waiting: at least 12 dropped at once, the rest when exports fail
    assert health["otel"]["dropped"] >= 12 and health["otel"]["exported"] == 0
    found = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert found["gatewatch_otel_spans_dropped_total"] >= health["otel"]["dropped"]  # read just after
    assert max(took) < 2.0  # no call waited on the exporter (its retries alone take seconds)
    assert stopped_in < otel.CLOSE_WAIT_S + 3  # and a stop gives up on the collector in bounded time


def test_the_endpoint_variable_alone_turns_export_on_and_settings_can_turn_it_off():
    on = otel.plan(OtelSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert on is not None and on.traces_endpoint is None  # the exporter reads the variables itself
    assert not on.capture_content
    assert otel.plan(OtelSettings(), {}) is None
    assert otel.plan(OtelSettings(enabled=False), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}) is None
    assert (
        otel.plan(OtelSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})
        is None
    )
    p = otel.plan(
        OtelSettings(endpoint="http://c:4318/"),
        {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
    )
    assert p is not None and p.traces_endpoint == "http://c:4318/v1/traces" and p.capture_content
    assert p.metrics_endpoint == "http://c:4318/v1/metrics" and p.where == "http://c:4318"
    hidden = otel.plan(
        OtelSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://u:pw-0123456789@c.example/otlp"}
    )
    assert hidden is not None and hidden.where == "https://c.example"


def test_a_collector_header_in_the_config_is_a_secret():
    config = cfg.from_mapping({"otel": {"headers": {"x-honeycomb-team": "hc-secret-0123456789"}}}, "test")
    assert "hc-secret-0123456789" in config.secrets()


WITHOUT_EXTRA = """
import asyncio, importlib.abc, pathlib, sys, tempfile
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
import aiohttp
from proxy import config as cfg
from proxy import registry
from proxy.observe import otel
from proxy.service import Service, ServiceError
from proxy.store import Store

target = {"name": "g", "provider": "gemini", "model": "gemini-2.5-flash", "api_key": "AIzaSy-unused-0123456789",
          "api_endpoint": "http://127.0.0.1:9", "connect_timeout": 1}
def service(**otel_settings):
    raw = {"gateway": {"port": 0}, "targets": [target], "otel": otel_settings}
    return Service(cfg.from_mapping(raw, "test"), Store(pathlib.Path(tempfile.mkdtemp()) / "g.db"))

async def main():
    assert not otel.installed()
    # the variable alone: a warning, and the gateway serves (its upstream is unreachable: an Anthropic error)
    svc = service()
    url = await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
            async with http.post(url + "/v1/messages", json=body) as r:
                print("status", r.status, (await r.json())["type"])
    finally:
        await svc.stop()
    # [otel] asked for: refused at start, saying what to install
    svc = service(enabled=True)
    try:
        await svc.start()
    except ServiceError as exc:
        print("refused", exc.exit_code, exc)
    finally:
        await svc.stop()
    assert not [m for m in sys.modules if m.startswith("opentelemetry")]

asyncio.run(main())
"""


def test_the_gateway_runs_without_the_extra_and_says_what_to_install_when_otel_is_configured(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"^status 5\d\d error$", out.stdout, re.M)  # the call answered in Anthropic's shape
    assert (
        "refused 2 [otel] export is configured but OpenTelemetry is not installed: pip install 'gatewatch[otel]'"
        in out.stdout
    )
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is set but gatewatch[otel] is not installed" in out.stderr


def test_the_names_are_the_released_genai_conventions():
    names = {v for v in vars(gen_ai_attributes).values() if isinstance(v, str)} | {
        "error.type",
        "server.address",
        "server.port",
    }
    from proxy.record import Attempt, Record, Usage

    rec = Record(
        id="r",
        started_at=1.0,
        ended_at=2.0,
        request_model="m",
        request_mode="stream",
        provider="vertex",
        response_model="m",
        response_id="msg_1",
        stop_reason="end_turn",
        session_id="s",
        status=500,
        error_type="api_error",
        usage=Usage(
            input_tokens=1,
            output_tokens=2,
            cache_read_tokens=3,
            cache_creation_tokens=4,
            time_to_first_token=5,
        ),
    )
    rec.client_request = {"system": "x", "messages": [{"role": "user", "content": "y"}]}
    rec.response = {"type": "message", "content": [{"type": "text", "text": "z"}]}
    a = Attempt(target="t", provider="vertex", model="m", status=500, error="e", response_id="g")
    used = (
        set(genai.chat_attributes(rec))
        | set(genai.attempt_attributes(rec, a, True))
        | set(genai.content_attributes(rec))
    )
    assert used - names == set()
    metric_names = {v for v in vars(gen_ai_metrics).values() if isinstance(v, str)}
    assert {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
    } <= metric_names
    ours = {k.otel for k in registry.KINDS.values()}
    assert ours <= {v.value for v in gen_ai_attributes.GenAiProviderNameValues}


def test_captured_content_keeps_tool_calls_and_results_and_leaves_images_out():
    rec = Record(id="r", started_at=1.0)
    rec.client_request = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "base64", "data": "iVBORw0KGgo="}}],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "look", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x = 1"}],
            },
        ]
    }
    (image, call, result) = json.loads(genai.content_attributes(rec)["gen_ai.input.messages"])
    assert image == {"role": "user", "parts": [{"type": "image"}]}
    assert call["parts"] == [
        {"type": "reasoning", "content": "look"},
        {"type": "tool_call", "id": "toolu_1", "name": "Read", "arguments": {"path": "a.py"}},
    ]
    assert result["parts"] == [{"type": "tool_call_response", "id": "toolu_1", "response": "x = 1"}]
    assert "gen_ai.output.messages" not in genai.content_attributes(rec)  # no answer kept
