"""What the gateway and the store report, queued for the screen to take on its own time.

Subscribers run on the gateway's thread (call events) and the store's writer (commits). They only append to a
deque (atomic, never blocking) and never wake the screen: the screen drains the feed on its own timer. Waking it
per call (a `post_message` each) made it run exactly when the gateway was busiest, as calls end and the next
ones start, and cost those calls time to first token.
"""

from __future__ import annotations

from collections import deque

from proxy.record import Record
from proxy.record.events import Bus, CallFinished, CallStarted, RecordsCommitted, RecordsLost


class Feed:
    """The calls from the gateway's bus; the commits from it and from the store's, where that is another one
    (a viewer's store: the commits of the gateway it watches, or of other writers, are announced there)."""

    def __init__(self, bus: Bus, store_bus: Bus | None = None) -> None:
        self._calls: deque[tuple[bool, Record]] = deque()
        self._written = False
        self._unsubscribe = [
            bus.subscribe(CallStarted, lambda e: self._calls.append((True, e.record))),
            bus.subscribe(CallFinished, lambda e: self._calls.append((False, e.record))),
            bus.subscribe(RecordsCommitted, self._commit),
            bus.subscribe(RecordsLost, self._commit),
        ]
        if store_bus is not None and store_bus is not bus:
            self.follow_commits(store_bus)

    def follow_commits(self, bus: Bus) -> None:
        """Also take the commits announced on another bus (a viewer's store, beside the watched gateway's)."""
        self._unsubscribe += [
            bus.subscribe(RecordsCommitted, self._commit),
            bus.subscribe(RecordsLost, self._commit),
        ]

    def _commit(self, _: RecordsCommitted | RecordsLost) -> None:
        self._written = True

    def calls(self) -> list[tuple[bool, Record]]:
        """(started?, record) for every call event since the last look, oldest first."""
        out: list[tuple[bool, Record]] = []
        while self._calls:
            out.append(self._calls.popleft())
        return out

    def written(self) -> bool:
        """Whether the store committed (or lost) records since the last look."""
        was, self._written = self._written, False
        return was

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
