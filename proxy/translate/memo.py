"""A memo bounded in bytes, not entries: keyed by a tool's JSON, whose size is what costs memory (512 entries
of a 5 MB tool would hold 2.5 GB; an entry count bounds nothing)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_BYTES = 16 * 1024 * 1024
"""What all kept entries may weigh (their keys' size, counted twice: the key and the value built from it)."""
MAX_ENTRY = 1024 * 1024
"""An entry heavier than this is computed every time, never kept."""


class BytesMemo(Generic[V]):
    """Least-recently-used results of `fn(key, mode)`, their total weight under `max_bytes`."""

    def __init__(
        self, fn: Callable[[bytes, str], V], max_bytes: int = MAX_BYTES, max_entry: int = MAX_ENTRY
    ) -> None:
        self.fn = fn
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self.weight = 0
        self._entries: OrderedDict[tuple[bytes, str], V] = OrderedDict()
        self._lock = threading.Lock()  # the console's thread and the gateway's may translate at once

    def __call__(self, key: bytes, mode: str) -> V:
        k = (key, mode)
        with self._lock:
            hit = self._entries.get(k)
            if hit is not None:
                self._entries.move_to_end(k)
                return hit
        value = self.fn(key, mode)
        w = 2 * len(key)
        if w > self.max_entry:
            return value
        with self._lock:
            if k not in self._entries:
                self._entries[k] = value
                self.weight += w
            while self.weight > self.max_bytes and self._entries:
                (old, _), _ = self._entries.popitem(last=False)
                self.weight -= 2 * len(old)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.weight = 0
