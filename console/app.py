"""The console: hosts the gateway on a thread and event loop of its own, shows live panes and the history.

The gateway never waits on the screen: its events reach the app through `post_message` (thread-safe, never
blocking), and the screen reads the store through its own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Header, Input, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from proxy import collector
from proxy import config as cfg
from proxy.log import log
from proxy.record import Record
from proxy.record.events import BudgetCrossed, CallFinished
from proxy.reports.export import export_file
from proxy.service import Service, ServiceError, ServiceThread
from proxy.store import RecordStore, data_dir, query

from . import fmt
from .detail import DetailScreen
from .feed import Feed
from .footer import Footer
from .help import HelpScreen
from .hint import AutoModeNotice, dropped_safeguards, usage_hint
from .history import COUNT_CAP, HistoryTable
from .panes import (
    LiveStats,
    Pane,
    render_cost,
    render_in_flight,
    render_latency,
    render_summary,
    render_targets,
    render_tokens,
    reprice,
)
from .remote import Attached
from .replay_view import Door, ReplayScreen
from .sessions import BudgetNotice, SessionsScreen

REFRESH_S = 0.5  # panes repaint at most this often, however many calls finish
HISTORY_REFRESH_S = 1.0
STOP_POLL_S = 0.2  # how often the "stopping" notice is rewritten while calls drain
NARROW = 120  # below this many columns the panes give way to two lines of figures
MAIN_ONLY = frozenset({"search", "open", "export", "clear_search", "reload"})
"""actions of the main screen: offered (in the footer) and run only there"""


class GatewatchApp(App):
    TITLE = "gatewatch"
    CSS_PATH = "app.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-medium"), (160, "-wide")]
    BINDINGS = [
        Binding("slash", "search", "Search", key_display="/", id="search"),
        Binding("enter", "open", "Open call", id="open", show=False),
        Binding("e", "export", "Export", id="export"),
        Binding("s", "sessions", "Sessions", id="sessions"),
        Binding("dollar_sign", "price_as", "What-if price", key_display="$", id="price_as", show=False),
        Binding("escape", "clear_search", "Clear", id="clear_search", show=False),
        Binding("r", "reload", "Reload", id="reload", show=False),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(
        self,
        config: cfg.Config,
        store: RecordStore,
        *,
        config_error: str | None = None,
        on_ready: Callable[[str], Awaitable[None]] | None = None,
        before_start: Callable[[], Awaitable[None]] | None = None,
        export_dir: str | None = None,
        banner_note: str = "",
        insecure: bool = False,
        attach: Attached | None = None,
        price_as: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.price_as_choice = price_as
        """the what-if model given with --price-as (offered by `$` beside the targets' models)"""
        self.store = store
        self.config_error = config_error
        self.on_ready = on_ready
        self.before_start = before_start
        """run on the gateway's loop before it starts (the demo's upstream, up before its credentials are
        checked: else a target reads 'unchecked: could not be reached' at first)"""
        self.export_dir = Path(export_dir) if export_dir else data_dir()
        """where `e` writes: the data directory beside the default store, never the current folder"""
        self.banner_note = banner_note
        self.insecure = insecure
        self.stats = LiveStats(price_as=price_as)
        self.what_if = price_as
        """the cost pane's what-if model as last chosen (`$`); the pane shows it once priced"""
        self.attached = attach
        """a gateway elsewhere that this console watches (None: the console hosts its own)"""
        self.service: Service | Attached = attach or Service(config, store, insecure=insecure)
        self.host: ServiceThread | Attached = attach or ServiceThread(self.service)
        self.in_flight: dict[str, Record] = {}
        """calls in flight, kept from the gateway's events; the records are live (filled on its thread)"""
        self.url = ""
        self.stopping = False
        self.feed = Feed(self.service.bus)
        if store.bus is not self.service.bus:  # a viewer: commits of other writers come on the store's bus
            self.feed.follow_commits(store.bus)
        self.service.bus.subscribe(BudgetCrossed, lambda e: self.post_message(BudgetNotice(e)))
        self.auto_mode_told = False
        """auto mode's safeguards were seen and explained (said once per console)"""
        self.service.bus.subscribe(CallFinished, self._auto_mode_seen)
        self.problem: str | None = None
        self._feed_problem: str | None = None
        self._banner_shown: tuple[Any, ...] = ()
        self.filter_error: str | None = None
        self._dirty = True
        self._refresh_timer = None
        self._last_refresh = 0.0
        self.last_export: tuple[Path, int] | None = None
        """(path, count) of the last export, for the status and the tests"""
        self.faults: list[str] = []
        """errors of the screen's own (a timer, a worker, a handler) that were contained, oldest first"""
        self._last_fault: tuple[str, float] = ("", 0.0)
        self._mounted = False
        self._shown_in_flight = 0

    mode: reactive[str] = reactive("")
    """what the console is (e.g. "gateway inside", "viewer of …"): shown in the header beside the URL"""

    def watch_mode(self) -> None:
        self._render_subtitle()

    def _render_subtitle(self) -> None:
        if not self.problem:
            where = f"attached to {self.url}" if self.attached else f"hosting {self.url}"
            if self.attached and self._feed_problem:
                where += " (not live)"
            self.sub_title = "  ·  ".join(p for p in (where if self.url else "", self.mode) if p)

    # -- layout --------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◉")
        yield Static(id="banner")
        yield Static(id="summary")
        with Horizontal(id="panes"):
            yield Pane("targets", id="pane-targets")
            yield Pane("tokens", sparkline=True, id="pane-tokens")
            yield Pane("cost", id="pane-cost")
            yield Pane("latency", sparkline=True, id="pane-latency")
            yield Pane("in flight", id="pane-inflight")
        with Vertical(id="history-box"):
            yield Input(
                placeholder="/ filter: text  model:flash  status:>=400  since:1h  tool:Bash  cost>0.01",
                id="search",
            )
            yield Static(id="status-line")
            yield HistoryTable(self.store, id="history")
        yield Footer(compact=True)

    # -- start and stop ------------------------------------------------------------------------------------
    async def on_mount(self) -> None:
        try:
            await asyncio.to_thread(self.host.open_store)  # may replay a crashed writer's journal
        except ServiceError as exc:
            self.problem = str(exc)
        # a store other processes write too (PostgreSQL) announces their commits: the history refreshes
        self.store.watch()
        await self._seed_stats()  # before the gateway listens, so no call is counted both here and live
        if self.problem is None and self.before_start is not None and isinstance(self.host, ServiceThread):
            await asyncio.wrap_future(self.host.run(self.before_start()))
        if self.problem is None:
            await self._start_gateway()
        self._render_banner()
        self.set_interval(REFRESH_S, self._tick)
        with contextlib.suppress(WorkerCancelled, WorkerFailed):  # a newer read took over: it shows the rows
            await self.query_one(HistoryTable).load(query.EVERYTHING).wait()
        self._mounted = True
        self._tick()  # paint the panes now, not a refresh interval later
        self.query_one(HistoryTable).focus()
        collector.settle()  # the first screen's widgets live as long as the app: frozen with start-up's
        if self.on_ready is not None and self.service.gateway is not None:
            self.host.run(self.on_ready(self.url))  # beside the gateway, on its loop: never the screen's

    async def _start_gateway(self) -> None:
        if self.config_error and not self.attached:
            self.problem = f"configuration error:\n{self.config_error}\nFix the file and restart gatewatch."
            return
        try:
            self.url = await asyncio.to_thread(self.host.start)
        except ServiceError as exc:
            self.problem = str(exc)

    async def on_unmount(self) -> None:
        await self.shutdown()

    async def action_quit(self) -> None:
        """Say at once that the gateway is draining, then drain in a worker: the screen keeps repainting
        (and counting down the calls in flight) meanwhile, instead of waiting inside this key's handler."""
        self._render_stopping()
        self._drain_and_exit()

    @work(exclusive=True, group="quit", exit_on_error=False)
    async def _drain_and_exit(self) -> None:
        try:
            await self.shutdown()
        finally:
            self.exit()

    async def shutdown(self) -> None:
        """Stop accepting, let the calls in flight finish, flush every pending record; say so meanwhile."""
        if self.stopping:
            return
        self.stopping = True
        timer = self.set_interval(STOP_POLL_S, self._render_stopping)
        self._render_stopping()
        try:
            await asyncio.to_thread(self.host.stop)
        finally:
            timer.stop()
            self.feed.close()

    def _render_stopping(self) -> None:
        try:
            banner = self.query_one("#banner", Static)
        except NoMatches:
            return
        calls, pending = self.service.in_flight, self.store.pending
        t = Text("stopping: ", style="bold yellow")
        t.append(f"{calls} call{'s' if calls != 1 else ''} in flight to finish, ")
        t.append(f"{pending} record{'s' if pending != 1 else ''} to write")
        if calls:
            t.append(" — draining, no new calls taken", style="yellow")
        banner.update(t)
        self.sub_title = "stopping"

    # -- containing the screen's own errors -----------------------------------------------------------------
    def set_interval(self, interval, callback=None, **kw) -> Timer:  # type: ignore[override]
        return super().set_interval(interval, self._contained(callback), **kw)

    def set_timer(self, delay, callback=None, **kw) -> Timer:  # type: ignore[override]
        return super().set_timer(delay, self._contained(callback), **kw)

    def _contained(self, callback):
        """`callback` that reports what it raises instead of raising it: a timer that fires before the panes
        are mounted or while the screen is torn down must not end the app, and the gateway inside it."""
        if callback is None:
            return None

        @functools.wraps(callback)
        async def run() -> None:
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self.contain(exc, getattr(callback, "__name__", "timer"))

        return run

    def contain(self, error: BaseException, where: str) -> None:
        """Note an error of the screen's own and show it (once a minute at most per message); a missing widget
        while the screen is not up (before mount, during teardown) is expected and only noted."""
        msg = f"{where}: {error!r}"
        self.faults.append(msg)
        self.log.error(msg)
        if isinstance(error, NoMatches) and (not self._mounted or self.stopping or not self.is_running):
            return
        last, at = self._last_fault
        if self.stopping or (msg == last and time.monotonic() - at < 60):
            return
        self._last_fault = (msg, time.monotonic())
        with contextlib.suppress(Exception):
            self.notify(msg, title="console error (the gateway is unaffected)", severity="error", timeout=10)

    def _handle_exception(self, error: Exception) -> None:
        # A worker that raised (and was started with exit_on_error) would end the app, and the gateway with it:
        # contained once the app is up. Errors in start-up, or in a handler (whose widget stops), still end it.
        if self._mounted and isinstance(error, WorkerFailed):
            self.contain(error.error, "worker")
            return
        super()._handle_exception(error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.contain(event.worker.error, "worker")

    # -- rendering -----------------------------------------------------------------------------------------
    def _render_banner(self) -> None:
        try:
            banner = self.query_one("#banner", Static)
        except NoMatches:
            return
        if self.stopping:
            self._render_stopping()
            return
        if self.problem:
            banner.update(Text(f"⚠ {self.problem}", style="bold red"))
            banner.add_class("problem")
            banner.styles.height = "auto"  # the whole message, however long
            self.sub_title = "gateway not running"
            return
        text = self._banner_text(self.size.width)
        banner.styles.height = text.plain.count("\n") + 1  # two lines, three when the hint needs two
        banner.update(text)
        self._render_subtitle()

    def _banner_state(self) -> tuple[Any, ...]:
        """Everything the banner shows: when it changes, the banner is drawn again."""
        health = self.service.target_health()
        states = tuple(sorted((n, h.get("state")) for n, h in health.items() if h.get("state") != "ok"))
        gen = self.attached.generation if self.attached else 0
        return (self.size.width, self._feed_problem, gen, states, self.url, self.problem, self.stopping)

    def _banner_text(self, width: int) -> Text:
        """The one place that decides what the header's two lines show, at every width: where the gateway is
        and whether it is live first (a viewer whose gateway is gone says so on the first line, never on a
        third one that isn't drawn), then the targets that are refused or cooling, then the paste hint."""
        narrow = width < 160  # the paste line on a line of its own
        t = Text()
        if self.attached and self._feed_problem:
            t.append("⚠ not live: ", style="bold yellow")
            t.append(f"{self._feed_problem}; retrying", style="yellow")
        else:
            t.append("attached to " if self.attached else "listening ", style="dim")
            t.append(self.url, style="bold green")
        gateway = self.service.gateway
        targets = [(p.name, p.kind, p.model) for p in gateway.providers] if gateway is not None else []
        if not targets and self.attached:
            targets = self.attached.target_list()
        health = self.service.target_health()
        refused = {
            n: health[n]["credentials"] for n, _, _ in targets if health.get(n, {}).get("state") == "refused"
        }
        cooling = [n for n, _, _ in targets if health.get(n, {}).get("state") == "cooling"]
        # a viewer's hint names the model of the gateway it watches, not of its own directory's config
        hint = usage_hint(self.url, self.config, model=targets[0][2] if self.attached and targets else None)
        if narrow:
            t.append(f"  {len(targets)} target{'s' if len(targets) != 1 else ''}", style="dim")
            if refused:  # the credential check at start said no: say it here, not in Claude Code's retries
                t.append(f"  ✗ {', '.join(refused)} refused", style="bold red")
            if cooling:  # left out for a while after failures: the pane may be too narrow to show it
                t.append(f"  ◌ {', '.join(cooling)} cooling", style="bold yellow")
            if self.banner_note:
                t.append(f"  {self.banner_note}", style="italic yellow")
            t.append("\n")
            room = width - 2  # the banner's padding
            hint = usage_hint(
                self.url, self.config, room, targets[0][2] if self.attached and targets else None
            )
            if len(hint) > room and " " in hint[:room]:
                # cut at a space, the shell's way: both lines pasted together are the one command
                cut = hint.find(" ")  # after the URL, when the rest fits; else as late as fits
                if len(hint) - cut - 1 > room:
                    cut = hint.rfind(" ", 0, room - 2)
                t.append(hint[:cut] + " \\\n" + hint[cut + 1 :], style="bold")
            else:
                t.append(hint, style="bold")
        else:
            t.append("   paste: ", style="dim")
            t.append(hint, style="bold")
            t.append("\ntargets ", style="dim")
            for name, kind, model in targets:
                bad, cool = name in refused, name in cooling
                mark = "✗" if bad else "◌" if cool else "●"
                style = "bold red" if bad else "bold yellow" if cool else "green"
                t.append(f"{mark} {name}", style=style)
                t.append(f" {kind} {model}  ", style="dim")
                if bad:
                    t.append(f"{refused[name]}  ", style="red")
            if self.attached:
                t.append("  closing this console leaves that gateway running", style="italic dim")
            if self.banner_note:
                t.append(f"  {self.banner_note}", style="italic yellow")
        t.no_wrap, t.overflow = True, "ellipsis"  # two lines, whatever the width: the hint stays on screen
        return t

    def on_resize(self) -> None:
        self._render_banner()
        self._dirty = True

    async def _seed_stats(self) -> None:
        """Today's and all-time cost from the store: a full scan, so in a thread, never on the shared loop.
        Awaited before the gateway starts, so no call is counted both here and live."""
        start_of_day = time.mktime(time.localtime()[:3] + (0, 0, 0, 0, 0, -1))

        try:
            totals = await asyncio.to_thread(self.store.totals, start_of_day)
        except Exception as exc:
            self.notify(f"could not read totals from the store: {exc}", severity="warning")
            return
        self.stats.cost_all += totals.cost
        self.stats.cost_today += totals.cost_since

    def _tick(self) -> None:
        if self.stopping:  # (a pane missing before mount or at teardown: the timer guard logs it, see faults)
            return
        self._take_feed()
        if self.attached:
            self._feed_problem = self.attached.problem  # the feed dropped or came back: say so
        state = self._banner_state()
        if state != self._banner_shown:  # a drop, a restart, a cool-down, a resize: drawn from the state
            self._banner_shown = state
            self._render_banner()
        in_flight = list(self.in_flight.values())
        compact = self.size.width < 160
        self.query_one("#pane-inflight", Pane).show(render_in_flight(in_flight, compact=compact))
        health = self.service.target_health()
        if any(h["state"] != "ok" for h in health.values()):
            self._dirty = True  # a cool-down counts down on screen
        if self._dirty or len(in_flight) != self._shown_in_flight:
            self._shown_in_flight = len(in_flight)
            self.query_one("#summary", Static).update(render_summary(self.stats, len(in_flight)))
        if not self._dirty:
            return
        self._dirty = False
        self.query_one("#pane-targets", Pane).show(render_targets(self.stats, health, compact=compact))
        self.query_one("#pane-tokens", Pane).show(render_tokens(self.stats), self.stats.minute_series())
        self.query_one("#pane-cost", Pane).show(render_cost(self.stats))
        self.query_one("#pane-latency", Pane).show(
            render_latency(self.stats), list(self.stats.latencies)[-60:]
        )
        self._render_status()

    def _render_status(self) -> None:
        table = self.query_one(HistoryTable)
        line = self.query_one("#status-line", Static)
        if self.filter_error:
            # the rows below are the last filter that read, not results of this one: said, and dimmed
            shown = repr(table.filter.text) if table.filter else "every call"
            line.update(Text(f"filter: {self.filter_error}  (the list below is still {shown})", style="red"))
            line.add_class("error")
            table.add_class("stale")
            return
        line.remove_class("error")
        table.remove_class("stale")
        t = Text()
        total = f"{COUNT_CAP:,}+" if table.total > COUNT_CAP else f"{table.total:,}"
        t.append(f"{total} call{'' if table.total == 1 else 's'}", style="bold")
        if table.filter:
            t.append(f" matching {table.filter.text!r}", style="dim")
        t.append(f"  ·  loaded {len(table.rows_loaded)}", style="dim")
        if table.following:
            t.append("  ·  following", style="dim green")
        else:
            t.append("  ·  ")
            t.append("paused — End to follow", style="bold yellow")
        s = self.store.stats
        if s.lost:
            t.append(f"  ·  {s.lost} records LOST ({s.last_error})", style="bold red")
        elif s.last_error:
            t.append(f"  ·  store retrying: {s.last_error}", style="yellow")
        line.update(t)

    # -- events --------------------------------------------------------------------------------------------
    def _take_feed(self) -> None:
        for started, rec in self.feed.calls():
            if started:
                self.in_flight[rec.id] = rec
            else:
                self.in_flight.pop(rec.id, None)
                self.stats.add(rec)
                self._dirty = True
        # Rebuilding the visible rows costs a few ms: at most HISTORY_REFRESH_S apart, however busy.
        if self.feed.written() and self._refresh_timer is None:
            wait = max(0.01, HISTORY_REFRESH_S - (time.monotonic() - self._last_refresh))
            self._refresh_timer = self.set_timer(wait, self._refresh_history)

    async def _refresh_history(self) -> None:
        self._refresh_timer = None
        self._last_refresh = time.monotonic()
        try:
            table = self.query_one(HistoryTable)
        except NoMatches:  # shutting down
            return
        table.refresh_new()  # a worker: the status follows when it reports Loaded
        self._dirty = True

    def on_history_table_loaded(self, message: HistoryTable.Loaded) -> None:
        with contextlib.suppress(NoMatches):  # a read that ended as the app shut down
            self._render_status()

    def on_history_table_follow_changed(self, message: HistoryTable.FollowChanged) -> None:
        with contextlib.suppress(NoMatches):
            self._render_status()

    def on_history_table_failed(self, message: HistoryTable.Failed) -> None:
        self.notify(message.error, title="history", severity="error")

    @on(Input.Submitted, "#search")
    async def _search_submitted(self, event: Input.Submitted) -> None:
        self._apply_filter(event.value)
        self.query_one(HistoryTable).focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        flt = _parse(event.value)  # once per keystroke; the table and export get the Filter
        if isinstance(flt, str):
            self.filter_error = flt  # shown until the filter reads again; the list stays as it was
            self._render_status()
            return
        self.filter_error = None
        self.query_one(HistoryTable).load(flt)

    def _apply_filter(self, text: str) -> None:
        flt = _parse(text)
        if isinstance(flt, str):
            self.notify(flt, title="filter", severity="error")
            return
        self.query_one(HistoryTable).load(flt)

    @on(DataTable.RowSelected, "#history")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_record(event.row_key.value)

    # -- actions -------------------------------------------------------------------------------------------
    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    async def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        if search.value:
            search.value = ""
            self._apply_filter("")
        self.query_one(HistoryTable).focus()

    def action_open(self) -> None:
        rid = self.query_one(HistoryTable).current_id()
        if rid:
            self.open_record(rid)

    @work(exclusive=True, group="open")
    async def open_record(self, record_id: str | None) -> None:
        if not record_id:
            return
        rec = await asyncio.to_thread(self.store.get, record_id)
        if rec is None:
            self.notify("that call is no longer in the store", severity="warning")
            return
        await self.push_screen(DetailScreen(rec, self.url or "http://127.0.0.1:8000"))

    def on_detail_screen_replay_asked(self, message: DetailScreen.ReplayAsked) -> None:
        """`R` in a call's detail: the confirm screen, then the comparison (console/replay_view.py)."""
        if self.attached is not None:
            if self.attached.problem:  # said before the confirm screen, not as a connection error after it
                self.notify(
                    f"not live: {self.attached.problem}; a replay goes through that gateway, start it again",
                    severity="error",
                )
                return
            targets = [name for name, _, _ in self.attached.target_list()]
            door = Door(self.attached.url, self.attached.token, self.store.get, targets)
        else:
            targets = [t.name for t in self.config.targets]
            door = Door(self.url, self.config.gateway.auth_token, self.store.get, targets)
        if not door.url:
            self.notify("no gateway runs here yet: nothing to replay through", severity="error")
            return
        self.push_screen(ReplayScreen(message.record, door))

    def action_reload(self) -> None:
        self.query_one(HistoryTable).load()

    def action_sessions(self) -> None:
        # a viewer shows the caps its gateway enforces (from its identity), not its own directory's config
        budget = self.attached.budget if self.attached else self.config.budget
        self.push_screen(SessionsScreen(self.store, budget), self._filter_to)

    def _filter_to(self, text: str | None) -> None:
        """Back from the Sessions view: the history shows the chosen session or agent."""
        if text:
            self.query_one("#search", Input).value = text
            self._apply_filter(text)
        self.query_one(HistoryTable).focus()

    def on_budget_notice(self, message: BudgetNotice) -> None:
        self.notify(message.text, title="budget", severity=message.severity, timeout=10)

    def _auto_mode_seen(self, e: CallFinished) -> None:
        """(the gateway's thread: only a flag and a post) the first call carrying auto mode's safeguards"""
        if not self.auto_mode_told and dropped_safeguards(e.record):
            self.auto_mode_told = True
            self.post_message(AutoModeNotice())

    def on_auto_mode_notice(self, message: AutoModeNotice) -> None:
        self.notify(message.text, title="Claude Code's auto mode", severity="warning", timeout=30)

    def what_if_models(self) -> list[str]:
        """What `$` cycles through: --price-as's model, then each target's model (the cost pane's what-if)."""
        if self.attached is not None:
            models = [m for _, _, m in self.attached.target_list()]
        else:
            models = [t.model for t in self.config.targets]
        out = [self.price_as_choice] if self.price_as_choice else []
        return out + [m for m in dict.fromkeys(models) if m not in out and m != "*"]

    def action_price_as(self) -> None:
        """The next what-if model for the cost pane ("since start at <model>"), then none."""
        models = self.what_if_models()
        now = self.what_if
        if now is None:
            nxt = models[0] if models else None
        else:
            at = models.index(now) + 1 if now in models else len(models)
            nxt = models[at] if at < len(models) else None
        self.what_if = nxt  # a second `$` before the first is priced goes on from here
        self._reprice(nxt)

    @work(exclusive=True, group="price_as", exit_on_error=False)
    async def _reprice(self, model: str | None) -> None:
        """The session's calls re-priced off the screen's thread (the price library takes ~0.2 ms a call)."""
        taken = len(self.stats.usages)
        priced = await asyncio.to_thread(reprice, model, self.stats.usages[:taken])
        self.stats.set_price_as(model, priced, taken)
        self._dirty = True
        self.notify(
            f"cost pane: this session at {model}'s prices" if model else "cost pane: no what-if price"
        )

    def action_help(self) -> None:
        if isinstance(self.screen, SessionsScreen):  # its own keys, not the history's
            self.push_screen(
                HelpScreen([b for b in SessionsScreen.BINDINGS if isinstance(b, Binding)], False)
            )
            return
        self.push_screen(HelpScreen(self.BINDINGS + HistoryTable.BINDINGS))

    @work(exclusive=True, group="export")
    async def action_export(self) -> Path | None:
        flt = self.query_one(HistoryTable).filter
        path = (self.export_dir / time.strftime("gatewatch-export-%Y%m%d-%H%M%S.json")).resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            n = await asyncio.to_thread(lambda: export_file(self.store.iter_records(flt), "json", path))
        except OSError as exc:
            self.notify(f"export failed: {exc.strerror} ({path})", severity="error")
            return None
        what = f"matching {flt.text!r}" if flt else "(no filter)"
        self.notify(f"Exported {fmt.plural(n, 'call')} {what} to {path}", title="export", timeout=8)
        self.last_export = (path, n)
        return path

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The history's keys only on the main screen: a call's detail offers (in its footer) what works there."""
        if action in MAIN_ONLY and len(self.screen_stack) > 1:
            return False
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Search history", "Focus the filter box", self.action_search)
        yield SystemCommand(
            "Export view", "Write the calls matching the filter to a JSON file", self.action_export
        )
        yield SystemCommand(
            "Open selected call", "Show the call's request, response and timing", self.action_open
        )
        yield SystemCommand("Reload history", "Re-read the history from the store", self.action_reload)
        yield SystemCommand("Help", "Every key and the whole filter language", self.action_help)


def run_console(
    config: cfg.Config,
    store: RecordStore,
    config_error: str | None = None,
    insecure: bool = False,
    attach: Attached | None = None,
    price_as: str | None = None,
) -> int:
    app = GatewatchApp(
        config, store, config_error=config_error, insecure=insecure, attach=attach, price_as=price_as
    )
    try:
        app.run()
    finally:
        app.host.stop()  # after a crash of the screen too: calls in flight drain, records are flushed
        # (a viewer only closes its feed: the gateway it watched goes on)
        store.close()
    return 0


def _parse(text: str) -> query.Filter | str:
    """The filter typed, or what is wrong with it. Whatever the parser raises is said under the box: a search
    never ends the console, nor the gateway it hosts."""
    try:
        return query.parse(text)
    except query.QueryError as exc:
        return str(exc)
    except Exception as exc:  # a parser bug: said, logged, survived
        log.exception("the filter %r could not be read", text[:200])
        return f"this filter could not be read ({type(exc).__name__}: {exc})"
