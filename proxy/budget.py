"""Budgets with a brake: `[budget] daily_usd` and `session_usd`. A call is refused once the spend it would add
to has reached its cap (400 `invalid_request_error`, which Claude Code shows and does not retry as a
transient failure, naming the cap, the spend and the key that raises it); at `warn_at` of a cap a
`BudgetCrossed` event tells the console. The refusal is a call like any other: it is recorded.

Spend comes from the store's roll-ups (so it survives restarts) plus the calls finished since they were read
(`CallFinished` on the bus), which the writer may not have committed yet. When the store can't be read (a
PostgreSQL server gone), calls are not failed for it: the budget keeps counting from what it last read (or from
now, for a tally never read), says so in `/health`, and reads again every `RETRY_S` until the store answers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .config import BudgetSettings
from .errors import GatewayError
from .events import BudgetCrossed, Bus, CallFinished
from .log import log
from .store.base import StoreError
from .store.ledger import day_of

SESSIONS_KEPT = 4096
"""session tallies held in memory; the least recently checked is dropped past it (and re-read from the store
if its session comes back), so a long-lived gateway's memory does not grow with every session it ever saw"""


RETRY_S = 10.0
"""how often an unreadable store is asked again: each try may cost a connect timeout on the calling loop"""


class SpendSource(Protocol):
    """What the budget reads from the store (its roll-ups)."""

    def spend_today(self) -> float: ...

    def session_spend(self, session_id: str) -> float: ...


@dataclass
class _Tally:
    base: float
    """what the store said when last asked"""
    since: float
    """epoch seconds of that read: calls started from then on are added as they finish"""
    read_at: float = 0.0
    """monotonic time of that read (a shared store's tally is read again after `Budget.refresh_s`)"""
    added: float = 0.0
    warned: bool = False
    exact: bool = True
    """False: the store could not be read, `base` is the last known figure (0 if never read)"""

    @property
    def spend(self) -> float:
        return self.base + self.added


@dataclass
class Budget:
    settings: BudgetSettings
    source: SpendSource
    bus: Bus
    _day: str = ""
    _daily: _Tally | None = None
    _sessions: OrderedDict[str, _Tally] = field(default_factory=OrderedDict)
    refresh_s: float | None = None
    """a store other gateways write too: read the spend again when a tally is older than this (their calls
    are only known that way); None: this gateway is the only writer, its own calls keep the tally exact"""

    unreadable: str | None = None
    """the store's last read error while it lasts (for `/health`); None when the last read worked"""
    _failed_at: float = -RETRY_S

    def __post_init__(self) -> None:
        self._unsubscribe = self.bus.subscribe(CallFinished, self._finished)

    def _read(self, what: Callable[[], float], last: _Tally | None) -> tuple[float, bool] | None:
        """The store's figure and True; when it can't be read, the last known base (0 for none) and False; None
        when it failed less than `RETRY_S` ago and `last` may stand meanwhile."""
        if self.unreadable is not None and time.monotonic() - self._failed_at < RETRY_S and last is not None:
            return None
        try:
            value = what()
        except StoreError as exc:
            if self.unreadable is None:
                log.warning("budget: the store can't be read (%s); counting from the last known spend", exc)
            self.unreadable, self._failed_at = str(exc), time.monotonic()
            return (last.base if last is not None else 0.0), False
        if self.unreadable is not None:
            log.info("budget: the store answers again")
        self.unreadable = None
        return value, True

    def report(self) -> dict[str, object]:
        """For `/health`: whether the spend counted is the store's."""
        if self.unreadable is None:
            return {"spend": "store"}
        return {
            "spend": "counted from the last known figure: the store can't be read",
            "error": self.unreadable,
        }

    def close(self) -> None:
        self._unsubscribe()

    # -- spend ---------------------------------------------------------------------------------------------
    def _today(self, started_at: float | None = None) -> _Tally:
        now = time.time()
        today = day_of(now)
        same_day = self._daily is not None and today == self._day
        if self._daily is not None and same_day and not self._stale(self._daily):
            return self._daily
        last = self._daily if same_day else None
        read = self._read(self.source.spend_today, last)
        if read is None:
            assert last is not None
            return last
        base, exact = read
        if not exact and last is not None:
            last.read_at = time.monotonic()  # keep counting on: its `added` holds the calls since
            last.exact = False
            return last
        self._day = today
        self._daily = t = _Tally(
            base,
            min(now, started_at or now),
            time.monotonic(),
            warned=last.warned if last is not None else False,
            exact=exact,
        )
        return t

    def _stale(self, t: _Tally | None) -> bool:
        if t is None:
            return True
        if not t.exact:
            return time.monotonic() - t.read_at > RETRY_S
        return self.refresh_s is not None and time.monotonic() - t.read_at > self.refresh_s

    def _session(self, session_id: str, started_at: float | None = None) -> _Tally:
        """The store holds every call of the session started before this one (a first sight after a
        restart); this one and later ones are added as they finish."""
        t = self._sessions.get(session_id)
        if t is None or self._stale(t):
            read = self._read(lambda: self.source.session_spend(session_id), t)
            if read is not None and (read[1] or t is None):
                now = time.time()
                t = _Tally(
                    read[0],
                    min(now, started_at or now),
                    time.monotonic(),
                    warned=t.warned if t is not None else False,
                    exact=read[1],
                )
                self._sessions[session_id] = t
            else:
                assert t is not None
                t.read_at, t.exact = time.monotonic(), False
                self._sessions.move_to_end(session_id)
            while len(self._sessions) > SESSIONS_KEPT:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(session_id)
        return t

    def _finished(self, event: CallFinished) -> None:
        r = event.record
        cost = r.usage.cost or 0.0
        if not cost:
            return
        if (
            self._daily is not None
            and day_of(r.started_at) == self._day
            and r.started_at >= self._daily.since
        ):
            self._daily.added += cost
        t = self._sessions.get(r.session_id or "")
        if t is not None and r.started_at >= t.since:
            t.added += cost

    def daily_spend(self) -> float:
        return self._today().spend

    def session_spend(self, session_id: str) -> float:
        return self._session(session_id).spend

    def known_spend(self) -> dict[str, float]:
        """Today's spend as far as it is known without asking the store (for `/metrics`): empty before the
        first call read it, 0 once the day it was read is over."""
        if self._daily is None:
            return {}
        return {"daily": self._daily.spend if self._day == day_of(time.time()) else 0.0}

    # -- the brake -----------------------------------------------------------------------------------------
    def check(self, session_id: str | None, started_at: float | None = None) -> None:
        """Before a call (started at `started_at`) goes upstream: raise the refusal when a cap is reached;
        warn once at `warn_at`."""
        s = self.settings
        if s.daily_usd is not None:
            self._gate("daily", day_of(time.time()), self._today(started_at), s.daily_usd, "daily_usd")
        if s.session_usd is not None and session_id:
            tally = self._session(session_id, started_at)
            self._gate("session", session_id, tally, s.session_usd, "session_usd")

    def _gate(self, scope: str, key: str, tally: _Tally, cap: float, config_key: str) -> None:
        spend = tally.spend
        if spend >= cap:
            self.bus.emit(BudgetCrossed(scope, key, spend, cap, "refused"))
            what = "today's spend" if scope == "daily" else f"session {key[:8]}'s spend"
            raise GatewayError(
                400,
                f"gatewatch budget: {what} ${spend:.2f} has reached budget.{config_key} = ${cap:.2f}; "
                f"raise [budget] {config_key} in the gateway's config (or wait for "
                f"{'tomorrow' if scope == 'daily' else 'a new session'}) to continue",
                "invalid_request_error",
                headers={"x-should-retry": "false"},
                retryable=False,
            )
        if spend >= cap * self.settings.warn_at and not tally.warned:
            tally.warned = True
            self.bus.emit(BudgetCrossed(scope, key, spend, cap, "warning"))
