"""The console's main screen: the header's banner, the live panes, the history with its filter box.

It shows the gateway of its `Host` (console/host.py), hosted here or watched elsewhere, without asking which:
it starts the host as it mounts and drains it as the console quits. The gateway never waits on the screen: its
events are queued on a `Feed` the screen drains on its own timer, and the history is read from the store
through the store's own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Header, Input, Static
from textual.worker import WorkerCancelled, WorkerFailed

from proxy import collector
from proxy import config as cfg
from proxy.log import log
from proxy.record import Record
from proxy.reports.export import export_file
from proxy.service import ServiceError
from proxy.store import RecordStore, query

from . import fmt, keys
from .banner import Banner
from .detail import DetailScreen
from .faults import Contain, ContainedTimers
from .feed import Feed
from .footer import Footer
from .history import COUNT_CAP, HistoryTable
from .host import Host
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
from .replay_view import ReplayScreen

REFRESH_S = 0.5  # panes repaint at most this often, however many calls finish
HISTORY_REFRESH_S = 1.0
STOP_POLL_S = 0.2  # how often the "stopping" notice is rewritten while calls drain
COMPACT = 160  # below this many columns the targets and in-flight panes are drawn compact


class MainScreen(ContainedTimers, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [*keys.MAIN]

    def __init__(
        self,
        config: cfg.Config,
        store: RecordStore,
        host: Host,
        *,
        contain: Contain,
        export_dir: Path,
        banner_note: str = "",
        price_as: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self.host = host
        self.contain = contain
        """the app's keeper of the screen's own errors: what a timer of this screen raises goes there"""
        self.export_dir = export_dir
        """where `e` writes: the data directory beside the default store, never the current folder"""
        self.banner_note = banner_note
        self.price_as_choice = price_as
        """the what-if model given with --price-as (offered by `$` beside the targets' models)"""
        self.stats = LiveStats(price_as=price_as)
        self.what_if = price_as
        """the cost pane's what-if model as last chosen (`$`); the pane shows it once priced"""
        self.in_flight: dict[str, Record] = {}
        """calls in flight, kept from the gateway's events; the records are live (filled on its thread)"""
        self.url = ""
        """where the gateway listens, once it does"""
        self.stopping = False
        self.feed = Feed(host.bus, store.bus)
        self.problem: str | None = None
        """why no gateway runs (shown instead of the banner)"""
        self._feed_problem: str | None = None
        self._banner_shown: tuple[Any, ...] = ()
        self.filter_error: str | None = None
        self._dirty = True
        self._refresh_timer: Timer | None = None
        self._last_refresh = 0.0
        self.last_export: tuple[Path, int] | None = None
        """(path, count) of the last export, for the status and the tests"""
        self.ready = False
        """started, the history shown: a missing widget is a fault from now on, not the screen coming up"""
        self._shown_in_flight = 0

    # -- the screen's timers: what they raise is contained -------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The history's keys leave the footer while another screen is over this one (a modal one leaves this
        footer in sight): only the keys that work there stay."""
        return len(self.app.screen_stack) == 1 or action not in keys.HISTORY_KEYS

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
        if self.problem is None:
            try:
                self.url = await asyncio.to_thread(self.host.start)
            except ServiceError as exc:
                self.problem = str(exc)
        self._render_banner()
        self.set_interval(REFRESH_S, self._tick)
        with contextlib.suppress(WorkerCancelled, WorkerFailed):  # a newer read took over: it shows the rows
            await self.query_one(HistoryTable).load(query.EVERYTHING).wait()
        self.ready = True
        self._tick()  # paint the panes now, not a refresh interval later
        self.query_one(HistoryTable).focus()
        collector.settle()  # the first screen's widgets live as long as the app: frozen with start-up's
        self.host.ready()  # beside the gateway, on its loop: never the screen's

    async def shutdown(self) -> None:
        """Stop accepting, let the calls in flight finish, flush every pending record; say so meanwhile."""
        if self.stopping:
            return
        self.stopping = True
        # the app's timer: this screen may be torn down already as the app ends
        timer = self.app.set_interval(STOP_POLL_S, self.render_stopping)
        self.render_stopping()
        try:
            await asyncio.to_thread(self.host.stop)
        finally:
            timer.stop()
            self.feed.close()

    def render_stopping(self) -> None:
        try:
            banner = self.query_one("#banner", Static)
        except NoMatches:
            return
        calls, pending = self.host.in_flight, self.store.pending
        t = Text("stopping: ", style="bold yellow")
        t.append(f"{calls} call{'s' if calls != 1 else ''} in flight to finish, ")
        t.append(f"{pending} record{'s' if pending != 1 else ''} to write")
        if calls:
            t.append(" — draining, no new calls taken", style="yellow")
        banner.update(t)
        self.app.sub_title = "stopping"

    # -- rendering -----------------------------------------------------------------------------------------
    def _render_subtitle(self) -> None:
        if not self.problem:
            where = f"{self.host.words.relation} {self.url}"
            if self._feed_problem:
                where += " (not live)"
            self.app.sub_title = where if self.url else ""

    def _render_banner(self) -> None:
        try:
            banner = self.query_one("#banner", Static)
        except NoMatches:
            return
        if self.stopping:
            self.render_stopping()
            return
        if self.problem:
            banner.update(Text(f"⚠ {self.problem}", style="bold red"))
            banner.add_class("problem")
            banner.styles.height = "auto"  # the whole message, however long
            self.app.sub_title = "gateway not running"
            return
        text = self.banner().text(self.app.size.width)
        banner.styles.height = text.plain.count("\n") + 1  # two lines, three when the hint needs two
        banner.update(text)
        self._render_subtitle()

    def banner(self) -> Banner:
        """What the header's two lines show now."""
        return Banner(
            url=self.url,
            words=self.host.words,
            not_live=self._feed_problem,
            targets=self.host.target_list(),
            health=self.host.target_health(),
            config=self.config,
            paste_model=self.host.paste_model(),
            note=self.banner_note,
        )

    def _banner_state(self) -> tuple[Any, ...]:
        """Everything the banner shows: when it changes, the banner is drawn again."""
        health = self.host.target_health()
        states = tuple(sorted((n, h.get("state")) for n, h in health.items() if h.get("state") != "ok"))
        gen = self.host.generation
        return (self.app.size.width, self._feed_problem, gen, states, self.url, self.problem, self.stopping)

    def on_resize(self) -> None:
        """Everything drawn for a width is drawn again on the resize itself, not at the next tick: the banner,
        and the panes that are compact below COMPACT columns."""
        self._render_banner()
        self._dirty = True
        if self.ready:
            try:
                self._tick()
            except Exception as exc:  # as the timer's tick would be: said, never the end of the console
                self.contain(exc, "resize")

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
        self._feed_problem = self.host.problem  # the feed dropped or came back: say so
        state = self._banner_state()
        if state != self._banner_shown:  # a drop, a restart, a cool-down, a resize: drawn from the state
            self._banner_shown = state
            self._render_banner()
        in_flight = list(self.in_flight.values())
        compact = self.app.size.width < COMPACT
        self.query_one("#pane-inflight", Pane).show(render_in_flight(in_flight, compact=compact))
        health = self.host.target_health()
        if any(h["state"] != "ok" for h in health.values()):
            self._dirty = True  # a cool-down counts down on screen
        if self._dirty or len(in_flight) != self._shown_in_flight:
            self._shown_in_flight = len(in_flight)
            # two lines tall whatever it says (app.tcss): a repaint, not a layout
            self.query_one("#summary", Static).update(
                render_summary(self.stats, len(in_flight)), layout=False
            )
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
        was_error = line.has_class("error")
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
        line.update(t, layout=was_error)  # one line tall unless it was an error's: a repaint, not a layout

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

    def filter_to(self, text: str | None) -> None:
        """The history shows the calls of `text` (a session or an agent chosen in the Sessions view)."""
        if text:
            self.query_one("#search", Input).value = text
            self._apply_filter(text)
        self.query_one(HistoryTable).focus()

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

    def action_reload(self) -> None:
        self.query_one(HistoryTable).load()

    @work(exclusive=True, group="open")
    async def open_record(self, record_id: str | None) -> None:
        if not record_id:
            return
        rec = await asyncio.to_thread(self.store.get, record_id)
        if rec is None:
            self.notify("that call is no longer in the store", severity="warning")
            return
        # its curl goes where a replay would (no gateway for a viewer of a shared store: the default address)
        door = self.host.door(self.store.get)
        await self.app.push_screen(DetailScreen(rec, door.url or "http://127.0.0.1:8000"))

    def replay(self, record: Record) -> None:
        """`R` in a call's detail: the confirm screen, then the comparison (console/replay_view.py)."""
        problem = self.host.problem
        if problem:  # said before the confirm screen, not as a connection error after it
            self.notify(
                f"not live: {problem}; a replay goes through that gateway, start it again", severity="error"
            )
            return
        door = self.host.door(self.store.get)
        if not door.url:
            self.notify("no gateway runs here yet: nothing to replay through", severity="error")
            return
        self.app.push_screen(ReplayScreen(record, door))

    def what_if_models(self) -> list[str]:
        """What `$` cycles through: --price-as's model, then each target's model (the cost pane's what-if)."""
        out = [self.price_as_choice] if self.price_as_choice else []
        return out + [m for m in dict.fromkeys(self.host.what_if_models()) if m not in out and m != "*"]

    def price_as_next(self) -> None:
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
