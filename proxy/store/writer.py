"""The writer every store shares (`JournaledStore`): a thread fed by a queue, batched commits, and a journal
(proxy/store/journal.py) that keeps each submitted record until it is committed. A backend gives it a
connection, a transaction, a batch insert and the lock that makes this process the journal's one writer
(`SqliteStore`, `PostgresStore`)."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from proxy.record import Record, safe_text
from proxy.record.events import Bus, RecordsCommitted, RecordsLost
from proxy.store import insight
from proxy.store.base import StoreError, WriterStats
from proxy.store.journal import TELEMETRY, Item, Journal, Queued, Telemetry
from proxy.store.payloads import PAYLOADS, scrub, serialize_parts

log = logging.getLogger("gatewatch.store")

BATCH_MAX = 500
BATCH_WAIT = 0.05  # seconds the writer waits to fill a batch once one record is there
BATCH_WAIT_BUSY = 0.25
"""... and after a batch of BUSY_RECORDS or more: a commit's own cost (its pages written to the WAL, the
full-text index's new segment, the roll-ups' upserts) is shared by five times the records under load, while
light traffic is still in the history within 50 ms"""
BUSY_RECORDS = 20
BATCH_BYTES = 8 * 1024 * 1024
"""a transaction takes records up to this many bytes of JSON (one at least): the most read back at once"""
RETRIES = 5
RETRY_IDLE_S = 5.0  # seconds between tries of records given up on, when nothing new arrives
COMPACT_BYTES = 8 * 1024 * 1024  # a journal never emptied (sustained load) is rewritten past this size
BACKLOG_BYTES = 32 * 1024 * 1024
"""Bytes of records waiting for the writer that are held in memory; past this, a waiting record is held only
by the journal on disk (its place in the file) and read back when its turn comes."""


def _clean(value: Any) -> Any:
    """A record's small fields made storable (text that was not UTF-8 escaped)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _without_payloads(rec: Record, exc: BaseException) -> Record:
    """The record when its whole could not be serialised: the payloads left out (with a note saying why),
    every other field kept, its text escaped where it was not UTF-8."""
    head = _clean(rec.model_dump(mode="python", exclude=set(PAYLOADS)))
    why = {"kind": "payloads-not-stored", "detail": f"payloads not stored: {safe_text(str(exc))[:200]}"}
    head["notes"] = [*head.get("notes", []), why]
    return Record.model_validate(head)


def _tight(b: bytes) -> bytes:
    """`b` in an allocation of its own size: orjson's output of a large document sits in a buffer many times
    its length (16 MiB of address space for 1 MiB of JSON), which a record waiting in memory would keep."""
    return bytes(memoryview(b)) if len(b) > 64 * 1024 else b


def _blobs(loaded: list[tuple[Record, bytes, dict[str, bytes]]]) -> dict[str, bytes]:
    return {h: part for _, _, parts in loaded for h, part in parts.items()}


class _Stop:
    """Put on the queue by `close`: the writer commits what came before it and ends."""


_STOP: Final = _Stop()


class JournaledStore:
    """The writer every store shares: a thread fed by a queue, batched commits, and a journal file that keeps
    each submitted record until it is committed.

    Durability: `submit` appends the record to the journal (one write() into the page cache, no fsync)
    before queueing it, so a process killed before the writer commits loses nothing: the next writer
    replays the journal, line by line. The journal is emptied whenever the writer has committed everything
    queued, and under sustained load (never empty) it is rewritten without its committed prefix once it
    passes COMPACT_BYTES (aside: `submit` never waits for it). Records the writer gives up on are counted as
    lost but stay in the journal (and are retried) until they are written.

    Memory: records waiting in the queue are held in memory up to `backlog_bytes`; past that (a slow database,
    an outage) a waiting record is held only by its place in the journal and read back when its turn comes,
    in transactions of at most BATCH_BYTES. While any record waits that way the journal is not rewritten.

    After each committed batch the writer emits `RecordsCommitted` on `bus`, and `RecordsLost` when it gives
    a batch up; both on the writer thread.
    """

    _errors: tuple[type[BaseException], ...] = (StoreError, OSError)
    """what a failed write raises that is worth retrying (the database's own errors added by each backend)"""

    def __init__(self, secrets: list[str] | None, bus: Bus | None) -> None:
        self.secrets = [s for s in (secrets or []) if len(s) >= 8]
        self.bus = bus if bus is not None else Bus()
        self.stats = WriterStats()
        self.replayed = 0
        self.journal = Journal(Path())
        """the backend names its file (`journal_path`) before `start`"""
        self._flock: int | None = None
        self._q: queue.Queue[Queued | _Stop] = queue.Queue()
        self.backlog_bytes = BACKLOG_BYTES
        """records waiting beyond this many bytes are held by the journal only (`Item.spill`)"""
        self.held_bytes = 0
        """bytes of waiting records held in memory (at most `backlog_bytes`, unless the journal fails)"""
        self._spilled = 0
        """waiting records held by the journal only: while any waits, the journal is not rewritten"""
        self._unwritten: list[Item] = []
        """records given up on (counted in stats.lost), still in the journal; the writer thread's own"""
        self._unwritten_events: list[Telemetry] = []
        """telemetry a failed write kept for the next try (still in the journal); the writer thread's own"""
        self._queued_bytes = 0
        """journal bytes of the records not committed yet (what a compaction would keep)"""
        self._local = threading.local()
        self.said: Callable[[BaseException], str] = lambda exc: f"{type(exc).__name__}: {exc}"
        """an error as the writer says it (in /health, the log, RecordsLost): PostgreSQL's leaves out the
        password"""
        self._thread: threading.Thread | None = None
        self._closed = False
        self.insight = insight.Insight()
        """the findings' state and the telemetry join, on the writer thread (proxy/store/insight.py)"""

    @property
    def journal_path(self) -> Path:
        return self.journal.path

    @journal_path.setter
    def journal_path(self, path: Path) -> None:
        self.journal.path = path

    # -- what a backend provides ---------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """The database, for messages (never a password)."""
        raise NotImplementedError

    def _acquire(self) -> int:
        """Become this journal's only writer: a lock held (as an open descriptor) until `close`."""
        raise NotImplementedError

    def _connect(self) -> Any:
        """A new connection for the writer."""
        raise NotImplementedError

    def _transaction(self, conn: Any) -> contextlib.AbstractContextManager[Any]:
        """A write transaction on `conn`, committed when the block ends, rolled back when it raises."""
        raise NotImplementedError

    def _insert(self, conn: Any, items: list[tuple[Record, bytes]], blobs: dict[str, bytes]) -> int:
        """Insert records (and roll them up) in the open transaction; a record already there is left alone.
        Returns how many were new."""
        raise NotImplementedError

    def _disconnect(self, conn: Any) -> None:
        try:
            conn.close()
        except Exception:  # a connection that broke mid-write: closing it can fail too
            pass

    def _explain(self, exc: BaseException) -> StoreError:
        return StoreError(f"{self.where}: cannot use the database: {exc}")

    # -- writing -------------------------------------------------------------------------------------------
    def start(self) -> JournaledStore:
        """Become the writer: take the lock, replay what a crashed writer left, start the thread."""
        if self._closed:
            raise StoreError(f"{self.where}: this store was closed; open a new one")
        if self._thread is None:
            flock = self._acquire()
            try:
                self.journal.open()
                self.replayed = self._replay()
            except self._errors as exc:
                os.close(flock)
                with self.journal.lock:
                    self.journal.close(empty=False)
                raise (exc if isinstance(exc, StoreError) else self._explain(exc)) from None
            self._flock = flock
            self._thread = threading.Thread(target=self._run, name="gatewatch-store-writer", daemon=True)
            self._thread.start()
        return self

    def recover(self) -> bool:
        """For a reader (the CLI): replay a crashed writer's journal when no writer holds it, so what the
        crash left is read too. False when a live writer holds the journal (its records are still coming)."""
        try:
            self.start()
        except StoreError:
            return False
        self.close()  # reading goes on after a close
        return True

    def _replay(self) -> int:
        """Insert what the journal holds (streamed in batches: constant memory whatever its size)."""
        assert self.journal.fd is not None
        if not os.fstat(self.journal.fd).st_size:
            return 0
        conn = self._connect()
        try:
            with self._transaction(conn):
                n, events = self.journal.replay(
                    lambda items, blobs: self._insert(conn, items, blobs), BATCH_MAX
                )
                if events:
                    insight.telemetry(conn, events)
        finally:
            self._disconnect(conn)
        with self.journal.lock:
            self.journal.empty()
        if n:
            log.warning("store: recovered %d records from the journal of a writer that stopped abruptly", n)
        return n

    def submit(self, rec: Record) -> None:
        """Journal and queue a finished record; one small write(), never a wait on the database. Never raises:
        a record that can't be serialised whole is kept without its payloads, and one that can't be kept at
        all is counted as lost."""
        if self._closed:  # a call that ended after shutdown: say so rather than queue it for nobody
            self._lose(1, f"record {rec.id} arrived after the store was closed")
            return
        try:
            try:
                data, blobs = serialize_parts(rec, self.secrets)
            except (TypeError, ValueError) as exc:  # orjson's JSONEncodeError is a TypeError
                rec = _without_payloads(rec, exc)
                data, blobs = serialize_parts(rec, self.secrets)
        except Exception as exc:
            self._lose(1, f"record {rec.id} could not be serialised: {exc}")
            return
        held = len(data) + sum(len(b) for b in blobs.values())
        item = Item(len(data), rec, data, blobs, held=held)
        j = self.journal
        with j.lock:
            if j.fd is not None:
                try:
                    place = j.append(
                        data, blobs
                    )  # a shared part goes to the journal once; later records name it
                    if place is not None:
                        item.at, item.length = place
                except OSError as exc:  # a full disk: the queue still has it; say so once per failure
                    self.stats.last_error = f"journal: {exc.strerror}"
            self._queued_bytes += len(data)
            if item.at is not None and self.held_bytes + held > self.backlog_bytes:
                item.spill()  # the journal holds it: the backlog grows on disk, not in memory
                self._spilled += 1
            else:
                self.held_bytes += held
                item.data, item.blobs = _tight(data), {h: _tight(b) for h, b in blobs.items()}
            self._q.put(item)

    def submit_telemetry(self, events: list[dict[str, Any]]) -> None:
        """Hand over Claude Code's telemetry events (`proxy/edge/telemetry.py`): journaled like a record, so
        none is lost on a restart, and joined to their records by the writer whichever comes first."""
        if not events:
            return
        if self._closed:
            self.stats.last_error = "telemetry arrived after the store was closed"
            return
        data = scrub(orjson.dumps(events), self.secrets)
        item = Telemetry(TELEMETRY + data, tuple(orjson.loads(data)))
        j = self.journal
        with j.lock:
            if j.fd is not None:
                try:
                    j.append_line(item.line)
                except OSError as exc:
                    self.stats.last_error = f"journal: {exc.strerror}"
            self._queued_bytes += len(item.line)
            self._q.put(item)

    def _lose(self, n: int, why: str) -> None:
        self.stats.lost += n
        self.stats.last_error = why
        log.error("store: %s; counted as lost", why)
        self.bus.emit(RecordsLost(n, self.stats.lost, why))

    @property
    def pending(self) -> int:
        return self._q.qsize()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float = 10) -> None:
        """Flush everything queued, then stop the writer. Idempotent; reading still works afterwards."""
        if self._closed:
            return
        self._closed = True
        busy = False
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join(timeout)
            busy = self._thread.is_alive()  # still retrying a batch: what it holds stays journaled
            self._thread = None
        with self.journal.lock:
            done = not busy and self._q.empty() and not self._unwritten and not self._unwritten_events
            self.journal.close(empty=done)
        if self._flock is not None:
            os.close(self._flock)  # closing drops the lock
            self._flock = None

    def _run(self) -> None:
        conn: Any = None
        stop = False
        last = 0  # records in the last batch
        while not stop:
            try:
                waiting = self._unwritten or self._unwritten_events
                item = self._q.get(timeout=RETRY_IDLE_S if waiting else None)
            except queue.Empty:  # nothing new: try again what was given up on
                conn = self._write(conn, [])
                continue
            if isinstance(item, _Stop):
                break
            batch = [item]
            # The batch fills while the writer sleeps, then is taken at once: a writer blocked in `get` would be
            # woken (and take the GIL from the event loop) by every record submitted in the window.
            if self._q.qsize() < BATCH_MAX - 1:  # (a backlog is taken without waiting)
                time.sleep(max(BATCH_WAIT, BATCH_WAIT_BUSY) if last >= BUSY_RECORDS else BATCH_WAIT)
            while len(batch) < BATCH_MAX:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(nxt, _Stop):
                    stop = True
                    break
                batch.append(nxt)
            last = len(batch)
            try:
                conn = self._write(conn, batch)
            except Exception as exc:  # a bug must not end the writer: everything after it would be lost
                log.exception("store: writing a batch failed unexpectedly")
                self._lose(len(batch), self.said(exc))
        if conn is not None:
            self._disconnect(conn)

    def _loaded(self, items: list[Item]) -> tuple[list[tuple[Record, bytes, dict[str, bytes]]], int]:
        """The records of `items`, the spilled ones read back from the journal for this write only; and how
        many could not be read back (counted as lost: there is nothing left to retry)."""
        out = []
        unreadable = 0
        for it in items:
            if it.rec is not None and it.data is not None and it.blobs is not None:
                out.append((it.rec, it.data, it.blobs))
            elif it.at is not None and (back := self.journal.read(it.at, it.length)) is not None:
                out.append(back)
            else:
                unreadable += 1
        if unreadable:
            self._lose(
                unreadable, f"{unreadable} records waiting in {self.journal_path} could not be read back"
            )
        return out, unreadable

    def _pieces(self, items: list[Item]) -> Iterator[list[Item]]:
        """`items` in runs of at most BATCH_BYTES (one record at least): a backlog read back from the journal
        is never in memory whole."""
        piece: list[Item] = []
        size = 0
        for it in items:
            if piece and size + it.size > BATCH_BYTES:
                yield piece
                piece, size = [], 0
            piece.append(it)
            size += it.size
        if piece:
            yield piece

    def _write(self, conn: Any, new: list[Queued]) -> Any:
        """Commit what was given up on before and `new`, in order, piece by piece (telemetry with the last
        piece, after its records); what fails is kept (in the journal) for a later try."""
        before = len(self._unwritten)
        items = self._unwritten + [it for it in new if isinstance(it, Item)]
        events = self._unwritten_events + [it for it in new if isinstance(it, Telemetry)]
        done = 0
        pieces = list(self._pieces(items)) or ([[]] if events else [])
        for i, piece in enumerate(pieces):
            conn, ok = self._write_piece(conn, piece, events if i == len(pieces) - 1 else [])
            if not ok:
                break
            done += len(piece)
            if i == len(pieces) - 1:
                events = []
        self._unwritten_events = events
        left = items[done:]
        recovered = min(done, before)  # the first `before` were counted as lost when they were given up on
        if recovered:
            self.stats.lost -= recovered
            self.stats.recovered += recovered
            log.warning("store: %d records counted as lost were written after all", recovered)
        with self.journal.lock:  # an outage: what waits for the database is held by the journal, not memory
            for it in left:
                if not it.spilled and it.at is not None:
                    self.held_bytes -= it.spill()
                    self._spilled += 1
        self._unwritten = left  # kept (and in the journal) until a later try writes them
        if not left and not events:
            self._committed()
        failed = len(left) - (before - recovered)  # of `new`, those not written
        if failed > 0:
            self.stats.lost += failed
            log.error(
                "store: %d records could not be written and are counted as lost (kept in %s and retried): %s",
                failed,
                self.journal_path,
                self.stats.last_error,
            )
            self.bus.emit(RecordsLost(failed, self.stats.lost, self.stats.last_error or ""))
        return conn

    def _write_piece(self, conn: Any, piece: list[Item], events: list[Telemetry]) -> tuple[Any, bool]:
        """One transaction, tried RETRIES times; True once committed. `events` are joined after the records."""
        for attempt in range(RETRIES):
            loaded, unreadable = self._loaded(piece)
            try:
                if conn is None:
                    conn = self._connect()
                with self._transaction(conn):
                    self._insert(conn, [(rec, data) for rec, data, _ in loaded], _blobs(loaded))
                    if events:  # after the batch's records: an event joins a record of its own batch too
                        insight.telemetry(conn, [e for t in events for e in t.events])
            except self._errors as exc:
                self.stats.retries += 1
                self.stats.lost -= unreadable  # counted again on the next try
                self.stats.last_error = self.said(exc)
                log.warning("store write failed (attempt %d/%d): %s", attempt + 1, RETRIES, self.said(exc))
                if conn is not None:
                    self._disconnect(conn)
                    conn = None
                del loaded  # a spilled record is read back for each try, never kept
                time.sleep(min(2.0, 0.1 * 2**attempt))
                continue
            self.stats.written += len(loaded)
            self.stats.last_error = None
            with self.journal.lock:
                self._queued_bytes -= sum(it.size for it in piece) + sum(len(t.line) for t in events)
                self.held_bytes -= sum(it.held for it in piece)
                self._spilled -= sum(1 for it in piece if it.spilled)
            if loaded and self.bus.wants(RecordsCommitted):
                self.bus.emit(RecordsCommitted(tuple(rec for rec, _, _ in loaded)))
            return conn, True
        return conn, False

    def _committed(self) -> None:
        """Everything taken from the queue is committed: empty the journal if nothing else is queued, else
        rewrite it without the committed prefix once it is large (sustained load never empties it). The
        rewrite is built aside (`Journal.compact`): `submit`, on the event loop, waits for no more than the
        swap."""
        j = self.journal
        with j.lock:
            if j.fd is None or self._unwritten or self._unwritten_events:
                return
            if self._q.empty():
                j.empty()  # the next journal must hold the shared parts it names
                return
            if j.size < COMPACT_BYTES or self._spilled:  # a spilled record's place must stay where it is
                return
            if self._queued_bytes > j.size // 2:
                return  # mostly backlog, not committed prefix: rewriting it now would gain little
            snap = j.snapshot([it for it in list(self._q.queue) if not isinstance(it, _Stop)])
        try:
            done = j.compact(snap, lambda: [it for it in list(self._q.queue) if not isinstance(it, _Stop)])
        except OSError as exc:  # the old journal is still whole; try again after the next batch
            self.stats.last_error = f"journal compaction: {exc.strerror}"
            return
        if done:
            self.stats.compactions += 1
