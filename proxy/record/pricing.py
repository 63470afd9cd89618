"""The rule that turns a record's usage into USD: the whole pricing rule, here only.

Prices come from `genai-prices` (Pydantic's maintained price database: tiers, cache reads and writes, dated
price changes), looked up by the model that answered; a target's own prices (`input_cost`…) override it, and a
target's `price_multiplier` scales the library's figure (Vertex regional endpoints: 1.1 on the models Google
prices 10% higher there, which the library does not record for Google).

An unknown model costs None, never a silent 0; counting tokens is free; a call that billed no token costs 0.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

import genai_prices
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices, TimeOfDateConstraint

from proxy import registry
from proxy.config import TargetConfig
from proxy.record import Record

CACHE_WRITE_FACTOR = 1.25
"""An override without a cache-write price bills a cache write at 1.25x input (Anthropic's 5-minute rate)."""


@dataclass(frozen=True)
class Price:
    """A target's own prices, USD per 1M tokens (no tiers)."""

    input: float
    output: float
    cached: float
    """A cache read."""
    cache_write: float | None = None
    """None: `CACHE_WRITE_FACTOR` x input."""

    def cost(self, input_tokens: int, output_tokens: int, read: int, write: int) -> float:
        pwrite = self.cache_write if self.cache_write is not None else CACHE_WRITE_FACTOR * self.input
        return (
            input_tokens * self.input + output_tokens * self.output + read * self.cached + write * pwrite
        ) / 1_000_000


_VERSION_SUFFIX = re.compile(r"-\d{3}$")


def _candidates(model: str) -> list[str]:
    """The names to try: as given (`models/` and Vertex's `publishers/…/models/` dropped), then without a
    `-001` version suffix or a Vertex `@date`."""
    m = model.lower().strip().removeprefix("models/").split("/")[-1]
    out = [m]
    for cut in (m.split("@")[0], _VERSION_SUFFIX.sub("", m)):
        if cut and cut not in out:
            out.append(cut)
    return out


def _guess(model: str) -> str | None:
    """The price library's provider for a model name, when no kind says (a what-if, the models list)."""
    if model.startswith("claude"):
        return "anthropic"
    if "gemini" in model or model.startswith("gemma"):
        return "google"
    return None  # the library guesses from the name (or says it can't)


@lru_cache(maxsize=512)
def find(model: str | None, provider: str | None = None) -> tuple[Provider, ModelInfo] | None:
    """The library's provider and model for a model name; None when it has no price for it. `provider`: the
    serving kind's price provider (`registry.pricing_id`), tried first; then the one the name suggests."""
    if not model:
        return None
    snapshot = genai_prices.data_snapshot.get_snapshot()
    for by_kind in (True, False) if provider else (False,):
        for ref in _candidates(model):
            try:
                return snapshot.find_provider_model(ref, None, provider if by_kind else _guess(ref), None)
            except LookupError:
                continue
    return None


def model_price(
    model: str | None, when: datetime | None = None, provider: str | None = None
) -> ModelPrice | None:
    """The library's prices for a model (per 1M tokens, possibly tiered), as they stood at `when` (now)."""
    found = find(model, provider)
    return found[1].get_prices(when or datetime.now(tz=UTC)) if found else None


def rate(price: Decimal | TieredPrices | None, prompt_tokens: int = 0) -> float | None:
    """A per-1M figure at a prompt size (a tier applies to the whole prompt once it is passed)."""
    if price is None:
        return None
    if isinstance(price, TieredPrices):
        value = price.base
        for tier in price.tiers:
            if prompt_tokens > tier.start:
                value = tier.price
        return float(value)
    return float(price)


def override(target: TargetConfig | None) -> Price | None:
    """The target's own prices, when it gives both input and output (cached defaults to input)."""
    if target is None or target.input_cost is None or target.output_cost is None:
        return None
    cached = target.cached_cost if target.cached_cost is not None else target.input_cost
    return Price(target.input_cost, target.output_cost, cached, target.cache_write_cost)


def price(record: Record, target: TargetConfig | None = None) -> float | None:
    """USD for one exchange, from its usage and the target that served it.

    Anthropic's convention: `input_tokens` excludes cache reads and cache writes, each priced at its own rate.
    The library's is the prompt's whole size (which also picks the tier), so the three are added for it.
    Plain arithmetic on rates read from the library once per model and price period (`rated_cost`).
    """
    u = record.usage
    if record.kind == "count_tokens":
        return 0.0  # counting is free on both Google APIs and on Anthropic's
    if not (u.input_tokens or u.output_tokens or u.cache_read_tokens or u.cache_creation_tokens):
        return 0.0  # nothing was billed (an error, a refusal before any token)
    own = override(target)
    if own is not None:
        return own.cost(u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_creation_tokens)
    cost = rated_cost(
        record.response_model or record.request_model,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_creation_tokens,
        record.started_at,
        registry.pricing_id(record.provider),
    )
    multiplier = target.price_multiplier if target is not None else 1.0
    return None if cost is None else cost * multiplier


@dataclass(frozen=True, slots=True)
class Rates:
    """One model's library prices in one price period, as USD per token: `per[k]` (input, output, cache read,
    cache write) applies while the prompt's whole size is above `starts[k - 1]` and not above `starts[k]`
    (the library's tiers: crossing one prices the whole prompt at its rate)."""

    starts: tuple[int, ...]
    per: tuple[tuple[float, float, float, float], ...]

    def cost(self, input_tokens: int, output_tokens: int, read: int, write: int) -> float:
        prompt = input_tokens + read + write
        k = 0
        for start in self.starts:
            if prompt > start:
                k += 1
        i, o, r, w = self.per[k]
        return input_tokens * i + output_tokens * o + read * r + write * w


resolutions = 0
"""how many times rates were read from the library (`resolve`): once per model and price period"""
_rates: dict[tuple[str, str | None, int, int], Rates | None] = {}
_RATES_MAX = 1024


def _tier_starts(mp: ModelPrice) -> tuple[int, ...]:
    starts = {t.start for v in vars(mp).values() if isinstance(v, TieredPrices) for t in v.tiers}
    return tuple(sorted(starts))


def resolve(model: str, when: datetime, provider: str | None = None) -> Rates | None:
    """Read a model's rates from the library as they stand at `when`: its own price computation, probed once
    per tier with one kind of token at a time (a price is linear in each count within a tier), so the library
    stays the source of truth for which count each price applies to. None: no price for the model."""
    global resolutions
    resolutions += 1
    found = find(model, provider)
    if found is None:
        return None
    source, info = found
    starts = _tier_starts(info.get_prices(when))
    million = 1_000_000

    def at(i: int = 0, o: int = 0, r: int = 0, w: int = 0) -> Decimal:
        usage = genai_prices.Usage(
            input_tokens=i + r + w, cache_read_tokens=r, cache_write_tokens=w, output_tokens=o
        )
        return info.calc_price(usage, source, genai_request_timestamp=when).total_price

    per = []
    for k in range(len(starts) + 1):
        n = (starts[0] if starts else million) if k == 0 else starts[k - 1] + 1  # a prompt size in the tier
        if n == 0:  # the base tier holds only an empty prompt: only output is priced there
            per.append((0.0, float(at(o=million) / million), 0.0, 0.0))
            continue
        base = at(i=n)
        output = (at(i=n, o=million) - base) / million
        per.append((float(base / n), float(output), float(at(r=n) / n), float(at(w=n) / n)))
    return Rates(starts, tuple(per))


def rated_cost(
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    read: int,
    write: int,
    started_at: float = 0,
    provider: str | None = None,
) -> float | None:
    """`library_cost` by plain arithmetic: the rates of `model` on `started_at`'s day (UTC, the library's
    price periods start on dates), resolved from the library the first time and kept. A model whose prices
    change by time of day is asked of the library every call."""
    if not model:
        return None
    epoch = started_at or time.time()
    snapshot = id(genai_prices.data_snapshot.get_snapshot())
    key = (model, provider, int(epoch // 86400), snapshot)  # the UTC day
    try:
        rates = _rates[key]
    except KeyError:
        if _by_time_of_day(model, provider):
            return library_cost(model, input_tokens, output_tokens, read, write, started_at, provider)
        if len(_rates) >= _RATES_MAX:
            _rates.clear()
        rates = _rates[key] = resolve(model, datetime.fromtimestamp(epoch, tz=UTC), provider)
    return None if rates is None else rates.cost(input_tokens, output_tokens, read, write)


def _by_time_of_day(model: str, provider: str | None) -> bool:
    found = find(model, provider)
    if found is None or not isinstance(found[1].prices, list):
        return False
    return any(isinstance(p.constraint, TimeOfDateConstraint) for p in found[1].prices)


def forget() -> None:
    """Drop the resolved rates (the library's prices were replaced: `set_custom_snapshot`)."""
    _rates.clear()
    find.cache_clear()


def library_cost(
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    read: int,
    write: int,
    started_at: float = 0,
    provider: str | None = None,
) -> float | None:
    """USD from the library's prices of `model` as they stood at `started_at` (epoch s; 0: now), for usage
    in Anthropic's convention (input without cache reads and writes). None when the model has no price.
    `provider`: the serving kind's price provider (`registry.pricing_id`)."""
    found = find(model, provider)
    if found is None:
        return None
    source, info = found
    usage = genai_prices.Usage(
        input_tokens=input_tokens + read + write,
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=output_tokens,
    )
    when = datetime.fromtimestamp(started_at, tz=UTC) if started_at else None
    return float(info.calc_price(usage, source, genai_request_timestamp=when).total_price)


def price_as(
    model: str,
    kind: str,
    input_tokens: int,
    output_tokens: int,
    read: int,
    write: int,
    started_at: float = 0,
) -> float | None:
    """What-if: the same usage at `model`'s library prices (no target's own prices: another model's call).
    The rule of `price` otherwise: counting is free, a call that billed nothing costs 0."""
    if kind == "count_tokens" or not (input_tokens or output_tokens or read or write):
        return 0.0
    return rated_cost(model, input_tokens, output_tokens, read, write, started_at)
