"""Aggregates over stored calls: percentiles, and `gatewatch stats`' rows per model or per target."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from proxy.insight.detector import FINDINGS
from proxy.record import pricing
from proxy.store.base import Summary
from proxy.translate.notes import Note


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation, ignoring None; None when there is no value."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    k = (len(vals) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


@dataclass
class Group:
    """One row of `gatewatch stats`."""

    key: str
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cost_unknown: int = 0
    """calls whose price is unknown (not counted in `cost`)"""
    cost_as: float = 0.0
    """the same usage at the what-if model's prices (`--price-as`)"""
    cost_as_unknown: int = 0
    cache_read_tokens: int = 0
    cache_saved: float = 0.0
    """what Gemini's implicit cache saved"""
    cc_cost: float | None = None
    """Claude Code's own estimate (its telemetry), over the calls it named"""
    first_seen: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    ttfts: list[float] = field(default_factory=list, repr=False)

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.latencies, 0.5)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.latencies, 0.95)

    @property
    def ttft_p50_ms(self) -> float | None:
        return percentile(self.ttfts, 0.5)

    @property
    def ttft_p95_ms(self) -> float | None:
        return percentile(self.ttfts, 0.95)


Key = Literal["model", "target", "session", "agent", "prompt"]
KEYS: tuple[Key, ...] = ("model", "target", "session", "agent", "prompt")


def key_of(r: Summary, k: Key) -> str | None:
    """The group a call falls in: the model that answered (else the one asked for), its target, its Claude
    Code session, or its agent (`<session>/main` or `<session>/<agent id>`)."""
    if k == "target":
        return r.target
    if k == "session":
        return r.session_id
    if k == "agent":
        return f"{r.session_id or '(none)'}/{r.agent_id or 'main'}"
    if k == "prompt":  # Claude Code's turn: one user prompt and every call it caused (its telemetry)
        return r.prompt_id
    return r.response_model or r.request_model


def aggregate(
    rows: Iterable[Summary], by: Sequence[Key] = ("model", "target"), price_as: str | None = None
) -> dict[Key, list[Group]]:
    """Group calls by each of `by` in one pass over `rows` (holding only the groups); in each grouping, most
    requests first. `price_as`: also price each call's usage at that model's prices (`cost_as`)."""
    groups: dict[Key, dict[str, Group]] = {k: {} for k in by}
    for r in rows:
        what_if = reprice(r, price_as) if price_as else None
        for k in by:
            key = key_of(r, k) or "(none)"
            g = groups[k].get(key) or groups[k].setdefault(key, Group(key))
            _add(g, r)
            if price_as:
                if what_if is None:
                    g.cost_as_unknown += 1
                else:
                    g.cost_as += what_if
    return {k: sorted(gs.values(), key=lambda g: -g.requests) for k, gs in groups.items()}


def _add(g: Group, r: Summary) -> None:
    g.requests += 1
    g.errors += r.failed
    g.input_tokens += r.input_tokens
    g.output_tokens += r.output_tokens
    g.cache_read_tokens += r.cache_read_tokens
    g.cache_saved += r.cache_saved or 0.0
    if r.cc_cost is not None:
        g.cc_cost = (g.cc_cost or 0.0) + r.cc_cost
    if not g.first_seen or r.started_at < g.first_seen:
        g.first_seen = r.started_at
    if r.cost is None:
        g.cost_unknown += 1
    else:
        g.cost += r.cost
    if r.latency_ms is not None:
        g.latencies.append(r.latency_ms)
    if r.ttft_ms is not None:
        g.ttfts.append(r.ttft_ms)


def reprice(r: Summary, model: str) -> float | None:
    """A stored call's usage at `model`'s prices, as they stood when the call was made."""
    return pricing.price_as(
        model,
        r.kind,
        r.input_tokens,
        r.output_tokens,
        r.cache_read_tokens,
        r.cache_creation_tokens,
        r.started_at,
    )


def counting_notes(
    rows: Iterable[Summary], into: Counter[str], found: list[str] | None = None
) -> Iterator[Summary]:
    """`rows` passed on unchanged, each call's note kinds counted into `into` on the way (one pass); the ids
    of the calls with a finding (`proxy/insight`) appended to `found`."""
    for r in rows:
        into.update(r.notes)
        if found is not None and not FINDINGS.isdisjoint(r.notes):
            found.append(r.id)
        yield r


def waste(findings: Iterable[Note]) -> dict[str, tuple[int, int, float]]:
    """Findings by kind: (calls, tokens, $), the most costly first."""
    out: dict[str, tuple[int, int, float]] = {}
    for n in findings:
        calls, tokens, cost = out.get(n.kind, (0, 0, 0.0))
        out[n.kind] = (
            calls + 1,
            tokens + int(n.data.get("tokens") or 0),
            cost + float(n.data.get("cost") or 0.0),
        )
    return dict(sorted(out.items(), key=lambda kv: -kv[1][2]))


def waste_table(kinds: dict[str, tuple[int, int, float]]) -> str:
    """`gatewatch stats`' last section: what the findings cost, per kind (a cache break: its re-billed tokens
    and what they cost more than cache reads; a repeat, a retry, a loop, a fallback: the whole call)."""
    if not kinds:
        return "waste: none found"
    width = max(len("waste"), *(len(k) for k in kinds))
    lines = [
        f"{'waste':<{width}}  calls  {'tokens':>10}  {'$':>9}",
        f"{'-' * width}  -----  {'-' * 10}  {'-' * 9}",
    ]
    lines += [f"{k:<{width}}  {c:>5}  {t:>10}  {v:>9.4f}" for k, (c, t, v) in kinds.items()]
    return "\n".join(lines) + "\n"


def notes_table(counts: Counter[str]) -> str:
    """`gatewatch stats`' translation notes: each kind and how many calls had it, most first."""
    if not counts:
        return "translation notes: none"
    width = max(len(k) for k in counts)
    lines = [f"{'translation notes':<{width}}  calls", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {n:>5}" for k, n in counts.most_common()]
    return "\n".join(lines) + "\n"
