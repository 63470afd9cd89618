"""The live panes: tried targets, token usage, cost, latency, calls in flight. Each renders from `LiveStats`."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from proxy.record import Record
from proxy.stats import percentile

from . import fmt

MINUTES = 30  # sparkline span


@dataclass
class TargetStats:
    calls: int = 0
    errors: int = 0
    fallbacks: int = 0
    last_status: int | None = None
    latencies: deque = field(default_factory=lambda: deque(maxlen=200))


@dataclass
class LiveStats:
    """What the panes show; fed every finished record. Seeded from the store at start-up."""

    targets: dict[str, TargetStats] = field(default_factory=dict)
    tokens: dict[str, int] = field(
        default_factory=lambda: {"input": 0, "output": 0, "cached": 0, "thinking": 0}
    )
    per_minute: dict[int, int] = field(default_factory=dict)
    cost_session: float = 0.0
    cost_today: float = 0.0
    cost_all: float = 0.0
    cost_unknown: int = 0
    cost_by_model: dict[str, float] = field(default_factory=dict)
    latencies: deque = field(default_factory=lambda: deque(maxlen=500))
    ttfts: deque = field(default_factory=lambda: deque(maxlen=500))
    tpts: deque = field(default_factory=lambda: deque(maxlen=500))
    calls: int = 0
    lost: int = 0

    def add(self, rec: Record) -> None:
        self.calls += 1
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
    Pane > .body { height: auto; }
    Pane > Sparkline { height: 2; margin-top: 1; }
    """

    def __init__(self, title: str, sparkline: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.border_title = title
        self._spark = sparkline

    def compose(self) -> ComposeResult:
        yield Static(classes="body")
        if self._spark:
            yield Sparkline([0.0], summary_function=max)

    def show(self, body, series: list[float] | None = None) -> None:
        self.query_one(".body", Static).update(body)
        if series is not None and self._spark:
            self.query_one(Sparkline).data = series or [0.0]


def render_targets(stats: LiveStats, health: dict[str, dict]) -> Table:
    """One row a target; `health` is the router's view (state, cool-down left)."""
    t = Table.grid(padding=(0, 1), expand=True)
    heads = ("target", "calls", "err", "fb", "last", "p50")
    for col in heads:
        t.add_column(col, justify="left" if col == "target" else "right", no_wrap=True)
    t.add_row(*[Text(c, style="bold dim") for c in heads])
    names = list(health) + [n for n in stats.targets if n not in health]
    for name in names:
        s = stats.targets.get(name, TargetStats())
        h = health.get(name, {})
        last = s.last_status
        style = "green" if last == 200 else ("red" if last and last >= 400 else "dim")
        label = Text()
        if h.get("state") == "cooling":
            label.append("◌ ", style="yellow")
            label.append(name, style="bold yellow")
            label.append(f" {h.get('cooldown_left_s', 0):.0f}s", style="yellow")
        else:
            label.append("● ", style="green" if s.calls else "dim")
            label.append(name, style="bold")
        t.add_row(
            label,
            str(s.calls),
            Text(str(s.errors), style="red" if s.errors else ""),
            str(s.fallbacks),
            Text(str(last or "–"), style=style),
            fmt.duration(percentile(list(s.latencies), 0.5)),
        )
    return t


def render_tokens(stats: LiveStats) -> Table:
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(no_wrap=True)
    t.add_column(justify="right", no_wrap=True)
    for k in ("input", "output", "cached", "thinking"):
        t.add_row(Text(k, style="dim"), fmt.count(stats.tokens[k]))
    return t


def render_cost(stats: LiveStats) -> Table:
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(no_wrap=True)
    t.add_column(justify="right", no_wrap=True)
    t.add_row(Text("session", style="dim"), fmt.usd(stats.cost_session))
    t.add_row(Text("today", style="dim"), fmt.usd(stats.cost_today))
    t.add_row(Text("all time", style="dim"), fmt.usd(stats.cost_all))
    for model, c in sorted(stats.cost_by_model.items(), key=lambda kv: -kv[1])[:2]:
        t.add_row(Text(model.removeprefix("gemini-")[:10], style="italic"), fmt.usd(c))
    if stats.cost_unknown:
        t.add_row(Text("unpriced", style="yellow"), str(stats.cost_unknown))
    return t


def render_latency(stats: LiveStats) -> Table:
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(no_wrap=True)
    t.add_column(justify="right", no_wrap=True)
    t.add_column(justify="right", no_wrap=True)
    t.add_row(Text("", style="dim"), Text("p50", style="dim"), Text("p95", style="dim"))
    lat, ttft = list(stats.latencies), list(stats.ttfts)
    t.add_row(
        Text("total", style="dim"), fmt.duration(percentile(lat, 0.5)), fmt.duration(percentile(lat, 0.95))
    )
    t.add_row(
        Text("ttft", style="dim"), fmt.duration(percentile(ttft, 0.5)), fmt.duration(percentile(ttft, 0.95))
    )
    tpt = percentile(list(stats.tpts), 0.5)
    t.add_row(Text("per token", style="dim"), fmt.NONE if tpt is None else f"{tpt:.1f}ms", "")
    return t


def render_in_flight(records: list[Record], now: float | None = None) -> Text:
    now = now or time.time()
    if not records:
        return Text("no calls in flight", style="dim")
    out = Text()
    for r in records[:4]:
        blocks = r.stream_chunks
        out.append(f"● {r.request_model or '…'} → {r.target or '…'} ", style="bold yellow")
        out.append(f"{r.request_mode} {now - r.started_at:.1f}s")
        if blocks:
            out.append(f" {blocks} chunks", style="dim")
        out.append("\n")
    if len(records) > 4:
        out.append(f"+{len(records) - 4} more", style="dim")
    return out
