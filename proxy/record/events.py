"""The event bus: typed events named for what happened, and subscribers that observe them.

Side effects (the store's file-log mirror, `serve`'s line printer, the console, later metrics and OpenTelemetry)
are subscribers, in the style of mitmproxy's addons. Events are emitted on the thread where they happen: call
events on the gateway's event loop, store events on the store's writer thread. A subscriber must never block
(the console's only calls the thread-safe `post_message`); one that raises is logged and skipped, never breaks
a call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from proxy.record import Record

log = logging.getLogger("gatewatch")


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call arrived; `record` is live (the gateway keeps filling it until `CallFinished`)."""

    record: Record


@dataclass(frozen=True, slots=True)
class CallProgressed:
    """A call in flight advanced (routed to a target, a stream delivered events). Emitted only while someone
    subscribes to it, and then at most every `Bus.PROGRESS_EVERY_S` per call: never one per stream chunk."""

    record: Record


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A call ended (answered, failed or cancelled) and was handed to the store; `record` no longer changes."""

    record: Record


@dataclass(frozen=True, slots=True)
class RecordsCommitted:
    """The store committed a batch (emitted on the store's writer thread)."""

    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class RecordsLost:
    """The store gave up on a batch after its retries; `total` is every record lost since it started."""

    count: int
    total: int
    error: str


@dataclass(frozen=True, slots=True)
class BudgetCrossed:
    """A budget's spend reached its warning share (`level` "warning", once) or its cap ("refused", per call)."""

    scope: str
    """`daily` or `session`"""
    key: str
    """the day (YYYY-MM-DD) or the session id"""
    spend: float
    cap: float
    level: str


Event = CallStarted | CallProgressed | CallFinished | RecordsCommitted | RecordsLost | BudgetCrossed
E = TypeVar("E", CallStarted, CallProgressed, CallFinished, RecordsCommitted, RecordsLost, BudgetCrossed)


class Bus:
    """Subscribers by event type. Emitting an event nobody subscribed to costs one dict lookup."""

    PROGRESS_EVERY_S = 0.25

    def __init__(self) -> None:
        self._subs: dict[type, tuple[Callable[..., None], ...]] = {}
        self._later: dict[type, tuple[Callable[..., None], ...]] = {}
        """subscribers run on the emitting loop's next turn (`subscribe(later=True)`)"""
        self._lock = threading.Lock()  # subscribe may run on another thread than emit

    def subscribe(self, kind: type[E], fn: Callable[[E], None], later: bool = False) -> Callable[[], None]:
        """Call `fn(event)` for every event of `kind`; returns a function that unsubscribes.

        `later`: where the event is emitted on an event loop, run `fn` on that loop's next turn rather than
        inside the emit. `CallFinished` is emitted before a call's last bytes leave: a subscriber that no call
        needs to wait for (a line printed, a counter for `/metrics`) then costs the call nothing. The later
        subscribers of one event run in one callback of the loop's (one `call_soon` per event, not one each)."""
        subs: dict[type, tuple[Callable[..., None], ...]] = self._later if later else self._subs
        with self._lock:
            subs[kind] = (*subs.get(kind, ()), fn)

        def unsubscribe() -> None:
            with self._lock:
                subs[kind] = tuple(f for f in subs.get(kind, ()) if f is not fn)

        return unsubscribe

    def wants(self, kind: type) -> bool:
        """Whether anyone listens for `kind`: lets the emitter skip building an event nobody reads."""
        return bool(self._subs.get(kind) or self._later.get(kind))

    def emit(self, event: Event) -> None:
        # the tuples are replaced, never mutated, so reading them needs no lock
        later = self._later.get(type(event))
        if later:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on a loop (the store's writer thread): now
                _run(later, event)
            else:
                loop.call_soon(_run, later, event)
        for fn in self._subs.get(type(event), ()):
            try:
                fn(event)
            except Exception:  # a broken subscriber must not break a call or the writer
                log.exception("subscriber %r failed on %s", fn, type(event).__name__)


def _run(fns: tuple[Callable[..., None], ...], event: Event) -> None:
    for fn in fns:
        try:
            fn(event)
        except Exception:  # as in `emit`: a broken subscriber is logged and skipped
            log.exception("subscriber %r failed on %s", fn, type(event).__name__)
