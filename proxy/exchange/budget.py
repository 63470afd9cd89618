"""Budgets that hold: `[budget] daily_usd` and `session_usd`, reserved before a call is served.

A call is admitted only if spend + the reservations of calls in flight + this call's estimate stays within
every cap that applies (`estimate`: its input tokens from the body's size, plus `max_tokens` of output, at the
prices of the targets that may serve it). The admission is a row in the store's `reservations` table, written
in a transaction every replica serialises on (SQLite's write lock, a PostgreSQL advisory lock); the writer
deletes it in the transaction that commits the call's record, whose cost replaces the estimate. So N replicas
on one database hold one cap, and a gateway killed with calls in flight leaves their estimates counted.

A refusal is Anthropic's spend-cap answer, which Claude Code does not retry: 429 `billing_error`,
`x-should-retry: false`, `retry-after` until the cap resets, and a message naming the cap, the spend and the
reset. A model nobody knows the price of is refused under a budget unless its target sets prices.

The store is asked from a thread of the budget's own, and waited for at most `[budget] store_wait` seconds: a
store that does not answer in time (or fails) degrades the budget, which then counts from the last standing it
read plus the calls it admitted since (`/health` says so), and asks the store again after `RETRY_S`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from proxy import registry
from proxy.config import BudgetSettings
from proxy.errors import GatewayError
from proxy.log import log
from proxy.providers import Provider
from proxy.record import pricing
from proxy.record.events import BudgetCrossed, Bus, CallFinished
from proxy.store import ledger
from proxy.store.ledger import day_of

QUEUED_MAX = 10_000
"""reservations of calls admitted while the store did not answer, kept to be written when it does"""
T = TypeVar("T")
RETRY_S = 5.0
"""after the store failed or did not answer in time, how long the budget counts on its own before asking again"""
BYTES_PER_TOKEN = 3
"""a request's input tokens are estimated as its body's bytes over this: English text runs ~4 bytes a token,
code and JSON nearer 3, so the estimate errs high (an image's base64 far higher: it only reserves more)"""
KEYS_KEPT = 4096
"""standings and warnings held per session; the least recently used is dropped past it"""
REPORT_EVERY_S = 2.0
"""how often the reservations report of `/health` is read again (in the budget's thread, after an admission)"""

Standing = tuple[float, float, float, float]
"""(today's spend, today's reservations, the session's spend, the session's reservations), USD"""


class BudgetStore(Protocol):
    """What the budget asks of the store (SQLite and PostgreSQL give it)."""

    def budget_connection(self) -> Any: ...

    def budget_transaction(self, conn: Any) -> Any: ...

    def budget_exclusive(self, conn: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a call may cost at most, as far as the gateway can tell before sending it."""

    usd: float | None
    """None: a target that may serve it has no price"""
    input_tokens: int
    output_tokens: int
    unpriced: str = ""
    """the target and model without a price"""


def estimate(raw_size: int, max_tokens: int, providers: Sequence[Provider], asked: str = "") -> Estimate:
    """The dearest of the targets that may serve the call (fallback included), for `raw_size` body bytes and
    `max_tokens` of output (Gemini counts thinking within maxOutputTokens). `asked`: the model the client named
    (what a passthrough target at "*" serves). Pure: no I/O."""
    inp, out = max(1, math.ceil(raw_size / BYTES_PER_TOKEN)), max(0, max_tokens)
    worst = 0.0
    for p in providers:
        model = asked if p.model == "*" else p.model
        own = pricing.override(p.target)
        if own is not None:
            usd: float | None = own.cost(inp, out, 0, 0)
        else:
            lib = pricing.library_cost(model, inp, out, 0, 0, provider=registry.pricing_id(p.kind))
            usd = None if lib is None else lib * p.target.price_multiplier
        if usd is None:
            return Estimate(None, inp, out, f"target {p.name!r} (model {model!r})")
        worst = max(worst, usd)
    return Estimate(worst, inp, out)


def seconds_to_midnight(now: float | None = None) -> int:
    """Until the local day ends: when a daily cap resets."""
    t = datetime.fromtimestamp(time.time() if now is None else now).astimezone()
    nxt = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((nxt - t).total_seconds()))


def refusal(message: str, retry_after: int) -> GatewayError:
    """Anthropic's answer to a spend cap: Claude Code stops at once (one call per refused prompt, measured)."""
    return GatewayError(
        429,
        message,
        "billing_error",
        headers={"x-should-retry": "false", "retry-after": str(retry_after)},
        retryable=False,
    )


class _Worker:
    """The budget's thread: one job at a time, in order. A daemon, unlike an executor's: a store frozen at
    shutdown must not hold the process open (what it was admitting is in the store or in the writer's journal)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[..., Any], tuple[Any, ...], concurrent.futures.Future[Any]] | None
        ]
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._run, name="gatewatch-budget", daemon=True).start()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, args, fut))
        return fut

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 (handed to whoever waits on the future)
                fut.set_exception(exc)


@dataclass
class _Op:
    op: str
    """a function of `store.ledger` run in the budget's thread"""
    args: tuple[Any, ...]
    done: asyncio.Future[Any] | None
    waiting: bool = True
    """False: its caller stopped waiting (past `store_wait`) and admitted the call on its own; a reservation is
    then written whatever the caps say, so other replicas and a restart still count the call"""

    def abandon(self) -> None:
        self.waiting = False
        if self.op == "reserve":
            self.args = (*self.args[:-2], None, None)


@dataclass
class _Local:
    day: str
    session_id: str | None
    amount: float


@dataclass
class Budget:
    settings: BudgetSettings
    store: BudgetStore
    bus: Bus
    wait_s: float | None = None
    """how long a call waits for the store's answer (None: `settings.store_wait`)"""
    holder: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    """this gateway's name on its reservations"""
    started_at: float = field(default_factory=time.time)
    unreadable: str | None = None
    """why the store's answer is not being used, while that lasts (for `/health`); None: it is"""
    _failed_at: float = -math.inf
    _running: concurrent.futures.Future[list[Any]] | None = None
    """the budget thread's transaction under way (None: idle)"""
    _running_since: float = 0.0
    _queued: list[_Op] = field(default_factory=list)
    """asks that arrived while it runs: the next transaction's"""
    _conn: Any = None
    """the budget thread's own connection"""
    _day: str = ""
    _daily: tuple[float, float] = (0.0, 0.0)
    """today's (spend, reservations) as last read"""
    _sessions: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)
    _local: dict[str, _Local] = field(default_factory=dict)
    """calls admitted without the store (it did not answer): counted here until they finish"""
    _local_spent: dict[str, float] = field(default_factory=dict)
    """what those calls cost, by day and by session, until the store answers again"""
    _warned: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _reserved: tuple[int, float, int, float] | None = None
    _reserved_at: float = -math.inf
    _metric: tuple[str, float, float] = ("", 0.0, 0.0)
    """(day, spend read, costs of this gateway's calls finished since): `/metrics`' figure, no store read"""

    def __post_init__(self) -> None:
        self._pool = _Worker()
        self._unsubscribe = self.bus.subscribe(CallFinished, self._finished)

    @property
    def wait(self) -> float:
        return self.settings.store_wait if self.wait_s is None else self.wait_s

    def close(self) -> None:
        self._unsubscribe()
        self._pool.submit(self._disconnect)
        self._pool.stop()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                getattr(conn, "conn", conn).close()
            except Exception:  # noqa: BLE001 (closing a broken connection may fail every way)
                pass

    # -- the store, in the budget's thread ------------------------------------------------------------------
    def _in_thread(self, batch: list[_Op]) -> list[Any]:
        """The admissions queued meanwhile, in one transaction: one lock, one commit for them all."""
        try:
            if self._conn is None:
                self._conn = self.store.budget_connection()
            with self.store.budget_transaction(self._conn) as conn:
                out: list[Any] = []
                exclusive = False
                for it in batch:
                    if not it.waiting and it.op == "reserve" and not exclusive:
                        # its call may have finished meanwhile: its record must not commit beside this insert
                        self.store.budget_exclusive(conn)
                        exclusive = True
                    run = it.waiting or it.op == "reserve"
                    out.append(getattr(ledger, it.op)(conn, *it.args) if run else None)
                if time.monotonic() - self._reserved_at > REPORT_EVERY_S:
                    self._reserved = ledger.reserved(conn, day_of(time.time()), self.holder, self.started_at)
                    self._reserved_at = time.monotonic()
                return out
        except BaseException:
            self._disconnect()  # a broken connection is opened again next time
            raise

    def _launch(self) -> None:
        batch, self._queued = self._queued, []
        loop = asyncio.get_running_loop()
        self._running_since = time.monotonic()
        fut = self._pool.submit(self._in_thread, batch)
        self._running = fut

        def landed(f: concurrent.futures.Future[list[Any]]) -> None:
            try:
                loop.call_soon_threadsafe(self._landed, batch, f)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        fut.add_done_callback(landed)

    def _landed(self, batch: list[_Op], f: concurrent.futures.Future[list[Any]]) -> None:
        self._running = None
        exc = f.exception()
        for i, it in enumerate(batch):
            if not it.waiting or it.done is None or it.done.done():
                continue
            if exc is not None:
                it.done.set_exception(exc)
            else:
                it.done.set_result(f.result()[i])
        if self._queued:
            self._launch()

    async def _ask(self, op: str, *args: Any) -> Any | None:
        """The store's answer within `wait`, or None (the budget degrades: `unreadable` says why). Asks that
        arrive while the thread is busy go together in its next transaction."""
        now = time.monotonic()
        stalled = self._running is not None and now - self._running_since > self.wait
        if stalled or (self.unreadable is not None and now - self._failed_at < RETRY_S):
            if op == "reserve" and len(self._queued) < QUEUED_MAX:  # written when the store answers again
                later = _Op(op, args, None)
                later.abandon()
                self._queued.append(later)  # sent with the next transaction: after the stall, or the next try
            return None
        item = _Op(op, args, asyncio.get_running_loop().create_future())
        self._queued.append(item)
        if self._running is None:
            self._launch()
        assert item.done is not None
        try:
            out = await asyncio.wait_for(asyncio.shield(item.done), self.wait)
        except TimeoutError:
            item.abandon()
            self._degrade(f"the store did not answer within [budget] store_wait = {self.wait:g} s")
            return None
        except Exception as exc:  # noqa: BLE001 (sqlite3, psycopg, StoreError: each means "not now")
            self._degrade(f"{type(exc).__name__}: {str(exc).strip()[:300]}")
            return None
        if self.unreadable is not None:
            log.info("budget: the store answers again")
            self.unreadable = None
            self._local_spent.clear()  # what those calls cost is the store's to say now
        return out

    def _degrade(self, why: str) -> None:
        if self.unreadable is None:
            log.warning("budget: %s; counting from the last known spend and reservations", why)
        self.unreadable, self._failed_at = why, time.monotonic()

    async def refresh(self) -> None:
        """Read the reservations report now (at start: what a gateway that stopped abruptly left)."""
        self._reserved_at = -math.inf
        st = await self._ask("standing", day_of(time.time()), None)
        if st is not None:
            self._remember(day_of(time.time()), None, st)

    # -- figures -------------------------------------------------------------------------------------------
    def _remember(self, day: str, session_id: str | None, st: Standing) -> None:
        self._day, self._daily = day, (st[0], st[1])
        if self._metric[0] != day or getattr(self.store, "shared", False):
            # alone on its store, this gateway's own calls keep the figure exact from the first read; on a
            # shared one each read brings the other replicas' spend (a call finishing meanwhile may lag a read)
            self._metric = (day, st[0], 0.0)
        if session_id:
            self._sessions[session_id] = (st[2], st[3])
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > KEYS_KEPT:
                self._sessions.popitem(last=False)

    def _local_sum(self, day: str, session_id: str | None) -> tuple[float, float]:
        d = sum(x.amount for x in self._local.values() if x.day == day)
        s = sum(x.amount for x in self._local.values() if session_id and x.session_id == session_id)
        return d, s

    def _finished(self, event: CallFinished) -> None:
        day, base, added = self._metric
        if event.record.usage.cost and day_of(event.record.started_at) == day:
            self._metric = (day, base, added + event.record.usage.cost)
        held = self._local.pop(event.record.id, None)
        if held is None:
            return
        cost = event.record.usage.cost or 0.0
        self._local_spent[held.day] = self._local_spent.get(held.day, 0.0) + cost
        if held.session_id:
            key = "s:" + held.session_id
            self._local_spent[key] = self._local_spent.get(key, 0.0) + cost

    def report(self) -> dict[str, object]:
        """For `/health`: whose figures the budget uses, and the reservations of calls in flight."""
        out: dict[str, object] = {
            "spend": "store"
            if self.unreadable is None
            else "counted from the last known spend and reservations: the store is not answering",
            "daily_usd": self.settings.daily_usd,
            "session_usd": self.settings.session_usd,
        }
        if self.unreadable is not None:
            out["error"] = self.unreadable
        if self._reserved is not None:
            n, usd, orphans, orphan_usd = self._reserved
            out["reserved"] = {"calls": n, "usd": round(usd, 6), "estimated": True}
            if orphans:
                out["left_in_flight"] = {
                    "calls": orphans,
                    "usd": round(orphan_usd, 6),
                    "estimated": True,
                    "why": "calls admitted before this gateway started that have no record: in flight on "
                    "another replica, or cut off by a gateway that stopped abruptly (counted at their "
                    "estimate until their records arrive)",
                }
        if self._local:
            out["admitted_without_store"] = len(self._local)
        return out

    def known_spend(self) -> dict[str, float]:
        """Today's spend without asking the store (for `/metrics`): the last read and the calls since."""
        day, base, added = self._metric
        if not day:
            return {}
        return {"daily": base + added if day == day_of(time.time()) else 0.0}

    # -- the brake -----------------------------------------------------------------------------------------
    async def admit(self, call_id: str, session_id: str | None, started_at: float, est: Estimate) -> None:
        """Before a call goes upstream: reserve its estimate, or raise the refusal. Waits at most `wait`."""
        s = self.settings
        daily_cap = s.daily_usd
        session_cap = s.session_usd if session_id else None
        if daily_cap is None and session_cap is None:
            return
        if est.usd is None:
            raise refusal(
                f"gatewatch budget: {est.unpriced} has no known price, so [budget] can't hold its spend; "
                "give that target its own prices (input_cost and output_cost, USD per 1M tokens) in the "
                "gateway's config to serve it under a budget",
                3600,
            )
        day = day_of(started_at)
        local_day, local_session = self._local_sum(day, session_id)
        st: Standing | None = None
        # degraded, `_ask` answers None at once (and queues the reservation for when the store answers)
        got = await self._ask(
            "reserve",
            call_id,
            day,
            session_id,
            est.usd,
            started_at,
            self.holder,
            None if daily_cap is None else daily_cap - local_day,
            None if session_cap is None else session_cap - local_session,
        )
        if got is not None:
            admitted, st = got
            assert st is not None
            self._remember(day, session_id, st)
            st = (st[0], st[1] + local_day, st[2], st[3] + local_session)
            self._check(day, session_id, st, est.usd, refuse=not admitted)
            return
        # the store did not answer: the last standing read, plus what was admitted here since (summed after
        # the wait: the calls that waited beside this one were admitted meanwhile)
        local_day, local_session = self._local_sum(day, session_id)
        d_spent, d_res = self._daily if self._day == day else (0.0, 0.0)
        s_spent, s_res = self._sessions.get(session_id or "", (0.0, 0.0))
        st = (
            d_spent + self._local_spent.get(day, 0.0),
            d_res + local_day,
            s_spent + self._local_spent.get("s:" + (session_id or ""), 0.0),
            s_res + local_session,
        )
        over = (daily_cap is not None and st[0] + st[1] + est.usd > daily_cap) or (
            session_cap is not None and st[2] + st[3] + est.usd > session_cap
        )
        self._check(day, session_id, st, est.usd, refuse=over)
        self._local[call_id] = _Local(day, session_id, est.usd)

    def _check(self, day: str, session_id: str | None, st: Standing, usd: float, refuse: bool) -> None:
        s = self.settings
        scopes: list[tuple[str, str, float, float, float, str]] = []
        if s.daily_usd is not None:
            scopes.append(("daily", day, st[0], st[1], s.daily_usd, "daily_usd"))
        if s.session_usd is not None and session_id:
            scopes.append(("session", session_id, st[2], st[3], s.session_usd, "session_usd"))
        if refuse and scopes:  # the cap passed by most (the store's sums and these differ only by rounding)
            scope, key, spent, held, cap, config_key = max(scopes, key=lambda x: x[2] + x[3] + usd - x[4])
            self.bus.emit(BudgetCrossed(scope, key, spent + held, cap, "refused"))
            raise refusal(_message(scope, key, spent, held, usd, cap, config_key), _retry_after(scope))
        for scope, key, spent, held, cap, _ in scopes:
            name = f"{scope}:{key}"
            if spent + held >= cap * s.warn_at and name not in self._warned:
                self._warned[name] = None
                while len(self._warned) > KEYS_KEPT:
                    self._warned.popitem(last=False)
                self.bus.emit(BudgetCrossed(scope, key, spent + held, cap, "warning"))


def _retry_after(scope: str) -> int:
    return seconds_to_midnight() if scope == "daily" else 24 * 3600


def _message(scope: str, key: str, spent: float, held: float, usd: float, cap: float, config_key: str) -> str:
    what = "today's spend" if scope == "daily" else f"session {key[:8]}'s spend"
    if scope == "daily":
        reset = f"it resets at local midnight (in {timedelta(seconds=seconds_to_midnight())})"
    else:
        reset = "a session's cap does not reset: start a new session"
    inflight = f" + ${held:.2f} reserved by calls in flight" if held >= 0.005 else ""
    return (
        f"gatewatch budget: {what} ${spent:.2f}{inflight} + this call's estimate ${usd:.2f} would pass "
        f"budget.{config_key} = ${cap:.2f}; {reset}, or raise [budget] {config_key} in the gateway's "
        "config (applied without a restart)"
    )
