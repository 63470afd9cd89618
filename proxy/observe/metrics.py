"""`GET /metrics`: Prometheus counters and histograms of the calls, fed by the event bus.

Names and labels are Kong AI Gateway's (its Prometheus plugin's `ai_llm_*` metrics, with the `kong_` prefix), so
dashboards built for Kong chart gatewatch unchanged; the labels that mean nothing here (`cache_status`,
`vector_db`, `embeddings_provider`, `embeddings_model`, `workspace`) are present and empty. gatewatch's own
metrics (`gatewatch_*`) stand beside them.

Each gateway has a registry of its own (never prometheus_client's global one: a process may run several
gateways, as the tests do). A finished call costs a few additions to plain numbers on the loop (`_Calls`, made
into Prometheus families only when scraped); whatever is read from the gateway (in flight, circuit state, budget spend)
is read only when scraped (on the loop), and the text is rendered on a worker thread. A model label is one the
config serves or the price table knows, else `other` (`served.py`): clients never add series.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from proxy.providers.served import Served
from proxy.record import Record
from proxy.record.events import Bus, CallFinished, RecordsLost

# a `*_created` series beside every counter and histogram doubles what Prometheus stores, for a timestamp
# Kong's exposition doesn't have and no dashboard reads
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format every Prometheus reads. prometheus_client's own default names version 1.0.0
(UTF-8 names), which Prometheus 2 does not know; with its default escaping and our plain names the text is
the same."""

KONG_LABELS = (
    "ai_provider",
    "ai_model",
    "cache_status",
    "vector_db",
    "embeddings_provider",
    "embeddings_model",
    "workspace",
    "request_mode",
)
LATENCY_BUCKETS_MS = (250, 500, 1000, 2000, 5000, 10000, 30000, 60000)
"""Kong's buckets for `ai_llm_provider_latency_ms` (used for time to first token too)"""
TPOT_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 250, 500, 1000)
"""ms per output token: a few to a few tens for Gemini, so the latency buckets would put every call in one"""


def kong_labels(rec: Record, served: Served | None = None) -> tuple[str, ...]:
    """The Kong label values of a call, in KONG_LABELS order. With `served`, the model is one the gateway
    serves or `other`: a client's model string never adds series."""
    tried = rec.tried_targets[-1].model if rec.tried_targets else ""
    model = served.label(rec.response_model, tried) if served is not None else rec.response_model or tried
    return (rec.provider or "", model, "", "", "", "", "", rec.request_mode)


def fallbacks(rec: Record) -> int:
    """How many times the call moved on to another target."""
    tried = rec.tried_targets
    return sum(1 for a, b in zip(tried, tried[1:], strict=False) if a.target != b.target)


class Metrics:
    """The gateway's Prometheus registry, fed by `CallFinished` and `RecordsLost` on `bus`.

    `in_flight`, `unrecorded`, `targets` and `spend` are read at scrape time: the calls in flight, the records
    the store would not take, each target's circuit state (`Router.health()`), and the budget's spend by scope.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        in_flight: Callable[[], int] = lambda: 0,
        unrecorded: Callable[[], int] = lambda: 0,
        targets: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
        spend: Callable[[], Mapping[str, float]] = dict,
        served: Served | None = None,
    ) -> None:
        self.served = served
        """folds the model label into the models served (None: any model is a label value)"""
        self.registry = CollectorRegistry(auto_describe=False)
        self.calls = _Calls()
        self.registry.register(self.calls)
        self.lost = 0
        """records the store gave up on (sum of `RecordsLost.count`)"""
        self._live = _Live(self, in_flight, unrecorded, targets, spend)
        self.registry.register(self._live)
        self._unsubscribe = [
            bus.subscribe(CallFinished, self.finished, later=True),  # counted after the call's last bytes
            bus.subscribe(RecordsLost, self._lost),
        ]

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def finished(self, event: CallFinished) -> None:
        rec = event.record
        calls = self.calls
        for a in rec.tried_targets:
            key = (a.target, str(a.status) if a.status is not None else "error")
            calls.attempts[key] = calls.attempts.get(key, 0) + 1
        moved = fallbacks(rec)
        if moved:
            calls.fallbacks += moved
        if rec.kind != "messages" or not rec.tried_targets:
            # Kong's metrics are of chat calls that reached a provider: count_tokens generates nothing, and a
            # call the gateway answered itself (refused at the door, bad body, over budget) reached none
            return
        c = calls.series.get(labels := kong_labels(rec, self.served))
        if c is None:
            c = calls.series[labels] = _Series()
        c.requests += 1
        u = rec.usage
        if u.cost:  # as Kong: only a call that cost something, so a label set that never did has no series
            calls.cost[labels] = calls.cost.get(labels, 0.0) + u.cost
        prompt = u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens
        if prompt or u.output_tokens:
            c.prompt += prompt
            c.completion += u.output_tokens
            c.total += prompt + u.output_tokens
        if rec.llm_latency_ms is not None:
            c.latency.observe(rec.llm_latency_ms)
        if u.time_to_first_token is not None:
            c.ttft.observe(u.time_to_first_token)
        if u.time_per_token is not None:
            c.tpot.observe(u.time_per_token)

    def _lost(self, event: RecordsLost) -> None:
        self.lost += event.count  # on the store's writer thread: one int, read whole by a scrape

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    async def scrape(self) -> bytes:
        """`exposition()` rendered on a worker thread, so a scrape never holds up a call on the loop. The
        gateway's own figures and the calls' counts are read first, here on the loop, where they change."""
        self._live.freeze()
        self.calls.freeze()
        return await asyncio.to_thread(self.exposition)


class _Hist:
    """A histogram's counts per bucket (not cumulative; the last is +Inf's) and sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value

    def copy(self) -> _Hist:
        h = _Hist(self.bounds)
        h.counts, h.sum = list(self.counts), self.sum
        return h

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative, each named as prometheus_client names a bound (`250.0`, `+Inf`)."""
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, n in zip((*self.bounds, INF), self.counts, strict=True):
            acc += n
            out.append((str(floatToGoString(bound)), acc))  # type: ignore[no-untyped-call]
        return out


class _Series:
    """One Kong label set's figures but its cost (`_Calls.cost`)."""

    __slots__ = ("requests", "prompt", "completion", "total", "latency", "ttft", "tpot")

    def __init__(self) -> None:
        self.requests = 0
        self.prompt = self.completion = self.total = 0
        self.latency = _Hist(LATENCY_BUCKETS_MS)
        self.ttft = _Hist(LATENCY_BUCKETS_MS)
        self.tpot = _Hist(TPOT_BUCKETS_MS)

    def copy(self) -> _Series:
        s = _Series()
        s.requests, s.prompt, s.completion, s.total = (
            self.requests,
            self.prompt,
            self.completion,
            self.total,
        )
        s.latency, s.ttft, s.tpot = self.latency.copy(), self.ttft.copy(), self.tpot.copy()
        return s


class _Calls(Collector):
    """The calls' counters and histograms as plain numbers, added to on the loop (a few additions a call,
    where prometheus_client's metrics took a lock and a validation per increment), made into Prometheus
    families only when scraped."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, ...], _Series] = {}
        self.cost: dict[tuple[str, ...], float] = {}
        """by label set, from the first call that cost something (a series in the order they came)"""
        self.attempts: dict[tuple[str, str], int] = {}
        self.fallbacks = 0
        self._frozen: (
            tuple[
                dict[tuple[str, ...], _Series],
                dict[tuple[str, ...], float],
                dict[tuple[str, str], int],
                int,
            ]
            | None
        ) = None

    def freeze(self) -> None:
        """Copy the figures now (on the loop) for the next `collect`, which may run on a thread."""
        self._frozen = (
            {k: s.copy() for k, s in self.series.items()},
            dict(self.cost),
            dict(self.attempts),
            self.fallbacks,
        )

    def collect(self) -> Iterable[Metric]:
        frozen, self._frozen = self._frozen, None
        series, costs, attempts, moved = frozen or (
            {k: s.copy() for k, s in list(self.series.items())},
            dict(self.cost),
            dict(self.attempts),
            self.fallbacks,
        )
        requests = CounterMetricFamily(
            "kong_ai_llm_requests_total", "AI requests total per ai_provider", labels=KONG_LABELS
        )
        cost = CounterMetricFamily(
            "kong_ai_llm_cost_total", "AI requests cost (USD) per ai_provider", labels=KONG_LABELS
        )
        tokens = CounterMetricFamily(
            "kong_ai_llm_tokens_total",
            "AI tokens total per ai_provider; prompt_tokens include cache reads and writes",
            labels=(*KONG_LABELS, "token_type"),
        )
        latency = HistogramMetricFamily(
            "kong_ai_llm_provider_latency_ms", "LLM response latency (ms) per ai_provider", labels=KONG_LABELS
        )
        ttft = HistogramMetricFamily(
            "kong_ai_llm_ttft_latency_ms", "Time to the first content token (ms)", labels=KONG_LABELS
        )
        tpot = HistogramMetricFamily(
            "kong_ai_llm_tpot_latency_ms", "Time per output token (ms)", labels=KONG_LABELS
        )
        for labels, s in series.items():
            requests.add_metric(labels, s.requests)
            for kind, n in (("prompt_tokens", s.prompt), ("completion_tokens", s.completion)):
                tokens.add_metric((*labels, kind), n)
            tokens.add_metric((*labels, "total_tokens"), s.total)
            for family, h in ((latency, s.latency), (ttft, s.ttft), (tpot, s.tpot)):
                family.add_metric(labels, h.buckets(), h.sum)
        for labels, usd in costs.items():
            cost.add_metric(labels, usd)
        tried = CounterMetricFamily(
            "gatewatch_upstream_attempts_total",
            "Upstream attempts by target and HTTP status (`error`: no status, the connection failed)",
            labels=("target", "status"),
        )
        for key, n in attempts.items():
            tried.add_metric(key, n)
        yield from (requests, cost, tokens, latency, ttft, tpot, tried)
        yield CounterMetricFamily(
            "gatewatch_fallbacks_total", "Times a call moved on to another target", value=moved
        )


class _Live(Collector):
    """What is read from the gateway when scraped rather than counted as it happens."""

    def __init__(
        self,
        metrics: Metrics,
        in_flight: Callable[[], int],
        unrecorded: Callable[[], int],
        targets: Callable[[], Mapping[str, Mapping[str, Any]]],
        spend: Callable[[], Mapping[str, float]],
    ) -> None:
        self.metrics = metrics
        self.in_flight = in_flight
        self.unrecorded = unrecorded
        self.targets = targets
        self.spend = spend
        self._frozen: tuple[int, int, Mapping[str, Mapping[str, Any]], Mapping[str, float]] | None = None

    def freeze(self) -> None:
        """Read the gateway's figures now (on its loop) for the next `collect`, which may run on a thread."""
        targets = {name: dict(h) for name, h in self.targets().items()}
        self._frozen = (self.in_flight(), self.unrecorded(), targets, dict(self.spend()))

    def collect(self) -> Iterable[Metric]:
        frozen, self._frozen = self._frozen, None
        in_flight, unrecorded, targets, spent = frozen or (
            self.in_flight(),
            self.unrecorded(),
            self.targets(),
            self.spend(),
        )
        yield GaugeMetricFamily("gatewatch_in_flight", "Calls in flight", value=in_flight)
        yield CounterMetricFamily(
            "gatewatch_records_lost",
            "Records the store could not take or gave up on",
            value=self.metrics.lost + unrecorded,
        )
        state = GaugeMetricFamily(
            "gatewatch_target_state",
            "Each target's circuit state: 1 for the state it is in (ok, cooling, refused)",
            labels=("target", "state"),
        )
        for name, h in targets.items():
            for s in ("ok", "cooling", "refused"):
                state.add_metric((name, s), 1.0 if h.get("state") == s else 0.0)
        yield state
        spend = GaugeMetricFamily(
            "gatewatch_budget_spend_usd", "Spend counted against each budget cap", labels=("scope",)
        )
        for scope, usd in spent.items():
            spend.add_metric((scope,), usd)
        yield spend
