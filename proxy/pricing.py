"""Prices per 1M tokens, and the cost of one exchange. An unknown model costs None, never a silent 0."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached: float
    # Gemini pro bills the whole prompt at a higher rate above 200k prompt tokens.
    long_input: float | None = None
    long_output: float | None = None
    long_cached: float | None = None
    long_threshold: int = 200_000


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


def cost(
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    override: Price | None = None,
) -> float | None:
    """USD for one exchange; `input_tokens` excludes the cached ones (Anthropic's convention)."""
    p = override or lookup(model)
    if p is None:
        return None
    prompt = input_tokens + cached_tokens
    long = p.long_input is not None and prompt > p.long_threshold
    pin = p.long_input if long else p.input
    pout = (p.long_output or p.output) if long else p.output
    pc = (p.long_cached or p.cached) if long else p.cached
    return (input_tokens * pin + output_tokens * pout + cached_tokens * pc) / 1_000_000
