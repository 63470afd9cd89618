"""Aggregates over stored calls: percentiles, and `gatewatch stats`' rows per model or per target."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from . import pricing
from .store.base import Summary


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


Key = Literal["model", "target", "session", "agent"]
KEYS: tuple[Key, ...] = ("model", "target", "session", "agent")


def key_of(r: Summary, k: Key) -> str | None:
    """The group a call falls in: the model that answered (else the one asked for), its target, its Claude
    Code session, or its agent (`<session>/main` or `<session>/<agent id>`)."""
    if k == "target":
        return r.target
    if k == "session":
        return r.session_id
    if k == "agent":
        return f"{r.session_id or '(none)'}/{r.agent_id or 'main'}"
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


def counting_notes(rows: Iterable[Summary], into: Counter[str]) -> Iterator[Summary]:
    """`rows` passed on unchanged, each call's note kinds counted into `into` on the way (one pass)."""
    for r in rows:
        into.update(r.notes)
        yield r


def notes_table(counts: Counter[str]) -> str:
    """`gatewatch stats`' translation notes: each kind and how many calls had it, most first."""
    if not counts:
        return "translation notes: none"
    width = max(len(k) for k in counts)
    lines = [f"{'translation notes':<{width}}  calls", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {n:>5}" for k, n in counts.most_common()]
    return "\n".join(lines) + "\n"
