"""`gatewatch stats`: requests, errors, tokens, cost and latency per model and per target (or per session,
agent, turn …), the translation notes counted, and what the waste detectors found."""

from __future__ import annotations

import argparse
from collections import Counter

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
    for by, groups in aggregate(rows, args.by or ("model", "target"), price_as).items():
        if by == "prompt":  # turns: the oldest first, each labelled with its prompt where Claude Code sent it
            groups.sort(key=lambda g: (g.key == "(none)", g.first_seen))  # calls of no turn last
            texts = store.prompts([g.key for g in groups if g.key != "(none)"])
            print(table(by, groups, price_as, labels=texts))
        else:
            print(table(by, groups, price_as))
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
    one = " ".join(text.split())
    return one if len(one) <= 60 else one[:59] + "…"


def table(
    by: str, rows: list[Group], price_as: str | None = None, labels: dict[str, str | None] | None = None
) -> str:
    """One grouping's table; a session's or a turn's adds its cache share, what the cache saved and Claude
    Code's own estimate (`labels`: a turn's prompt text, shown after its row)."""
    turns = by in ("session", "prompt")
    head = [
        by,
        "requests",
        "errors",
        "in tokens",
        "out tokens",
        "cost $",
        *([f"as {price_as} $"] if price_as else []),
        *(["cached", "saved $", "claude code $"] if turns else []),
        "p50 ms",
        "p95 ms",
        "ttft p50",
        "ttft p95",
        *(["prompt"] if labels is not None else []),
    ]
    body = [
        [
            r.key,
            str(r.requests),
            str(r.errors),
            str(r.input_tokens),
            str(r.output_tokens),
            _fmt(r.cost, "cost") + ("+?" if r.cost_unknown else ""),
            *([_fmt(r.cost_as, "cost") + ("+?" if r.cost_as_unknown else "")] if price_as else []),
            *([_share(r), _fmt(r.cache_saved, "cost"), _fmt(r.cc_cost, "cost")] if turns else []),
            _fmt(r.p50_ms, "ms"),
            _fmt(r.p95_ms, "ms"),
            _fmt(r.ttft_p50_ms, "ms"),
            _fmt(r.ttft_p95_ms, "ms"),
            *([_label((labels or {}).get(r.key))] if labels is not None else []),
        ]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[str]) -> str:
        last = len(cells) - 1 if labels is not None else -1  # the prompt's text reads left to right
        return "  ".join(
            c.ljust(w) if i in (0, last) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body), ""])
