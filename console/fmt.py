"""How the console writes durations, counts and money: one place, so every pane and column agrees."""

from __future__ import annotations

from proxy.money import plural, usd

__all__ = ["NONE", "count", "duration", "plural", "usd"]

NONE = "–"


def duration(ms: float | None, precise: bool = False) -> str:
    """Milliseconds for people: 850ms, 1.25s, 12.5s, 125s; `precise` gives 12.3 ms (the call's detail)."""
    if ms is None:
        return NONE
    if precise:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    return f"{s:.2f}s" if s < 10 else (f"{s:.1f}s" if s < 100 else f"{s:.0f}s")


def count(n: int) -> str:
    """Token counts: 950, 1.2k, 12k, 3.4M."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)
