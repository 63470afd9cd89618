"""Garbage collection timed for the gateway: full collections when no call is in flight.

The screen makes a lot of short-lived cyclic garbage (Textual's render caches), so Python's automatic full
collections came every few seconds and held the GIL for 60-170 ms, stalling the gateway's thread beside it in
the middle of streams. The console instead freezes what exists once it is up (it lives as long as the app and
need not be scanned again), leaves young collections automatic, and runs the full one itself while the gateway
is idle, or at the latest every `MAX_WAIT_S` so memory stays bounded under continuous traffic.
"""

from __future__ import annotations

import gc
import time

IDLE_EVERY_S = 10.0  # at most this often while idle
MAX_WAIT_S = 60.0  # even when calls never stop
NO_AUTOMATIC_FULL = 1_000_000_000  # gen-2 threshold that Python never reaches


class IdleCollector:
    def __init__(self) -> None:
        self._saved: tuple[int, int, int] | None = None
        self._last = time.monotonic()
        self.collections = 0

    def start(self) -> None:
        if self._saved is not None:
            return
        gc.collect()
        gc.freeze()
        self._saved = gc.get_threshold()
        gc.set_threshold(self._saved[0], self._saved[1], NO_AUTOMATIC_FULL)
        self._last = time.monotonic()

    def tick(self, busy: bool) -> bool:
        """Collect if it is time; `busy` says calls are in flight. Returns whether it collected."""
        if self._saved is None:
            return False
        waited = time.monotonic() - self._last
        if waited < (MAX_WAIT_S if busy else IDLE_EVERY_S):
            return False
        gc.collect()
        self._last = time.monotonic()
        self.collections += 1
        return True

    def stop(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            gc.unfreeze()
            self._saved = None
