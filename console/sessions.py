"""The Sessions view: Claude Code sessions newest first, each a tree of its main agent and sub-agents, then its
latest turns (a user prompt and every call it caused, from Claude Code's telemetry), with calls, cost, the
implicit cache's share, the findings (cache breaks, repeats, loops…), tokens, errors, a context meter (the last
prompt against the served model's real window) and the compactions seen; the budget's bars on top, and the
highlighted session's "Claude Code's estimate $A · billed by Google $B", savings and findings by kind. Enter
filters the history to a node. Live: re-read every second from the store's roll-ups (a few small indexed
reads per session, never a scan of the calls)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from proxy.config import BudgetSettings
from proxy.record.events import BudgetCrossed
from proxy.store import AgentTotals, RecordStore, SessionTotals
from proxy.store.insight import SessionView, Turn
from proxy.translate.catalog import window

from . import fmt
from .footer import Footer

REFRESH_S = 1.0
SESSIONS = 100
TURNS = 5
"""the latest turns shown under each session (`gatewatch stats --by prompt` lists them all)"""
METER = 8
COLUMNS = [  # what matters first: at 80 columns the tree, calls, cost, cache share, findings and context
    ("session · agent · turn", 24),
    ("calls", 5),
    ("cost", 8),
    ("cache", 5),
    ("finds", 5),
    ("context", 13),
    ("in", 6),
    ("out", 6),
    ("err", 3),
    ("last", 8),
    ("model", 22),
]


def meter(used: int, total: int | None, width: int = METER) -> Text:
    """▰▰▱▱… with the share; red from 80 %."""
    if not used:
        return Text(fmt.NONE, style="dim")
    if not total:
        return Text(f"{fmt.count(used)}/?", style="dim")
    share = used / total
    filled = min(width, round(share * width))
    style = "red" if share >= 0.8 else ("yellow" if share >= 0.5 else "green")
    t = Text("▰" * filled, style=style)
    t.append("▱" * (width - filled), style="dim")
    t.append(f" {share:>4.0%}" if share >= 0.01 else " <1%")
    return t


def budget_bar(label: str, spend: float, cap: float, warn_at: float) -> Text:
    share = spend / cap if cap else 0.0
    style = "bold red" if share >= 1 else ("yellow" if share >= warn_at else "green")
    filled = min(20, round(share * 20))
    t = Text(f"{label} ", style="bold")
    t.append("█" * filled, style=style)
    t.append("░" * (20 - filled), style="dim")
    t.append(
        f" {fmt.usd(spend)} / {fmt.usd(cap)} ({'cap reached' if share >= 1 else f'{share:.0%}'})", style=style
    )
    return t


class BudgetNotice(Message):
    """A budget warned or refused (posted from the gateway's thread: `post_message` never blocks)."""

    def __init__(self, event: BudgetCrossed) -> None:
        super().__init__()
        e = event
        what = "today's spend" if e.scope == "daily" else f"session {e.key[:8]}"
        share = e.spend / e.cap if e.cap else 0.0
        if e.level == "refused":
            self.text = f"{what} {fmt.usd(e.spend)} reached its cap {fmt.usd(e.cap)}: calls are refused"
            self.severity: Literal["warning", "error"] = "error"
        else:
            self.text = f"{what} {fmt.usd(e.spend)} is {share:.0%} of its cap {fmt.usd(e.cap)}"
            self.severity = "warning"


@dataclass(frozen=True, slots=True)
class Node:
    """A row of the tree: a session or one of its agents; `filter` is what Enter puts in the history."""

    key: str
    filter: str
    session: SessionTotals
    agent: AgentTotals | None = None
    turn: Turn | None = None


def tree(s: SessionTotals, agents: list[AgentTotals]) -> list[tuple[int, AgentTotals]]:
    """The agents in tree order with their depth: main first, each sub-agent under the agent that spawned it
    (under main when its parent can't be told)."""
    ids = {a.agent_id for a in agents}
    children: dict[str, list[AgentTotals]] = {}
    for a in agents:
        if a.is_main:
            continue
        parent = a.parent_agent if a.parent_agent in ids and a.parent_agent != a.agent_id else ""
        children.setdefault(parent or "", []).append(a)
    out: list[tuple[int, AgentTotals]] = []

    def walk(agent_id: str, depth: int) -> None:
        for c in children.get(agent_id, []):
            out.append((depth, c))
            walk(c.agent_id, depth + 1)

    main = next((a for a in agents if a.is_main), None)
    if main is not None:
        out.append((1, main))
    walk("", 2 if main is not None else 1)
    return out


def share(read: int, input_tokens: int) -> Text:
    """The implicit cache's share of the prompt tokens: green from half, dim when nothing was read."""
    whole = read + input_tokens
    if not whole or not read:
        return Text(fmt.NONE if not whole else "0%", style="dim")
    s = read / whole
    return Text(f"{s:.0%}", style="green" if s >= 0.5 else "yellow")


def finds(n: int) -> Text:
    return Text(f"⚠{n}", style="bold yellow") if n else Text(fmt.NONE, style="dim")


def _cells(
    label: Text,
    last: float,
    t: SessionTotals | AgentTotals,
    ctx: int,
    ctx_model: str | None,
    model: str,
    found: int = 0,
) -> list[str | Text]:
    cost = fmt.usd(t.cost) + ("+?" if t.unpriced else "")
    return [
        label,
        str(t.calls),
        cost,
        share(t.cache_read_tokens, t.input_tokens),
        finds(found),
        meter(ctx, window(ctx_model)),
        fmt.count(t.input_tokens),
        fmt.count(t.output_tokens),
        Text(str(t.errors), style="red") if t.errors else Text("0", style="dim"),
        time.strftime("%H:%M:%S", time.localtime(last)),
        model,
    ]


def turn_row(t: Turn) -> list[str | Text]:
    """A turn: the prompt's text where Claude Code sent it (else its id), its calls, cost, cache and findings;
    Claude Code's own estimate where the model column is."""
    label = Text("    ◆ ", style="dim")
    if t.text:
        label.append(" ".join(t.text.split()), style="italic")
    else:
        label.append(f"turn {t.prompt_id[:8]}", style="dim italic")
    return [
        label,
        str(t.calls),
        fmt.usd(t.cost),
        share(t.cache_read_tokens, t.input_tokens),
        finds(t.findings),
        Text(""),
        fmt.count(t.input_tokens),
        Text(""),
        Text(""),
        time.strftime("%H:%M:%S", time.localtime(t.last_seen)),
        Text(f"CC estimate {fmt.usd(t.cc_cost)}", style="dim"),  # Claude Code's own, at Claude's prices
    ]


def insight_line(s: SessionTotals, v: SessionView | None) -> Text:
    """The highlighted session in one sentence: Claude Code's estimate beside what Google billed, what the
    cache saved, and what the findings cost."""
    t = Text(f"{s.session_id[:8]} ", style="bold")
    if v is not None and v.cc_cost is not None:
        t.append(f"Claude Code's estimate {fmt.usd(v.cc_cost)} · ", style="cyan")
    t.append(f"billed by Google {fmt.usd(s.cost)}", style="bold")
    read, whole = s.cache_read_tokens, s.cache_read_tokens + s.input_tokens
    t.append(f" · cache {read / whole:.0%}" if whole else " · cache –")
    if v is not None and v.saved:
        t.append(f" saved {fmt.usd(v.saved)}", style="green")
    if v is not None and v.findings:
        for kind, (calls, _, cost) in sorted(v.findings.items(), key=lambda kv: -kv[1][2]):
            t.append(f" · {kind} ×{calls} {fmt.usd(cost)}", style="yellow")
    elif v is not None and v.cc_cost is None and not v.found:
        t.append(
            " · no findings; no Claude Code telemetry (OTEL_EXPORTER_OTLP_ENDPOINT=<gateway>)", style="dim"
        )
    else:
        t.append(" · no findings", style="dim")
    return t


def session_row(s: SessionTotals, found: int = 0) -> list[str | Text]:
    label = Text("▾ ", style="dim")
    label.append(s.session_id[:8], style="bold")
    if s.agents:
        label.append(f" +{s.agents} agent{'s' if s.agents > 1 else ''}", style="dim")
    main = s.main
    served = " ".join(s.models_served) or " ".join(s.models_asked)
    return _cells(
        label, s.last_seen, s, main.ctx_tokens if main else 0, main.ctx_model if main else None, served, found
    )


def agent_row(depth: int, a: AgentTotals) -> list[str | Text]:
    label = Text("  " * depth + ("● " if a.is_main else "└ "), style="dim")
    if a.is_main:
        label.append("main", style="bold")
    else:
        label.append(a.agent_id[:8], style="cyan")
        label.append(f" {a.first_prompt}", style="dim")
    if a.compactions:
        label.append(f" ↻{a.compactions}", style="bold magenta")
    model = a.ctx_model or " ".join(a.models_served) or " ".join(a.models_asked)
    return _cells(label, a.last_seen, a, a.ctx_tokens, a.ctx_model, model)


class SessionsScreen(Screen[str | None]):
    """Dismissed with the history filter for the chosen node (None: back, unfiltered)."""

    BINDINGS = [
        Binding("escape,s", "back", "History", id="sessions.back"),
        Binding("enter", "choose", "Filter history", id="sessions.choose"),
        Binding("r", "reload", "Reload", id="sessions.reload"),
    ]
    DEFAULT_CSS = """
    SessionsScreen #sessions-budget { height: auto; padding: 0 1; background: $boost; }
    SessionsScreen #sessions-status { height: 1; padding: 0 1; color: $text-muted; }
    SessionsScreen #sessions-insight { height: auto; max-height: 2; padding: 0 1; }
    SessionsScreen DataTable { height: 1fr; }
    """

    class Loaded(Message):
        """A read of the roll-ups finished."""

        def __init__(
            self,
            rows: list[tuple[SessionTotals, list[AgentTotals], list[Turn], SessionView | None]],
            today: float,
        ) -> None:
            super().__init__()
            self.rows = rows
            self.today = today

    def __init__(self, store: RecordStore, budget: BudgetSettings | None = None, live: bool = True) -> None:
        super().__init__()
        self.store = store
        self.budget = budget or BudgetSettings()
        self.live = live
        self.nodes: dict[str, Node] = {}
        self.views: dict[str, SessionView] = {}
        self.today = 0.0
        self.loads = 0
        self._left = False

    def compose(self) -> ComposeResult:
        yield Header(icon="◉")
        yield Static(id="sessions-budget")
        yield Static(id="sessions-status")
        yield Static(id="sessions-insight")
        table: DataTable[str | Text] = DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        for name, width in COLUMNS:
            table.add_column(name, width=width, key=name)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "sessions"
        self.load()
        if self.live:
            self.set_interval(REFRESH_S, self.load)
        self.query_one(DataTable).focus()

    @work(exclusive=True, group="sessions", exit_on_error=False)
    async def load(self) -> None:
        def read() -> tuple[
            list[tuple[SessionTotals, list[AgentTotals], list[Turn], SessionView | None]], float
        ]:
            sessions = self.store.sessions(SESSIONS)
            ids = [s.session_id for s in sessions]
            views, turns = self.store.session_views(ids), self.store.latest_turns(ids, TURNS)
            rows = [
                (s, self.store.agents(s.session_id), turns.get(s.session_id, []), views.get(s.session_id))
                for s in sessions
            ]
            return rows, self.store.spend_today()

        try:
            rows, today = await asyncio.to_thread(read)
        except Exception as exc:  # a failed read is a notice; the view keeps what it showed
            self.notify(f"could not read sessions: {exc}", severity="warning")
            return
        self.post_message(self.Loaded(rows, today))

    def on_sessions_screen_loaded(self, message: Loaded) -> None:
        self.loads += 1
        table = self.query_one(DataTable)
        keep = self._current_key()
        table.clear()
        self.nodes.clear()
        self.views.clear()
        for s, agents, turns, view in message.rows:
            key = f"s:{s.session_id}"
            self.nodes[key] = Node(key, f"session:{s.session_id}", s)
            if view is not None:
                self.views[s.session_id] = view
            table.add_row(*session_row(s, view.found if view is not None else 0), key=key)
            for depth, a in tree(s, agents):
                akey = f"a:{s.session_id}:{a.agent_id}"
                flt = f"session:{s.session_id} agent:{a.agent_id or 'main'}"
                self.nodes[akey] = Node(akey, flt, s, a)
                table.add_row(*agent_row(depth, a), key=akey)
            for t in turns:
                tkey = f"t:{s.session_id}:{t.prompt_id}"
                self.nodes[tkey] = Node(tkey, f"session:{s.session_id}", s, turn=t)
                table.add_row(*turn_row(t), key=tkey)
        if keep in self.nodes:
            row = table.get_row_index(keep)
            table.move_cursor(row=row, animate=False)
            # sessions new since the last read went in above it: once the rows are laid out, scroll to the
            # highlighted one (it is what the line below and Enter speak of), not leave it off-screen
            self.call_after_refresh(table.move_cursor, row=row, animate=False, scroll=True)
        self.today = message.today
        n = len(message.rows)
        self.query_one("#sessions-status", Static).update(
            Text(
                f"the {n} most recently active sessions (older ones: gatewatch stats --by session)"
                if n >= SESSIONS
                else f"{n} session{'s' if n != 1 else ''}, most recently active first",
                style="dim",
            )
            if n
            else Text("no Claude Code session recorded yet (calls without a session id are not listed)")
        )
        self._render_budget()

    def _current_key(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None

    @on(DataTable.RowHighlighted)
    def _highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._render_budget()

    def _render_budget(self) -> None:
        b = self.budget
        bar = self.query_one("#sessions-budget", Static)
        lines: list[Text] = []
        if b.daily_usd is not None:
            lines.append(budget_bar("today  ", self.today, b.daily_usd, b.warn_at))
        node = self.nodes.get(self._current_key() or "")
        if b.session_usd is not None and node is not None:
            lines.append(
                budget_bar(
                    f"session {node.session.session_id[:8]}", node.session.cost, b.session_usd, b.warn_at
                )
            )
        if not lines:
            lines.append(Text("no budget set ([budget] daily_usd, session_usd)", style="dim"))
        bar.update(Text("\n").join(lines))
        insight = self.query_one("#sessions-insight", Static)
        if node is None:
            insight.update("")
        else:
            insight.update(insight_line(node.session, self.views.get(node.session.session_id)))

    def action_back(self) -> None:
        self._leave(None)

    def action_choose(self) -> None:
        node = self.nodes.get(self._current_key() or "")
        if node is not None:
            self._leave(node.filter)

    def _leave(self, result: str | None) -> None:
        if not self._left:  # Enter reaches both the table's selection and the binding
            self._left = True
            self.dismiss(result)

    @on(DataTable.RowSelected)
    def _selected(self, _: DataTable.RowSelected) -> None:
        self.action_choose()

    def action_reload(self) -> None:
        self.load()
