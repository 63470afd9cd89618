"""The console: its main screen over a gateway's `Host` (hosted here, or watched elsewhere), and what every
screen shares: the app's keys, the notices of the gateway's events, the containing of the screen's own errors.

The gateway never waits on the screen: its events reach the app through `post_message` (thread-safe, never
blocking) or a queue the main screen drains on its own timer, and the screen reads the store through its own
connections.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.worker import Worker, WorkerFailed, WorkerState

from proxy import config as cfg
from proxy.record.events import BudgetCrossed, CallFinished
from proxy.store import RecordStore, data_dir

from . import keys
from .detail import DetailScreen
from .faults import ContainedTimers
from .help import HelpScreen
from .hint import AutoModeNotice, dropped_safeguards
from .history import HistoryTable
from .host import Host, Hosting
from .main_screen import MainScreen
from .sessions import BudgetNotice, SessionsScreen

NARROW = 120  # below this many columns the panes give way to two lines of figures


class GatewatchApp(ContainedTimers, App[None]):
    TITLE = "gatewatch"
    CSS_PATH = "app.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-medium"), (160, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [*keys.APP]

    def __init__(
        self,
        config: cfg.Config,
        store: RecordStore,
        *,
        host: Host | None = None,
        config_error: str | None = None,
        on_ready: Callable[[str], Coroutine[Any, Any, None]] | None = None,
        before_start: Callable[[], Coroutine[Any, Any, None]] | None = None,
        export_dir: str | None = None,
        banner_note: str = "",
        insecure: bool = False,
        price_as: str | None = None,
    ) -> None:
        """`host`: the gateway to show (console/remote.py's `Attached` watches one elsewhere); without it the
        console hosts its own, which the hosting keywords (`config_error` … `insecure`) are for."""
        super().__init__()
        self.config = config
        self.store = store
        self.host: Host = host or Hosting(
            config,
            store,
            insecure=insecure,
            config_error=config_error,
            before_start=before_start,
            on_ready=on_ready,
        )
        self.main = MainScreen(
            config,
            store,
            self.host,
            contain=self.contain,
            export_dir=Path(export_dir) if export_dir else data_dir(),
            banner_note=banner_note,
            price_as=price_as,
        )
        self.host.bus.subscribe(BudgetCrossed, self._budget_crossed)
        self.auto_mode_told = False
        """auto mode's safeguards were seen and explained (said once per console)"""
        self.host.bus.subscribe(CallFinished, self._auto_mode_seen)
        self.faults: list[str] = []
        """errors of the screen's own (a timer, a worker, a handler) that were contained, oldest first"""
        self._last_fault: tuple[str, float] = ("", 0.0)

    def get_default_screen(self) -> MainScreen:
        return self.main

    @property
    def url(self) -> str:
        """Where the gateway listens, once it does."""
        return self.main.url

    @property
    def stopping(self) -> bool:
        return self.main.stopping

    # -- stop ----------------------------------------------------------------------------------------------
    async def on_unmount(self) -> None:
        await self.shutdown()

    async def action_quit(self) -> None:
        """Say at once that the gateway is draining, then drain in a worker: the screen keeps repainting
        (and counting down the calls in flight) meanwhile, instead of waiting inside this key's handler."""
        self.main.render_stopping()
        self._drain_and_exit()

    @work(exclusive=True, group="quit", exit_on_error=False)
    async def _drain_and_exit(self) -> None:
        try:
            await self.shutdown()
        finally:
            self.exit()

    async def shutdown(self) -> None:
        """Stop accepting, let the calls in flight finish, flush every pending record; say so meanwhile."""
        await self.main.shutdown()

    # -- containing the screen's own errors -----------------------------------------------------------------
    def contain(self, error: BaseException, where: str) -> None:
        """Note an error of the screen's own and show it (once a minute at most per message); a missing widget
        while the screen is not up (before mount, during teardown) is expected and only noted."""
        msg = f"{where}: {error!r}"
        self.faults.append(msg)
        self.log.error(msg)
        if isinstance(error, NoMatches) and (not self.main.ready or self.stopping or not self.is_running):
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
        if self.main.ready and isinstance(error, WorkerFailed):
            self.contain(error.error, "worker")
            return
        super()._handle_exception(error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.contain(event.worker.error, "worker")

    # -- notices of the gateway's events (posted from its thread) --------------------------------------------
    def _budget_crossed(self, e: BudgetCrossed) -> None:
        self.post_message(BudgetNotice(e))

    def on_budget_notice(self, message: BudgetNotice) -> None:
        self.notify(message.text, title="budget", severity=message.severity, timeout=10)

    def _auto_mode_seen(self, e: CallFinished) -> None:
        """(the gateway's thread: only a flag and a post) the first call carrying auto mode's safeguards"""
        if not self.auto_mode_told and dropped_safeguards(e.record):
            self.auto_mode_told = True
            self.post_message(AutoModeNotice())

    def on_auto_mode_notice(self, message: AutoModeNotice) -> None:
        self.notify(message.text, title="Claude Code's auto mode", severity="warning", timeout=30)

    # -- the app's keys, on every screen ---------------------------------------------------------------------
    def on_detail_screen_replay_asked(self, message: DetailScreen.ReplayAsked) -> None:
        self.main.replay(message.record)

    def action_sessions(self) -> None:
        # a viewer shows the caps its gateway enforces (from its identity), not its own directory's config
        self.push_screen(SessionsScreen(self.store, self.host.budget), self.main.filter_to)

    def action_price_as(self) -> None:
        self.main.price_as_next()

    def action_help(self) -> None:
        if isinstance(self.screen, SessionsScreen):  # its own keys, not the history's
            self.push_screen(HelpScreen(_keys(SessionsScreen.BINDINGS), False))
            return
        self.push_screen(HelpScreen(keys.KEYS + _keys(HistoryTable.BINDINGS)))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main
        yield SystemCommand("Search history", "Focus the filter box", main.action_search)
        yield SystemCommand(
            "Export view", "Write the calls matching the filter to a JSON file", main.action_export
        )
        yield SystemCommand(
            "Open selected call", "Show the call's request, response and timing", main.action_open
        )
        yield SystemCommand("Reload history", "Re-read the history from the store", main.action_reload)
        yield SystemCommand("Help", "Every key and the whole filter language", self.action_help)


def _keys(bindings: Iterable[BindingType]) -> list[Binding]:
    """the bindings a widget declares as `Binding`s (the help's rows)"""
    return [b for b in bindings if isinstance(b, Binding)]


def run_console(
    config: cfg.Config,
    store: RecordStore,
    config_error: str | None = None,
    insecure: bool = False,
    host: Host | None = None,
    price_as: str | None = None,
) -> int:
    app = GatewatchApp(
        config, store, config_error=config_error, insecure=insecure, host=host, price_as=price_as
    )
    try:
        app.run()
    finally:
        app.host.stop()  # after a crash of the screen too: calls in flight drain, records are flushed
        # (a viewer only closes its feed: the gateway it watched goes on)
        store.close()
    return 0
