"""The console as a viewer of a shared store, with no gateway of its own: `gatewatch --db postgresql://…`
where no target is configured (the README's way to watch replicas).

`Watching` stands where a gateway would (a `Host`, console/host.py): nothing listens on a port, and the live
figures count the calls every gateway on the store records. The store announces the other processes' commits
(PostgreSQL's LISTEN, `RecordStore.watch`); on each, a thread of its own reads the records committed since it
last looked and emits them as `CallFinished` on its bus, which the console's `Feed` takes as it takes a
gateway's. Nothing wakes it while nothing is committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from proxy import config as cfg
from proxy.log import log
from proxy.record import Record
from proxy.record.events import Bus, CallFinished, RecordsCommitted
from proxy.service import ServiceError
from proxy.store import RecordStore

from .host import Door, Target, Words

BATCH = 200
"""records read at a time after a commit"""


class Watching:
    """Every gateway on a shared store, watched through the store: a `Host` with no gateway here."""

    words = Words(
        "watching",
        "watching ",
        no_gateway="no gateway here: every gateway's calls on this store, as they are committed",
    )
    generation = 0
    in_flight = 0
    """(the gateways' calls in flight are theirs to show: a record arrives as it is committed)"""

    def __init__(self, config: cfg.Config, store: RecordStore) -> None:
        self.config = config
        self.store = store
        self.bus = Bus()
        self.problem: str | None = None
        """why the records committed stopped reaching this console (the last read failed); None while
        they do"""
        self._row: int | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def budget(self) -> cfg.BudgetSettings:
        return self.config.budget

    def open_store(self) -> None:
        """Reading needs no start: the gateways on the store are its writers."""

    def start(self) -> str:
        """Count from the store's newest record now; what is watched (the store, without its password)."""
        if self._thread is None:
            try:
                self._row, _ = self.store.committed_after(None)
            except Exception as exc:
                raise ServiceError(f"{self.store.where} can't be read: {exc}") from None
            self._unsubscribe = self.store.bus.subscribe(RecordsCommitted, lambda _: self._wake.set())
            self._thread = threading.Thread(target=self._follow, name="gatewatch-store-viewer", daemon=True)
            self._thread.start()
        return self.store.where

    def ready(self) -> None:
        """Nothing waits for the console: the calls are the gateways' clients'."""

    def stop(self) -> None:
        """Stop reading; the gateways on the store go on."""
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def _follow(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            self._take()

    def _take(self) -> None:
        """Every record committed since the last look, as a finished call."""
        try:
            while True:
                self._row, records = self.store.committed_after(self._row, BATCH)
                for rec in records:
                    self.bus.emit(CallFinished(rec))
                if len(records) < BATCH:
                    break
        except (
            Exception
        ) as exc:  # a store gone away: said in the header; the next commit it announces reads again
            log.debug("store viewer: %s", exc)
            self.problem = f"{self.store.where} did not answer: {exc}"
            return
        self.problem = None

    def target_list(self) -> list[Target]:
        """No gateway here: no target of its own."""
        return []

    def target_health(self) -> dict[str, dict[str, Any]]:
        return {}

    def paste_model(self) -> str | None:
        return None

    def what_if_models(self) -> list[str]:
        return [t.model for t in self.config.targets]

    def door(self, get: Callable[[str], Record | None]) -> Door:
        """No gateway here to replay through."""
        return Door("", None, get, [])
