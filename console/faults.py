"""Errors of the console's own (a timer, a worker, a handler) contained: they are said, and the app, with the
gateway it hosts, goes on."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from textual.message_pump import MessagePump
from textual.timer import Timer, TimerCallback

Contain = Callable[[BaseException, str], None]
"""notes an error of the screen's own and where it happened (`GatewatchApp.contain`)"""


def contained(callback: TimerCallback | None, contain: Contain) -> TimerCallback | None:
    """`callback` that reports what it raises instead of raising it: a timer that fires before the panes are
    mounted or while the screen is torn down must not end the app, and the gateway inside it."""
    if callback is None:
        return None

    @functools.wraps(callback)
    async def run() -> None:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            contain(exc, getattr(callback, "__name__", "timer"))

    return run


class ContainedTimers(MessagePump):
    """Timers whose callbacks' errors go to `contain` instead of ending the app: the app and its main screen
    both start timers before (and while) their widgets exist."""

    contain: Contain
    """where the errors go: the app's method, or the app's given to a screen"""

    def set_interval(
        self,
        interval: float,
        callback: TimerCallback | None = None,
        *,
        name: str | None = None,
        repeat: int = 0,
        pause: bool = False,
    ) -> Timer:
        return super().set_interval(
            interval, contained(callback, self.contain), name=name, repeat=repeat, pause=pause
        )

    def set_timer(
        self,
        delay: float,
        callback: TimerCallback | None = None,
        *,
        name: str | None = None,
        pause: bool = False,
    ) -> Timer:
        return super().set_timer(delay, contained(callback, self.contain), name=name, pause=pause)
