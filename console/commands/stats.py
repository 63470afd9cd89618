"""`gatewatch stats`: requests, errors, tokens, cost and latency per model and per target (or per session,
agent, turn …), the translation notes counted, and what the waste detectors found."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass

from proxy.record.pricing import find as find_price
from proxy.reports.stats import KEYS, Group, aggregate, counting_notes, notes_table, waste, waste_table

from . import Subcommands
from .bootstrap import common, die, filter_help, open_reader, parse_filter


def add(sub: Subcommands) -> None:
    st = sub.add_parser(
        "stats", help="requests, errors, tokens, cost and latency per model and per target", **filter_help()
    )
    st.add_argument("filter", nargs="*")
    st.add_argument(
        "--by",
        action="append",
        choices=KEYS,
        help="group by this (repeatable; default: model and target); session/agent: Claude Code's; prompt: "
        "Claude Code's turns (its telemetry pointed at the gateway), with cache share and its own estimate",
    )
    st.add_argument(
        "--price-as",
        metavar="MODEL",
        default=argparse.SUPPRESS,
        help="also price the stored usage at MODEL's prices (genai-prices): what these calls would have cost",
    )
    common(st, server=False)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    flt = parse_filter([*args.filter, *extra])
    store = open_reader(args)
    price_as = getattr(args, "price_as", None)
    if price_as and find_price(price_as) is None:
        die(f"--price-as {price_as}: genai-prices has no price for this model")
    notes: Counter[str] = Counter()
    found: list[str] = []
    rows = counting_notes(store.summaries(flt), notes, found)
    # the terminal's width ($COLUMNS first); into a file or a program, no limit: every column
    width = shutil.get_terminal_size((0, 0)).columns if sys.stdout.isatty() or "COLUMNS" in os.environ else 0
    for by, groups in aggregate(rows, args.by or ("model", "target"), price_as).items():
        if by == "prompt":  # turns: the oldest first, each labelled with its prompt where Claude Code sent it
            groups.sort(key=lambda g: (g.key == "(none)", g.first_seen))  # calls of no turn last
            texts = store.prompts([g.key for g in groups if g.key != "(none)"])
            print(table(by, groups, price_as, labels=texts, width=width))
        else:
            print(table(by, groups, price_as, width=width))
    print(notes_table(notes))
    print(waste_table(waste(n for ns in store.findings(found).values() for n in ns)))
    return 0


def _fmt(v: float | None, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "ms":
        return f"{v:.0f}"
    if kind == "cost":
        return f"{v:.4f}"
    return str(v)


def _share(g: Group) -> str:
    whole = g.input_tokens + g.cache_read_tokens
    return f"{100 * g.cache_read_tokens / whole:.0f}%" if whole else "-"


def _label(text: str | None) -> str:
    """A turn's prompt on one line, cut to 60 characters; '-' where Claude Code did not send it."""
    if not text:
        return "-"
    return _cut(" ".join(text.split()), 60)


def _cut(text: str, most: int) -> str:
    """`text` in at most `most` characters: cut after a word where one ends near the cut, marked with …"""
    if len(text) <= most:
        return text
    head = text[: most - 1]
    word = head.rsplit(" ", 1)[0]
    return (word if len(word) >= most * 2 // 3 else head).rstrip() + "…"


@dataclass(frozen=True, slots=True)
class Column:
    head: str
    short: str
    """the header where the full one would not fit the terminal"""
    cells: list[str]
    keep: int
    """the columns with the lowest `keep` are left out first when the table is wider than the terminal"""
    left: bool = False


def table(
    by: str,
    rows: list[Group],
    price_as: str | None = None,
    labels: dict[str, str | None] | None = None,
    width: int = 0,
) -> str:
    """One grouping's table; a session's or a turn's adds its cache share, what the cache saved and Claude
    Code's own estimate (`labels`: a turn's prompt text, shown after its row). `width` (0: no limit): the
    table is made to fit, with short headers, then without its least needed columns (said below it)."""
    turns = by in ("session", "prompt")

    def col(head: str, short: str, cells: list[str], keep: int, left: bool = False) -> Column:
        return Column(head, short, cells, keep, left)

    cols = [
        col(by, by, [r.key for r in rows], 100, left=True),
        col("requests", "calls", [str(r.requests) for r in rows], 90),
        col("errors", "errs", [str(r.errors) for r in rows], 80),
        col("in tokens", "in tok", [str(r.input_tokens) for r in rows], 70),
        col("out tokens", "out tok", [str(r.output_tokens) for r in rows], 70),
        col("cost $", "cost $", [_fmt(r.cost, "cost") + ("+?" if r.cost_unknown else "") for r in rows], 95),
        *(
            [
                col(
                    f"as {price_as} $",
                    f"as {price_as} $",
                    [_fmt(r.cost_as, "cost") + ("+?" if r.cost_as_unknown else "") for r in rows],
                    85,
                )
            ]
            if price_as
            else []
        ),
        *(
            [
                col("cached", "cached", [_share(r) for r in rows], 65),
                col("saved $", "saved $", [_fmt(r.cache_saved, "cost") for r in rows], 62),
                col("claude code $", "cc $", [_fmt(r.cc_cost, "cost") for r in rows], 55),
            ]
            if turns
            else []
        ),
        col("p50 ms", "p50 ms", [_fmt(r.p50_ms, "ms") for r in rows], 60),
        col("p95 ms", "p95 ms", [_fmt(r.p95_ms, "ms") for r in rows], 20),
        col("ttft p50", "ttft50", [_fmt(r.ttft_p50_ms, "ms") for r in rows], 30),
        col("ttft p95", "ttft95", [_fmt(r.ttft_p95_ms, "ms") for r in rows], 10),
    ]
    prompts = [_label((labels or {}).get(r.key)) for r in rows] if labels is not None else None
    shown, short, left_out = _fit(cols, width, with_prompt=prompts is not None)
    heads = [c.short if short else c.head for c in shown]
    body = [[c.cells[i] for c in shown] for i in range(len(rows))]
    widths = [max(len(x) for x in col) for col in zip(heads, *body, strict=True)]
    if prompts is not None:  # the prompt's text reads left to right, in whatever room is left
        room = width - sum(widths) - 2 * len(widths) if width else 60
        cut = max(room, len("prompt"))
        heads.append("prompt")
        for line_cells, text in zip(body, prompts, strict=True):
            line_cells.append(_cut(text, cut))
        widths.append(max(len(x) for x in [heads[-1], *(b[-1] for b in body)]))
    lefts = {i for i, c in enumerate(shown) if c.left} | ({len(heads) - 1} if prompts is not None else set())

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in lefts else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(heads), line(["-" * w for w in widths]), *map(line, body)]
    if left_out:
        said = f"(left out at {width} columns: {', '.join(left_out)}; a wider terminal shows them)"
        out += textwrap.wrap(said, width, subsequent_indent=" ")
    return "\n".join([*out, ""])


def _fit(cols: list[Column], width: int, with_prompt: bool) -> tuple[list[Column], bool, list[str]]:
    """The columns that fit `width` (0: all), whether with their short headers, and the headers left out.
    A turn's prompt column needs room for a few words of its own."""
    need = 2 + 30 if with_prompt else 0

    def wide(shown: list[Column], short: bool) -> int:
        heads = [len(c.short if short else c.head) for c in shown]
        return sum(max(h, *(len(x) for x in c.cells)) for h, c in zip(heads, shown, strict=True)) + 2 * (
            len(shown) - 1
        )

    if not width or wide(cols, False) + need <= width:
        return cols, False, []
    shown = list(cols)
    left_out: list[str] = []
    while wide(shown, True) + need > width and len(shown) > 2:
        least = min(shown[1:], key=lambda c: c.keep)
        shown.remove(least)
        left_out.append(least.head)
    return shown, True, left_out
