"""OpenTelemetry GenAI export (`gatewatch[otel]`): each finished call as spans and metrics over OTLP/HTTP.

A subscriber of the bus, like `metrics.py`: on `CallFinished` the record becomes one `chat` span (the inbound
call, kind SERVER) with a child span per upstream attempt (`generate_content` for Gemini, `chat` for an
Anthropic upstream; kind CLIENT, as the GenAI conventions want inference spans), timed with the call's own
clocks, and three histograms (`gen_ai.client.operation.duration`, `gen_ai.client.token.usage`,
`gen_ai.client.operation.time_to_first_chunk`). Names and values are those of the GenAI semantic conventions
as released in `opentelemetry-semantic-conventions` (0.66b2: `gen_ai.provider.name`, `gen_ai.usage.*`).

Exporting never slows a call: the subscriber only puts the record on a queue (it runs before the call's last
bytes leave); a worker thread records the metrics and builds the spans, which wait in the SDK's batch
processor and leave on its thread. At most `max_queue_size` spans wait; past that, and for every span a failed
export took with it (a collector that is down), spans are dropped and counted (`dropped`, shown in `/health`
and `/metrics`). Prompts and answers go on the spans only when asked for; headers never do, so no token, key
or credential can.

The SDK is imported only here and only when export is on: the gateway runs without the extra.
"""

from __future__ import annotations

import importlib.util
import logging
import queue
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from proxy import registry
from proxy.config import OtelSettings
from proxy.observe.genai import attempt_attributes, call_error, chat_attributes, content_attributes
from proxy.providers.served import Served
from proxy.record import Record
from proxy.record.events import Bus, CallFinished

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider

log = logging.getLogger("gatewatch")

EXTRA_MISSING = (
    "[otel] export is configured but OpenTelemetry is not installed: pip install 'gatewatch[otel]' "
    "(opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http), or set [otel] enabled = false"
)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
"""the bucket boundaries the GenAI conventions advise for these histograms"""
WORKER_NAP_S = 0.1
"""the export worker's pause between bursts: what it costs is a few wake-ups a second, never per call"""
CLOSE_WAIT_S = 5.0
"""On stop, queued spans get this long to reach the collector; then the exporter gives up (counted)."""


class OtelUnavailable(Exception):
    """Export is configured but the extra is not installed."""


def installed() -> bool:
    """Whether the extra's packages can be imported (looked up, not imported)."""
    try:
        return all(
            importlib.util.find_spec(m) is not None
            for m in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
        )
    except ModuleNotFoundError:  # no `opentelemetry` package at all
        return False


@dataclass(frozen=True, slots=True)
class Plan:
    """Export settings resolved from `[otel]` and the environment."""

    traces_endpoint: str | None
    """None: the exporter's own resolution (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else localhost:4318)"""
    metrics_endpoint: str | None
    headers: dict[str, str] | None
    capture_content: bool
    max_queue_size: int
    metrics_interval_ms: float
    where: str = ""
    """the collector, for people (its address without any user:password)"""


def plan(settings: OtelSettings, env: Mapping[str, str]) -> Plan | None:
    """Whether to export, and where; None: no export. Raises OtelUnavailable when `[otel]` asks for export
    and the extra is missing (the environment alone only warns: it may be meant for another program)."""
    if settings.enabled is False or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    from_env = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    configured = settings.enabled is True or bool(settings.endpoint)
    if not (configured or from_env):
        return None
    if not installed():
        if configured:
            raise OtelUnavailable(EXTRA_MISSING)
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but gatewatch[otel] is not installed: no export")
        return None
    base = settings.endpoint.rstrip("/") if settings.endpoint else None
    capture = settings.capture_content
    if capture is None:
        capture = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower() == "true"
    interval = settings.metrics_interval * 1000 if settings.metrics_interval else None
    if interval is None:
        try:
            interval = float(env.get("OTEL_METRIC_EXPORT_INTERVAL", "") or 60000)
        except ValueError:
            interval = 60000.0
    return Plan(
        traces_endpoint=f"{base}/v1/traces" if base else None,
        metrics_endpoint=f"{base}/v1/metrics" if base else None,
        headers=dict(settings.headers) or None,
        capture_content=capture,
        max_queue_size=settings.max_queue_size,
        metrics_interval_ms=interval,
        where=_host(
            base
            or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "http://localhost:4318"
        ),
    )


def _host(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname}" + (f":{u.port}" if u.port else "") if u.hostname else url


class Counts:
    """What became of the spans. Each field is written by one thread only (`made`/`gated` on the loop,
    `skipped` on the worker, the others on the exporter's thread), so reading them needs no lock."""

    def __init__(self) -> None:
        self.made = 0
        self.gated = 0
        """dropped before the queue: `max_queue_size` spans were already waiting"""
        self.exported = 0
        self.failed = 0
        """dropped by an export that failed (collector down, refused, timed out)"""
        self.skipped = 0
        """not exported on purpose: the client's trace is not sampled"""
        self.metric_exports_failed = 0
        self.down = False

    @property
    def dropped(self) -> int:
        return self.gated + self.failed

    @property
    def waiting(self) -> int:
        return self.made - self.exported - self.failed - self.skipped

    def report(self) -> dict[str, int]:
        return {
            "exported": self.exported,
            "dropped": self.dropped,
            "metric_exports_failed": self.metric_exports_failed,
        }


class Telemetry:
    """The export of one gateway: its own span processor and meter provider (never the global ones: a process
    may run several gateways), fed by `CallFinished` on `bus`.

    A call's spans are made when it has ended, from its record: there is no live span to instrument, so they
    are built as the SDK's finished `ReadableSpan`s and handed to the batch processor, which is ~1 µs a span
    where the tracer's start/end path (sampler, attribute checks, locks) was ~60 µs. Every call is exported
    (no sampler), except one whose client's `traceparent` says its trace is not sampled."""

    def __init__(self, bus: Bus, p: Plan, served: Served | None = None) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.plan = p
        self.served = served
        """folds model attributes into the models served, else `other`: the SDK keeps a series per attribute
        set, and a span name per model is a series too in most tracing backends"""
        self.counts = Counts()
        span_exporter, metric_exporter = _exporters(p, self.counts)
        self._span_exporter = span_exporter
        self._metric_exporter = metric_exporter
        self.resource = _resource()
        self.scope = InstrumentationScope("gatewatch")
        # the SDK's own queue is larger than ours (which counts the batch being exported): ours drops first,
        # and counts
        self.processor = BatchSpanProcessor(
            span_exporter,
            max_queue_size=p.max_queue_size + 64,
            max_export_batch_size=min(512, p.max_queue_size),
        )
        reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=p.metrics_interval_ms)
        self.meter_provider: MeterProvider = MeterProvider(
            resource=self.resource, metric_readers=[reader], shutdown_on_exit=False
        )
        meter = self.meter_provider.get_meter("gatewatch")
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed answer.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._propagator = TraceContextTextMapPropagator()
        self._inbox: queue.SimpleQueue[tuple[Record, int] | threading.Event | None] = queue.SimpleQueue()
        self._nap = threading.Event()
        """set to cut the worker's nap short (a flush, the end)"""
        self._worker = threading.Thread(target=self._work, name="gatewatch-otel", daemon=True)
        self._worker.start()
        self._unsubscribe = bus.subscribe(CallFinished, self.finished)

    # -- a finished call ---------------------------------------------------------------------------------------
    def finished(self, event: CallFinished) -> None:
        """On the loop, before the call's last bytes leave: only a put on the worker's queue."""
        rec = event.record
        if rec.kind != "messages":
            return  # count_tokens generates nothing: no GenAI operation to report
        spans = 1 + len(rec.tried_targets)
        if self.counts.waiting + spans > self.plan.max_queue_size:
            self.counts.gated += spans  # the exporter is behind (or the collector down): never wait for it
            self._inbox.put((rec, 0))  # its metrics are still recorded
            return
        self.counts.made += spans
        self._inbox.put((rec, spans))

    def _work(self) -> None:
        """The worker: metrics and spans from each record, handed to the batch processor. It wakes for the
        first record of a burst, takes whatever has come, then naps `WORKER_NAP_S`: under load it wakes a few
        times a second rather than once per call (a wake-up costs about what a record does)."""
        while True:
            item = self._inbox.get()
            while True:
                if item is None:
                    return
                if isinstance(item, threading.Event):  # a flush waits for what was put before it
                    item.set()
                else:
                    self._export(*item)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
            self._nap.wait(WORKER_NAP_S)

    def _export(self, rec: Record, spans: int) -> None:
        try:
            self._metrics(rec)
            if spans:
                self._spans(rec, spans)
        except Exception:  # a record we can't export must not end the export of the others
            log.exception("otel: the export of %s failed", rec.id)
            self.counts.skipped += spans

    def _spans(self, rec: Record, count: int) -> None:
        """`count` spans (the call and its attempts) to the batch processor."""
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import (
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
            get_current_span,
        )

        parent: SpanContext | None = None
        if "traceparent" in rec.request_headers:  # the client's trace: the call joins it
            parent = get_current_span(self._propagator.extract(rec.request_headers)).get_span_context()
            if not parent.is_valid:
                parent = None
            elif not parent.trace_flags.sampled:
                self.counts.skipped += count
                return
        trace_id = parent.trace_id if parent is not None else random.getrandbits(128)
        flags = TraceFlags(TraceFlags.SAMPLED)
        ctx = SpanContext(trace_id, random.getrandbits(64), False, flags)
        start = int(rec.started_at * 1e9)
        attrs = self._fold(chat_attributes(rec))
        if self.plan.capture_content:
            attrs.update(content_attributes(rec))
        spans = [
            ReadableSpan(
                f"chat {attrs['gen_ai.request.model']}".strip(),
                ctx,
                parent,
                self.resource,
                attrs,
                kind=SpanKind.SERVER,
                status=Status(StatusCode.ERROR, rec.error_message) if "error.type" in attrs else Status(),
                start_time=start,
                end_time=start + int((rec.latency_ms or 0) * 1e6),  # the attempts' clock: they nest
                instrumentation_scope=self.scope,
            )
        ]
        last = len(rec.tried_targets) - 1
        for i, a in enumerate(rec.tried_targets):
            a_attrs = self._fold(attempt_attributes(rec, a, answering=i == last and rec.status == 200))
            a_start = start + int((a.started_ms or 0) * 1e6)
            spans.append(
                ReadableSpan(
                    f"{a_attrs['gen_ai.operation.name']} {a_attrs['gen_ai.request.model']}",
                    SpanContext(trace_id, random.getrandbits(64), False, flags),
                    ctx,
                    self.resource,
                    a_attrs,
                    kind=SpanKind.CLIENT,
                    status=Status(StatusCode.ERROR, a.error) if "error.type" in a_attrs else Status(),
                    start_time=a_start,
                    end_time=a_start + int((a.latency_ms or 0) * 1e6),
                    instrumentation_scope=self.scope,
                )
            )
        for span in spans:
            self.processor.on_end(span)

    def _metrics(self, rec: Record) -> None:
        if not rec.tried_targets:
            return  # answered by the gateway itself (refused, bad body, over budget): no GenAI operation
        last = rec.tried_targets[-1]
        attrs: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": registry.otel_name(last.provider),
            "gen_ai.request.model": rec.request_model,
            "server.address": last.host,
            "server.port": last.port,
        }
        if rec.response_model:
            attrs["gen_ai.response.model"] = rec.response_model
        error = call_error(rec)
        if error:
            attrs["error.type"] = error
        attrs = self._fold(attrs)
        if rec.latency_ms is not None:
            self.duration.record(rec.latency_ms / 1000, attrs)
        u = rec.usage
        prompt = u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens
        if prompt or u.output_tokens:
            self.tokens.record(prompt, {**attrs, "gen_ai.token.type": "input"})
            self.tokens.record(u.output_tokens, {**attrs, "gen_ai.token.type": "output"})
        if rec.request_mode == "stream" and u.time_to_first_token is not None:
            self.first_chunk.record(u.time_to_first_token / 1000, attrs)

    def _fold(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The model attributes as the gateway serves them (`served.py`); the rest as they are."""
        if self.served is not None:
            for key in ("gen_ai.request.model", "gen_ai.response.model"):
                if key in attrs:
                    attrs[key] = self.served.label(str(attrs[key]))
        return attrs

    # -- what /health and /metrics show ------------------------------------------------------------------------
    def report(self) -> dict[str, int]:
        return self.counts.report()

    def collector(self) -> Collector:
        return _Counters(self.counts)

    # -- the end -----------------------------------------------------------------------------------------------
    def flush(self, timeout_s: float = 10.0) -> None:
        """Export what waits now (blocking: call it off the loop)."""
        reached = threading.Event()
        self._inbox.put(reached)
        self._nap.set()
        reached.wait(timeout_s)
        self._nap.clear()
        self.processor.force_flush(int(timeout_s * 1000))
        self.meter_provider.force_flush(int(timeout_s * 1000))

    def close(self, wait_s: float | None = None) -> None:
        """Leave the bus, export what waits for up to `wait_s` (CLOSE_WAIT_S, read when called), then give up on
        the rest (counted as dropped). Blocking: call it off the loop."""
        if wait_s is None:
            wait_s = CLOSE_WAIT_S
        self._unsubscribe()
        self._inbox.put(None)
        self._nap.set()
        self._worker.join(wait_s)
        done = threading.Event()

        def shutdown() -> None:
            try:
                self.processor.shutdown()  # type: ignore[no-untyped-call]
                self.meter_provider.shutdown(timeout_millis=wait_s * 1000)
            finally:
                done.set()

        threading.Thread(target=shutdown, name="gatewatch-otel-close", daemon=True).start()
        if not done.wait(wait_s):
            # ends the exporters' retries: what is left fails at once (the spans counted as dropped)
            self._span_exporter.shutdown()
            self._metric_exporter.shutdown()
            done.wait(wait_s)
        if self.counts.waiting > 0:  # left in the queue when the exporter gave up
            self.counts.failed += self.counts.waiting


def _resource() -> Any:
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    detected = OTELResourceDetector().detect()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    ours = {"service.name": "gatewatch"} if "service.name" not in detected.attributes else {}
    return Resource.create(ours)


def _exporters(p: Plan, counts: Counts) -> tuple[Any, Any]:
    """The OTLP/HTTP exporters, counting what they deliver and what they lose. The SDK logs every failed
    export; we say once that the collector is down, and once that it is back."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult

    for name in ("opentelemetry.exporter.otlp", "opentelemetry.sdk._shared_internal"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def outcome(ok: bool) -> None:
        if not ok and not counts.down:
            log.warning(
                "otel: the collector did not take an export; spans are dropped and counted until it does"
            )
        elif ok and counts.down:
            log.warning("otel: the collector takes exports again")
        counts.down = not ok

    class Spans(OTLPSpanExporter):
        closed = False

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            result = super().export(spans)
            if result is SpanExportResult.SUCCESS:
                counts.exported += len(spans)
            else:
                counts.failed += len(spans)
            outcome(result is SpanExportResult.SUCCESS)
            return result

        def shutdown(self) -> None:
            if not self.closed:  # both `close` and the processor may ask
                self.closed = True
                super().shutdown()  # type: ignore[no-untyped-call]

    class Metrics(OTLPMetricExporter):
        def export(
            self, metrics_data: MetricsData, timeout_millis: float | None = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            result = super().export(metrics_data, timeout_millis, **kwargs)
            if result is not MetricExportResult.SUCCESS:
                counts.metric_exports_failed += 1
            return result

    return (
        Spans(endpoint=p.traces_endpoint, headers=p.headers),
        Metrics(endpoint=p.metrics_endpoint, headers=p.headers),
    )


class _Counters(Collector):
    """gatewatch's own counters of the export, in `/metrics`."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        c = self.counts
        yield CounterMetricFamily(
            "gatewatch_otel_spans_exported", "Spans the OpenTelemetry collector took", value=c.exported
        )
        yield CounterMetricFamily(
            "gatewatch_otel_spans_dropped",
            "Spans dropped: the export queue was full, or the collector did not take them",
            value=c.dropped,
        )
        yield CounterMetricFamily(
            "gatewatch_otel_metric_exports_failed",
            "Metric exports the OpenTelemetry collector did not take",
            value=c.metric_exports_failed,
        )
