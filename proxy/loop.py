"""The event loop the gateway runs on: uvloop where it is installed, else asyncio's own.

A streamed answer of hundreds of chunks costs the gateway a socket read, a task wake-up and a write per chunk;
uvloop does that machinery in C. `GATEWATCH_LOOP=asyncio` picks the stock loop (to compare, or to rule it out).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
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
