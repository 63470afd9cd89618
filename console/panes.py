"""The live panes: tried targets, token usage, cost, latency, calls in flight. Each renders from `LiveStats`."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from proxy.record import Record, pricing
from proxy.reports.stats import percentile

from . import fmt

MINUTES = 30  # sparkline span


@dataclass
class TargetStats:
    calls: int = 0
    errors: int = 0
    fallbacks: int = 0
    last_status: int | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=200))


@dataclass
class LiveStats:
    """What the panes show; fed every finished record. Seeded from the store at start-up."""

    targets: dict[str, TargetStats] = field(default_factory=dict)
    tokens: dict[str, int] = field(
        default_factory=lambda: {"input": 0, "output": 0, "cached": 0, "thinking": 0}
    )
    per_minute: dict[int, int] = field(default_factory=dict)
    cost_session: float = 0.0
    """since the console started"""
    cost_today: float = 0.0
    cost_all: float = 0.0
    cost_unknown: int = 0
    cost_by_model: dict[str, float] = field(default_factory=dict)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    ttfts: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    tpts: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    calls: int = 0
    errors: int = 0
    lost: int = 0
    price_as: str | None = None
    """what-if: the model this session's usage is also priced at (`$`, `--price-as`); None: no what-if"""
    cost_as: float = 0.0
    cost_as_unknown: int = 0
    usages: list[tuple[int, int, int, int]] = field(default_factory=list, repr=False)
    """each priced call's (input, output, cache read, cache write) since start: re-priced when the what-if
    model changes (per call, so a long prompt's tier stays its own)"""

    def set_price_as(self, model: str | None, priced: tuple[float, int] | None = None, upto: int = 0) -> None:
        """Price this session at `model` (None: no what-if). `priced`: the (cost, unpriced) of the first `upto`
        calls, already worked out (off the screen's thread, by `reprice`); the rest are priced here."""
        self.price_as = model
        self.cost_as, self.cost_as_unknown = priced if priced is not None else (0.0, 0)
        for u in self.usages[upto if priced is not None else 0 :]:
            self._price_as(u)

    def _price_as(self, u: tuple[int, int, int, int]) -> None:
        if self.price_as is None:
            return
        cost = pricing.price_as(self.price_as, "messages", *u)
        if cost is None:
            self.cost_as_unknown += 1
        else:
            self.cost_as += cost

    def add(self, rec: Record) -> None:
        self.calls += 1
        if rec.error_type or (rec.status or 0) >= 400:
            self.errors += 1
        for i, a in enumerate(rec.tried_targets):
            t = self.targets.setdefault(a.target, TargetStats())
            t.calls += 1
            t.last_status = a.status
            if a.error or (a.status or 0) >= 400:
                t.errors += 1
            if i > 0:
                t.fallbacks += 1
            if a.latency_ms is not None:
                t.latencies.append(a.latency_ms)
        if rec.kind == "count_tokens":
            return
        u = rec.usage
        self.tokens["input"] += u.input_tokens
        self.tokens["output"] += u.output_tokens
        self.tokens["cached"] += u.cache_read_tokens
        self.tokens["thinking"] += u.thinking_tokens
        minute = int(rec.started_at // 60)
        self.per_minute[minute] = self.per_minute.get(minute, 0) + u.input_tokens + u.output_tokens
        usage = (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_creation_tokens)
        self.usages.append(usage)
        self._price_as(usage)
        if u.cost is None:
            self.cost_unknown += 1
        else:
            self.cost_session += u.cost
            self.cost_today += u.cost
            self.cost_all += u.cost
            model = rec.response_model or rec.request_model
            self.cost_by_model[model] = self.cost_by_model.get(model, 0.0) + u.cost
        if rec.latency_ms is not None and not rec.error_type:
            self.latencies.append(rec.latency_ms)
        if u.time_to_first_token is not None:
            self.ttfts.append(u.time_to_first_token)
        if u.time_per_token is not None:
            self.tpts.append(u.time_per_token)

    def minute_series(self, now: float | None = None) -> list[float]:
        now_min = int((now or time.time()) // 60)
        return [float(self.per_minute.get(m, 0)) for m in range(now_min - MINUTES + 1, now_min + 1)]


class Pane(Vertical):
    """A bordered pane with a title and a body Static."""

    DEFAULT_CSS = """
    Pane { border: round $primary 50%; height: 100%; padding: 0 1; }
    Pane > .body { height: 1fr; }
    Pane > Sparkline { height: 2; margin-top: 1; }
    """

    def __init__(self, title: str, sparkline: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.border_title = title
        self._spark = sparkline
        self._shown: RenderableType | None = None

    def compose(self) -> ComposeResult:
        # made here and kept: `show` may run before they are mounted (a timer at start-up) or after they
        # went (at teardown), and must then neither look them up nor fail
        self._body = Static(classes="body")
        yield self._body
        if self._spark:
            self._sparkline = Sparkline([0.0], summary_function=max)
            yield self._sparkline

    def show(self, body: RenderableType, series: list[float] | None = None) -> None:
        if getattr(self, "_body", None) is None:
            return  # not composed yet: the next tick shows it
        if not _same(body, self._shown):
            # An idle console's ticks (nothing in flight) skip identical text. The body's size is the pane's, not
            # its text's, so a new text repaints this body alone: no layout of the whole screen, which under load
            # was most of the screen thread's time, on the CPU the hosted gateway shares (issue 26).
            self._shown = body
            self._body.update(body, layout=False)
        if series is not None and self._spark:
            spark = self._sparkline
            # no data is no bar: an empty or all-zero series drawn would be a solid block (read as the maximum)
            spark.display = any(series)
            spark.data = series or [0.0]


def _same(a: object, b: object) -> bool:
    """Whether two bodies draw the same: texts (or grids of them) alike in words and styles (anything else is
    drawn again)."""
    if isinstance(a, Grid) and isinstance(b, Grid):
        return len(a.rows) == len(b.rows) and all(
            len(ra) == len(rb) and all(_same(x, y) for x, y in zip(ra, rb, strict=True))
            for ra, rb in zip(a.rows, b.rows, strict=True)
        )
    if not isinstance(a, Text) or not isinstance(b, Text):
        return False
    return (a.plain, a.spans, a.style, a.justify, a.overflow) == (
        b.plain,
        b.spans,
        b.style,
        b.justify,
        b.overflow,
    )


class Grid:
    """Rows of cells, a line each: the first column takes the width the others leave (cut with …), the others
    are right-aligned at their widest, one space apart. What rich's `Table.grid(expand=True)` drew here at about
    a tenth of its cost: each pane is drawn twice a second under load, on the CPU the hosted gateway shares
    (issue 26), and a table took 1.4-2 ms."""

    def __init__(self, rows: list[list[Text]]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = (
            [max(row[i].cell_len for row in self.rows) for i in range(1, len(self.rows[0]))]
            if self.rows
            else []
        )
        first = max(1, options.max_width - sum(widths) - len(widths))
        for row in self.rows:
            line = row[0].copy()
            line.truncate(first, overflow="ellipsis", pad=True)
            for cell, width in zip(row[1:], widths, strict=True):
                line.append(" " * (1 + width - cell.cell_len))
                line.append_text(cell)
            line.no_wrap = True
            yield line


def render_targets(stats: LiveStats, health: dict[str, dict[str, Any]], compact: bool = False) -> Grid:
    """One row a target; `health` is the router's view (state, cool-down left). `compact` leaves out the
    fallback and last-status columns. Names shrink (with …) to leave the figures whole."""
    heads = ("target", "calls", "err", "p50") if compact else ("target", "calls", "err", "fb", "last", "p50")
    rows: list[list[Text]] = []
    names = list(health) + [n for n in stats.targets if n not in health]
    for name in names:
        s = stats.targets.get(name, TargetStats())
        h = health.get(name, {})
        last = s.last_status
        style = "green" if last == 200 else ("red" if last and last >= 400 else "dim")
        label = Text(no_wrap=True, overflow="ellipsis")
        if h.get("state") == "cooling":
            label.append("◌ ", style="yellow")
            label.append(name, style="bold yellow")
            label.append(f" {h.get('cooldown_left_s', 0):.0f}s", style="yellow")
        else:
            label.append("● ", style="green" if s.calls else "dim")
            label.append(name, style="bold")
        cells = {
            "calls": Text(fmt.count(s.calls)),
            "err": Text(str(s.errors), style="red" if s.errors else ""),
            "fb": Text(str(s.fallbacks)),
            "last": Text(str(last or "–"), style=style),
            "p50": Text(fmt.duration(percentile(list(s.latencies), 0.5))),
        }
        rows.append([label] + [cells[h] for h in heads[1:]])
    return Grid([[Text(c, style="bold dim") for c in heads], *rows])


def _figures_table(rows: list[tuple[Text, str]]) -> Grid:
    """label  figure rows: the figure column as wide as its widest, a label shrinks (with …) before it."""
    return Grid([[label, Text(value)] for label, value in rows])


def render_tokens(stats: LiveStats) -> Grid:
    return _figures_table(
        [
            (Text(k, style="dim"), fmt.count(stats.tokens[k]))
            for k in ("input", "output", "cached", "thinking")
        ]
    )


def render_cost(stats: LiveStats) -> Grid:
    """Since the console started, today and all time (the last two from the store), then the top models."""
    rows = [(Text("since start", style="dim"), fmt.usd(stats.cost_session))]
    if stats.price_as:  # the same calls at the what-if model's prices
        rows.append((Text(f"at {short(stats.price_as)}", style="magenta"), what_if(stats)))
    rows += [
        (Text("today", style="dim"), fmt.usd(stats.cost_today)),
        (Text("all time", style="dim"), fmt.usd(stats.cost_all)),
    ]
    for model, c in sorted(stats.cost_by_model.items(), key=lambda kv: -kv[1])[: 1 if stats.price_as else 2]:
        rows.append((Text(model.removeprefix("gemini-"), style="italic"), fmt.usd(c)))
    if stats.cost_unknown:
        rows.append((Text("unpriced", style="yellow"), str(stats.cost_unknown)))
    return _figures_table(rows)


def reprice(model: str | None, usages: list[tuple[int, int, int, int]]) -> tuple[float, int]:
    """(USD, calls without a price) of these calls' usage at `model`'s prices."""
    cost, unknown = 0.0, 0
    if model is None:
        return cost, unknown
    for u in usages:
        c = pricing.price_as(model, "messages", *u)
        if c is None:
            unknown += 1
        else:
            cost += c
    return cost, unknown


def short(model: str) -> str:
    return model.removeprefix("gemini-")


def what_if(stats: LiveStats) -> str:
    """The session at the what-if model's prices: `?` when none of its calls could be priced there, a `+?`
    when some could not."""
    if stats.cost_as_unknown and not stats.cost_as:
        return "?"
    return fmt.usd(stats.cost_as) + ("+?" if stats.cost_as_unknown else "")


def render_latency(stats: LiveStats) -> Grid:
    lat, ttft = list(stats.latencies), list(stats.ttfts)
    tpt = percentile(list(stats.tpts), 0.5)
    return Grid(
        [
            [Text(""), Text("p50", style="dim"), Text("p95", style="dim")],
            [
                Text("total", style="dim"),
                Text(fmt.duration(percentile(lat, 0.5))),
                Text(fmt.duration(percentile(lat, 0.95))),
            ],
            [
                Text("ttft", style="dim"),
                Text(fmt.duration(percentile(ttft, 0.5))),
                Text(fmt.duration(percentile(ttft, 0.95))),
            ],
            [Text("per tok", style="dim"), Text(fmt.NONE if tpt is None else f"{tpt:.1f}ms"), Text("")],
        ]
    )


def render_in_flight(records: list[Record], now: float | None = None, compact: bool = False) -> Text:
    """The calls in flight, oldest first; `compact`: one short line each (model, seconds)."""
    now = now or time.time()
    if not records:
        return Text("none", style="dim") if compact else Text("no calls in flight", style="dim")
    out = Text()
    for r in records[:4]:
        model = r.request_model or "…"
        if compact:
            out.append(f"● {model.removeprefix('claude-').removeprefix('gemini-')} ", style="bold yellow")
            out.append(f"{now - r.started_at:.1f}s\n")
            continue
        out.append(f"● {model} → {r.target or '…'} ", style="bold yellow")
        out.append(f"{r.request_mode} {now - r.started_at:.1f}s")
        if r.stream_chunks:
            out.append(f" {r.stream_chunks} chunks", style="dim")
        out.append("\n")
    if len(records) > 4:
        out.append(f"+{len(records) - 4} more", style="dim")
    return out


class Figures:
    """The essential figures on as few lines as the width allows, a figure never split or cut: for terminals
    too narrow for the panes."""

    def __init__(self, figures: list[tuple[str, str, str]]) -> None:
        self.figures = figures
        """(value, label, value style)"""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        line = Text()
        for value, label, style in self.figures:
            piece = Text(value, style=style)
            piece.append(f" {label}", style="dim")
            if line and line.cell_len + 2 + piece.cell_len > width:
                yield line
                line = Text()
            if line:
                line.append("  ")
            line.append_text(piece)
        yield line


def render_summary(stats: LiveStats, in_flight: int) -> Figures:
    """calls, errors, cost today, p50 latency, p50 ttft, tokens and calls in flight, in words."""
    lat, ttft = percentile(list(stats.latencies), 0.5), percentile(list(stats.ttfts), 0.5)
    tokens = fmt.count(stats.tokens["input"]) + "/" + fmt.count(stats.tokens["output"])
    return Figures(
        [
            (f"{stats.calls:,}", "call since start" if stats.calls == 1 else "calls since start", "bold"),
            (
                str(stats.errors),
                "error" if stats.errors == 1 else "errors",
                "bold red" if stats.errors else "bold",
            ),
            (fmt.usd(stats.cost_today), "today", "bold green"),
            *(
                [(what_if(stats), f"session at {short(stats.price_as)}", "bold magenta")]
                if stats.price_as
                else []
            ),
            (fmt.duration(lat), "p50", "bold"),
            (fmt.duration(ttft), "ttft", "bold"),
            (tokens, "tokens in/out", "bold"),
            (str(in_flight), "in flight", "bold yellow" if in_flight else "bold"),
        ]
    )
