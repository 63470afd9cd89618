"""How the console writes durations, counts and money: one place, so every pane and column agrees."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size

from proxy.money import plural, usd

__all__ = ["NONE", "count", "cut", "duration", "plural", "route", "usd"]

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


DANGLING = " ([{<-–—→,:;/|"
"""what a cut never leaves just before its `…`: an opening bracket, a separator, a space"""


WORD_LOSS = 4
"""a cut ends on the word before when that loses at most this many cells (a space included), else mid-word"""


def cut(text: str, width: int) -> str:
    """`text` in at most `width` cells: whole, or cut and marked with `…`, after a word where one ends near the
    cut, and with no opening bracket or separator left dangling before the mark (`[tool result (…` would read
    as a bracket the text opened)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…" if width == 1 else ""
    n = len(set_cell_size(text, width - 1).rstrip(" "))  # characters that fit beside the mark
    while n and cell_len(text[:n]) > width - 1:  # a wide character padded by set_cell_size
        n -= 1
    head = text[:n]
    if not text[n].isspace() and " " in head:  # a word cut: end on the word before, if that loses little
        word = head.rsplit(" ", 1)[0]
        if cell_len(head) - cell_len(word) <= WORD_LOSS:
            head = word
    return (head.rstrip(DANGLING) or head) + "…"


def route(model: str, target: str, width: int, retries: str = "") -> tuple[str, str, str]:
    """(model, arrow, target) of `model → target` in at most `width` cells: `claude-` and `gemini-` dropped
    from the model first, then the arrow's spaces, then the longer of the two names cut with `…`, a cell at a
    time, down to 4 cells each; `retries` (` (+1)`, after the target) is kept whole, or left out whole."""
    arrow = " → "
    if cell_len(model) + cell_len(arrow) + cell_len(target) + cell_len(retries) > width:
        model = model.removeprefix("claude-").removeprefix("gemini-")
    if cell_len(model) + cell_len(arrow) + cell_len(target) + cell_len(retries) > width:
        arrow = "→"
    m, t = cell_len(model), cell_len(target)
    room = width - cell_len(arrow) - cell_len(retries)
    while m + t > room and max(m, t) > 4:
        if t >= m:
            t -= 1
        else:
            m -= 1
    if m + t > room and retries:  # the names matter more than how many targets tried before
        room += cell_len(retries)
        retries = ""
    while m + t > room and max(m, t) > 1:
        if t >= m:
            t -= 1
        else:
            m -= 1
    return cut(model, m), arrow, cut(target, t) + retries
