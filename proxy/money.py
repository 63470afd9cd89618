"""How gatewatch writes money, everywhere (console, CLI, statusline, replay): one formatter, so no two places
show the same cost two ways. Standard library only: the statusline imports it."""

from __future__ import annotations


def usd(cost: float | None, precise: bool = False) -> str:
    """Dollars in at most 7 characters: $0.0015 under a cent (to the hundredth of a cent), <$.0001 below that
    (never a $0.0000 that reads as free), $0.12, $12.34, $1234, $12.3k; $0 for nothing spent; `?` when the price
    is unknown (never a silent $0). `precise`: six decimals, for a single call's detail."""
    if cost is None:
        return "?"
    if cost == 0:
        return "$0"
    if precise and cost < 100:
        return f"${cost:.6f}"
    if cost < 0.0001:
        return "<$.0001"
    if cost < 0.01:
        return f"${cost:.4f}"
    if cost < 100:
        return f"${cost:.2f}"
    if cost < 10_000:
        return f"${cost:.0f}"
    return f"${cost / 1000:.1f}k"


def plural(n: int, word: str, many: str = "") -> str:
    """`1 call`, `2 calls` (`many` when the plural is not word + s)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
