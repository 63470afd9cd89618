"""The garbage-collector policy of every process that hosts the gateway (`serve`, the console, replicas).

Python's automatic full collection scans every tracked object; in a gateway process that is tens of thousands
(aiohttp, pydantic, the config, Textual's widgets in the console) and it held the GIL 60-200 ms, in the middle
of streams (issue 26: a 195 ms gap between two SSE events whose upstream sent one every 20 ms). The policy:

- what start-up allocated is frozen (`gc.freeze`): it lives as long as the process and is never scanned again;
- the young generations stay automatic, the youngest collected every `YOUNG0` net allocations rather than
  Python's 700: a call's record and its payloads stay alive until the writer commits them (up to a quarter
  second under load), and at 700 every young pass scanned those again, some 3.5 % of a busy gateway's CPU;
  at 10,000 it is under half that, and the longest young pass no longer (about 5-8 ms, `bench/RESULTS.md`);
- automatic full collections are off; the gateway's loop runs one itself when no call is in flight (at most
  every `idle_every_s`), or at the latest every `MAX_WAIT_S` under traffic that never pauses, so memory stays
  bounded;
- the interpreter hands the GIL over every `SWITCH_INTERVAL_S` (1 ms) rather than 5 ms: the gateway's thread shares
  it with the store's writer (and the console's repaint), and each wake-up of a call (several per SSE event)
  could otherwise wait 5 ms behind their Python work.

Process-wide state: several hosts in one process (tests) share it, counted; the last to stop restores Python's.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

IDLE_EVERY_S = 10.0
"""at most this often while idle (`GATEWATCH_GC_IDLE_EVERY_S` overrides it, for tests and tuning)"""
MAX_WAIT_S = 60.0
"""a full collection at least this often, calls in flight or not: the memory bound under endless traffic"""
CHECK_S = 0.25
"""how often the loop looks whether it is time"""
YOUNG0 = 10_000
"""net allocations between two collections of the youngest generation"""
NO_AUTOMATIC_FULL = 1_000_000_000
"""a gen-2 threshold Python never reaches"""
SWITCH_INTERVAL_S = float(os.environ.get("GATEWATCH_SWITCH_INTERVAL_S") or 0.001)
"""(`GATEWATCH_SWITCH_INTERVAL_S` overrides it, for tuning: 0.2 ms was tried for the hosted console's TTFE and
did not bring it nearer serve's in three runs of `console_bench.py`, bench/RESULTS.md)"""


class _Process:
    """The process's one policy: applied by the first host, restored by the last."""

    def __init__(self) -> None:
        self.hosts = 0
        self.saved: tuple[tuple[int, int, int], float] | None = None
        self.full = 0
        """full collections run by the policy"""
        self.last_ms = 0.0
        self.max_ms = 0.0
        self.collected = 0
        """objects the policy's full collections freed"""
        self.last = time.monotonic()
        self.settling = False
        """`settle` asked for a collection and a freeze at the next idle moment"""
        self.frozen = 0
        """objects frozen, as counted at the last freeze: counting them walks every one (~3 ms for 95,000),
        which `/health` paid each time (an attached console asks every second)"""

    def apply(self) -> None:
        self.hosts += 1
        if self.hosts > 1:
            return
        self.saved = (gc.get_threshold(), sys.getswitchinterval())
        gc.collect()
        self.freeze()
        _, young1, _ = gc.get_threshold()
        gc.set_threshold(YOUNG0, young1, NO_AUTOMATIC_FULL)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.last = time.monotonic()

    def release(self) -> None:
        self.hosts = max(0, self.hosts - 1)
        if self.hosts or self.saved is None:
            return
        threshold, switch = self.saved
        self.saved = None
        self.settling = False
        gc.set_threshold(*threshold)
        sys.setswitchinterval(switch)
        gc.unfreeze()
        self.frozen = 0

    def freeze(self) -> None:
        gc.freeze()
        self.frozen = gc.get_freeze_count()

    def collect(self) -> None:
        t0 = time.perf_counter()
        self.collected += gc.collect()
        self.last_ms = (time.perf_counter() - t0) * 1000
        self.max_ms = max(self.max_ms, self.last_ms)
        self.full += 1
        self.last = time.monotonic()


PROCESS = _Process()


def settle() -> None:
    """Freeze what exists as well, at the gateway's next moment with no call in flight (the console, once its
    first screen is drawn: its widgets live as long as it does). Only while the policy is applied."""
    if PROCESS.saved is not None:
        PROCESS.settling = True


class Policy:
    """One host's part: `start` applies the policy and runs its timer on the host's loop, `busy` telling
    whether calls are in flight; `stop` ends the timer (and restores Python's policy after the last host)."""

    def __init__(self, busy: Callable[[], bool], idle_every_s: float | None = None) -> None:
        self.busy = busy
        env = os.environ.get("GATEWATCH_GC_IDLE_EVERY_S")
        self.idle_every_s = idle_every_s if idle_every_s is not None else float(env) if env else IDLE_EVERY_S
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is not None:
            return
        PROCESS.apply()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gatewatch-collector")

    def due(self, now: float) -> bool:
        waited = now - PROCESS.last
        return waited >= MAX_WAIT_S or (waited >= self.idle_every_s and not self.busy())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(min(CHECK_S, self.idle_every_s))
            if PROCESS.settling and not self.busy():
                PROCESS.collect()
                PROCESS.freeze()
                PROCESS.settling = False
            elif self.due(time.monotonic()):
                PROCESS.collect()

    async def stop(self) -> None:
        if self._task is None:
            return
        task, self._task = self._task, None
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        PROCESS.release()

    def report(self) -> dict[str, Any]:
        """For `/health`: whether it is applied, and what its full collections cost."""
        return {
            "applied": PROCESS.saved is not None,
            "frozen": PROCESS.frozen,
            "thresholds": list(gc.get_threshold()),
            "full_collections": PROCESS.full,
            "last_full_ms": round(PROCESS.last_ms, 2),
            "max_full_ms": round(PROCESS.max_ms, 2),
            "collected": PROCESS.collected,
        }
