"""Prices per 1M tokens and the rule that turns a record's usage into USD: the whole pricing rule, here only.

An unknown model costs None, never a silent 0; counting tokens is free; a call that billed no token costs 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TargetConfig
from .record import Record

CACHE_WRITE_FACTOR = 1.25
"""Anthropic bills a 5-minute cache write at 1.25x the input price (Gemini reports no cache writes)."""


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached: float
    """A cache read."""
    # Gemini pro bills the whole prompt at a higher rate above 200k prompt tokens.
    long_input: float | None = None
    long_output: float | None = None
    long_cached: float | None = None
    long_threshold: int = 200_000
    cache_write: float | None = None
    """A cache write; None: `CACHE_WRITE_FACTOR` x input."""


# USD per 1M tokens, standard tier. Thinking tokens are billed as output.
TABLE: dict[str, Price] = {
    "gemini-3-pro": Price(2.00, 12.00, 0.20, 4.00, 18.00, 0.40),
    "gemini-3-flash": Price(0.50, 3.00, 0.05),
    "gemini-2.5-pro": Price(1.25, 10.00, 0.31, 2.50, 15.00, 0.625),
    "gemini-2.5-flash-lite": Price(0.10, 0.40, 0.025),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.075),
    "gemini-2.0-flash-lite": Price(0.075, 0.30, 0.01875),
    "gemini-2.0-flash": Price(0.10, 0.40, 0.025),
    "claude-opus-4-1": Price(15.0, 75.0, 1.50),
    "claude-opus-4": Price(15.0, 75.0, 1.50),
    "claude-sonnet-4-5": Price(3.0, 15.0, 0.30),
    "claude-sonnet-4": Price(3.0, 15.0, 0.30),
    "claude-haiku-4-5": Price(1.0, 5.0, 0.10),
    "claude-3-5-haiku": Price(0.80, 4.0, 0.08),
}


def lookup(model: str | None) -> Price | None:
    """Longest table key that prefixes the model name (versions like `-001` or `-preview-…` still match)."""
    if not model:
        return None
    m = model.lower().removeprefix("models/").split("/")[-1]
    best = None
    for key in TABLE:
        if m.startswith(key) and (best is None or len(key) > len(best)):
            best = key
    return TABLE[best] if best else None


def override(target: TargetConfig | None) -> Price | None:
    """The target's own prices, when it gives both input and output (cached defaults to input)."""
    if target is None or target.input_cost is None or target.output_cost is None:
        return None
    cached = target.cached_cost if target.cached_cost is not None else target.input_cost
    return Price(target.input_cost, target.output_cost, cached)


def price(record: Record, target: TargetConfig | None = None) -> float | None:
    """USD for one exchange, from its usage and the target that served it (whose prices override the table).

    Anthropic's convention: `input_tokens` excludes cache reads and cache writes, each priced at its own rate.
    """
    u = record.usage
    if record.kind == "count_tokens":
        return 0.0  # counting is free on both Google APIs and on Anthropic's
    if not (u.input_tokens or u.output_tokens or u.cache_read_tokens or u.cache_creation_tokens):
        return 0.0  # nothing was billed (an error, a refusal before any token)
    p = override(target) or lookup(record.response_model or record.request_model)
    if p is None:
        return None
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens
    long = p.long_input is not None and prompt > p.long_threshold
    pin = (p.long_input or p.input) if long else p.input
    pout = (p.long_output or p.output) if long else p.output
    pread = (p.long_cached or p.cached) if long else p.cached
    pwrite = p.cache_write if p.cache_write is not None else CACHE_WRITE_FACTOR * pin
    return (
        u.input_tokens * pin
        + u.output_tokens * pout
        + u.cache_read_tokens * pread
        + u.cache_creation_tokens * pwrite
    ) / 1_000_000
