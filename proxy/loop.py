"""The event loop the gateway runs on: uvloop where it is installed, else asyncio's own.

A streamed answer of hundreds of chunks costs the gateway a socket read, a task wake-up and a write per chunk;
uvloop does that machinery in C. `GATEWATCH_LOOP=asyncio` picks the stock loop (to compare, or to rule it out).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop: uvloop's unless it is missing or `GATEWATCH_LOOP=asyncio`."""
    if os.environ.get("GATEWATCH_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def new_loop() -> asyncio.AbstractEventLoop:
    return factory()()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the chosen loop."""
    with asyncio.Runner(loop_factory=factory()) as runner:
        return runner.run(coro)


def name(loop: asyncio.AbstractEventLoop) -> str:
    """'uvloop' or 'asyncio', for the startup line."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


class LoopThread:
    """A loop of its own on a daemon thread: the gateway hosted beside the console, or the viewer's feed.

    `run()` hands a coroutine to the loop from any other thread; `stop()` runs a last coroutine there, cancels
    whatever else still runs, and ends the thread.
    """

    def __init__(self, name: str, switch_interval: float | None = None) -> None:
        self.loop = new_loop()
        self._switch_interval = switch_interval
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._tasks: set[concurrent.futures.Future[Any]] = set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the loop; the caller may wait on the future (never from that loop)."""
        if not self._thread.is_alive():
            self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self._tasks.add(fut)
        fut.add_done_callback(self._tasks.discard)
        return fut

    def stop(self, last: Callable[[], Awaitable[None]], timeout: float, join: float) -> None:
        """Await `last()` on the loop (up to `timeout`, its errors raised here), then cancel every other task,
        stop the loop and wait `join` seconds for the thread."""
        if not self._thread.is_alive():
            return

        async def end() -> None:
            try:
                await last()
            finally:
                others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in others:
                    t.cancel()
                await asyncio.gather(*others, return_exceptions=True)

        try:
            self.run(end()).result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(join)
