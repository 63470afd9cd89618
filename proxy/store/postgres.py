"""The PostgreSQL store: one database that several gateway processes write and any console reads.

The tables are the schema's steps (proxy/store/schema.py) in PostgreSQL's dialect (proxy/store/dialect.py): the
column table's types in its words, `seq` an identity column and `fts` a tsvector (GIN index) for the free text;
the steps taken are kept in the `meta` table. Reads are `SqlStore`'s.

Writing: each process has its own writer thread and journal (`JournaledStore`): a journal slot of its own,
taken with a `flock`, so a process started after a crash replays the journal the crashed one left. A batch is
one transaction that first takes a transaction-scoped advisory lock: writers from many processes commit one
after the other, as SQLite's single writer does, so the roll-ups (read, then written) stay exact and `seq`
follows commit order. A record whose id is stored already is left alone (`ON CONFLICT (id) DO NOTHING`): a
batch retried after a commit whose answer was lost is recorded once.

Every commit notifies `gatewatch_records`; `watch()` listens, so a console learns of other replicas' calls.

psycopg 3 is an optional dependency (`pip install 'gatewatch[postgres]'`): this module is imported only for a
`postgresql://` store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from proxy.paths import data_dir
from proxy.record import Record
from proxy.record.events import Bus, RecordsCommitted
from proxy.store import ledger, schema
from proxy.store.base import StoreError
from proxy.store.columns import NAMES, to_row
from proxy.store.dialect import PG_COMPATIBLE, PG_SCHEMA, POSTGRES, Dialect, fts_text
from proxy.store.sqlstore import SqlStore

try:
    import psycopg
    from psycopg import sql
    from psycopg.abc import Params, Query

    from proxy.store.pgurl import MISREAD, hide_password, redact, said
except ImportError as exc:  # pragma: no cover - the message is the point
    raise StoreError(
        "a postgresql:// store needs psycopg 3: pip install 'gatewatch[postgres]' (or pip install 'psycopg[binary]')"
    ) from exc

log = logging.getLogger("gatewatch.store")

__all__ = ["MISREAD", "Connection", "PostgresStore", "connect", "hide_password", "redact"]

SCHEMA = PG_SCHEMA
CHANNEL = "gatewatch_records"
WRITE_LOCK = 0x6761_7465_7761_7463  # "gatewatc": the advisory lock every writer's transaction takes
SCHEMA_LOCK = WRITE_LOCK + 1
BUDGET_LOCK = WRITE_LOCK + 2
"""taken by every replica's admission (proxy/exchange/budget.py): one cap, however many gateways share the database"""
JOURNAL_SLOTS = 64
CONNECT_TIMEOUT_S = 5
BUDGET_STATEMENT_S = 10
FTS_MAX_CHARS = 400_000
"""text indexed per field: a tsvector holds at most 1 MB (a longer answer is still stored whole)"""

_INSERT = POSTGRES.insert_records(NAMES)
_BLOB = f"INSERT INTO blobs (hash, data) VALUES ({POSTGRES.marks(2)}) ON CONFLICT (hash) DO NOTHING"


def storable(value: Any) -> Any:
    # PostgreSQL text can't hold NUL; a prompt that had one keeps a visible stand-in
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


class Connection(psycopg.Connection[Any]):
    """psycopg's connection, knowing its dialect (what the SQL written for both databases asks); the text
    parameters of `execute` made storable (a Python check per parameter: a text dumper of our own would cost
    psycopg's C one twice over on every record)."""

    dialect: Dialect = POSTGRES

    def execute(
        self, query: Query, params: Params | None = None, *, prepare: bool | None = None, binary: bool = False
    ) -> psycopg.Cursor[Any]:
        if not isinstance(query, (str, bytes, sql.SQL, sql.Composed)):  # a template: no parameters
            return super().execute(query, prepare=prepare, binary=binary)
        if params is not None and not isinstance(params, Mapping):
            params = [storable(v) for v in params]
        return super().execute(query, params, prepare=prepare, binary=binary)


_schema_ready: set[str] = set()
_schema_lock = threading.Lock()


def connect(url: str, create: bool = True) -> Connection:
    """A connection (autocommit; `transaction()` for writes) whose tables are in place; StoreError otherwise."""
    try:
        conn = Connection.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise StoreError(f"{redact(url)}: cannot connect: {said(exc, url)}") from None
    try:
        with _schema_lock:
            if url not in _schema_ready:
                _ensure_schema(conn, url, create)
                if create:  # a reader's check made nothing: a writer of this process still takes new steps
                    _schema_ready.add(url)
        conn.execute(f"SET search_path TO {SCHEMA}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def _schema_transaction(conn: Connection) -> Iterator[Connection]:
    """A schema step: replicas that start together take it one after the other."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        yield conn


def _ensure_schema(conn: Connection, url: str, create: bool) -> None:
    meta = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.meta",)).fetchone()
    if meta is None or meta[0] is None:
        if not create:
            raise StoreError(f"{redact(url)}: no gatewatch tables in this database (nothing was created)")
    else:
        row = conn.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'schema'").fetchone()
        if row is not None and int(row[0]) > PG_COMPATIBLE:
            raise StoreError(
                f"{redact(url)}: written by a newer gatewatch (schema {row[0]} > {PG_COMPATIBLE}); upgrade gatewatch"
            )
        if not create:
            return
    conn.execute(f"SET search_path TO {SCHEMA}")
    schema.upgrade(conn, _schema_transaction)


class PostgresStore(SqlStore):
    """The PostgreSQL `RecordStore`. Readers use a connection per thread; the writer, its own."""

    dialect = POSTGRES

    def __init__(
        self, url: str, secrets: list[str] | None = None, bus: Bus | None = None, create: bool = True
    ) -> None:
        super().__init__(secrets, bus)
        self.url = url
        self._errors = (psycopg.Error, StoreError, OSError)
        self.said = lambda exc: f"{type(exc).__name__}: {said(exc, url)}"
        connect(url, create=create).close()  # fail now, with a clear message, not in the writer
        key = hashlib.sha1(redact(url).encode()).hexdigest()[:16]
        self._journal_dir = data_dir() / "postgres"
        self._journal_key = key
        self.journal_path = self._slot(0)[1]
        self._token = uuid.uuid4().hex
        """this process's name in notifications: its own commits are announced by its writer already"""
        self._watcher: threading.Thread | None = None
        self._watching = threading.Event()
        self._known_blobs: set[str] = set()
        """shared parts this writer saw committed: not sent again (a Claude Code prompt's are ~150 KB)"""
        self._adding_blobs: set[str] = set()
        self._pruned = ""
        self._pruned_now = ""
        """the last prune this writer knows of: after another, the parts it knew may be gone"""

    shared = True

    @property
    def where(self) -> str:
        return redact(self.url)

    @property
    def path(self) -> Path:
        """No file: the journal's directory (what a console prints as the store's place is `where`)."""
        return self._journal_dir

    def start(self) -> PostgresStore:
        super().start()
        return self

    # -- the journal: a slot per writing process ----------------------------------------------------------
    def _slot(self, n: int) -> tuple[Path, Path]:
        base = self._journal_dir / f"{self._journal_key}-{n}"
        return base.with_suffix(".lock"), base.with_suffix(".journal")

    def _try_slot(self, n: int) -> int | None:
        lock_path, _ = self._slot(n)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _acquire(self) -> int:
        """The first journal slot no live process holds; what a crashed writer left in it is replayed."""
        try:
            self._journal_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            for n in range(JOURNAL_SLOTS):
                fd = self._try_slot(n)
                if fd is not None:
                    self.journal_path = self._slot(n)[1]
                    return fd
        except OSError as exc:
            raise StoreError(f"{self._journal_dir}: cannot keep a journal there: {exc.strerror}") from None
        raise StoreError(
            f"{self.where}: {JOURNAL_SLOTS} gatewatch processes on this machine write to it already"
        )

    def recover(self) -> bool:
        """For a reader (the CLI): replay the journals that no live process holds (crashed writers' records).
        Always True: other processes may be writing, which a shared database expects."""
        self.replayed = 0
        if not self._journal_dir.is_dir():
            return True
        for n in range(JOURNAL_SLOTS):
            lock_path, journal = self._slot(n)
            if not lock_path.exists() or not journal.exists() or not journal.stat().st_size:
                continue
            fd = self._try_slot(n)
            if fd is None:
                continue
            try:
                self.journal_path = journal
                self.journal.fd = os.open(journal, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
                self.replayed += self._replay()
            finally:
                with self.journal.lock:
                    self.journal.close(empty=False)
                os.close(fd)
        return True

    # -- writing ------------------------------------------------------------------------------------------
    def _connect(self) -> Connection:
        conn = connect(self.url)
        ledger.create_reservations(conn)  # a database made before reservations: the writer settles them
        return conn

    @contextlib.contextmanager
    def _transaction(self, conn: Connection) -> Iterator[Connection]:
        self._adding_blobs = set()
        # round trips cost the writer more CPU than the SQL does: as few statements as can be
        with conn.transaction():
            # the notification is delivered at commit, to the consoles that watch (`watch`)
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s), pg_notify(%s, %s)", (WRITE_LOCK, CHANNEL, self._token)
            )
            # read after the lock is held: a prune that committed while this waited is seen
            row = conn.execute("SELECT value FROM meta WHERE key = 'pruned'").fetchone()
            self._pruned_now = row[0] if row else ""
            yield conn
        if len(self._known_blobs) > 10_000:
            self._known_blobs.clear()
        self._known_blobs |= self._adding_blobs

    def _send_blobs(self, conn: Connection, blobs: dict[str, bytes]) -> None:
        """The shared parts the database may not have: all of them after a prune (any process's), else only
        those this writer has not committed before."""
        if self._pruned_now != self._pruned:
            self._known_blobs.clear()
            self._pruned = self._pruned_now
        fresh = [(h, part) for h, part in blobs.items() if h not in self._known_blobs]
        if fresh:
            with conn.cursor() as cur:
                cur.executemany(_BLOB, fresh)
            self._adding_blobs.update(h for h, _ in fresh)

    def _insert(self, conn: Connection, items: list[tuple[Record, bytes]], blobs: dict[str, bytes]) -> int:
        if blobs:
            self._send_blobs(conn, blobs)
        new: list[Record] = []
        rows = []
        over = self.insight.before(conn, [rec for rec, _ in items])
        for rec, data in items:
            row = [storable(v) for v in to_row(rec, data, over.get(rec.id))]
            row.append(storable(fts_text(rec.preview[:FTS_MAX_CHARS])))
            row.append(storable(fts_text((rec.response_text or "")[:FTS_MAX_CHARS])))
            rows.append(row)
        with conn.cursor() as cur:
            # one statement, prepared once (several rows: sent in a pipeline); RETURNING tells which were new
            if len(rows) == 1:
                if cur.execute(_INSERT, rows[0], prepare=True).fetchone() is not None:
                    new.append(items[0][0])
            else:
                cur.executemany(_INSERT, rows, returning=True)
                for rec, _ in items:
                    if cur.fetchone() is not None:
                        new.append(rec)
                    cur.nextset()
        ledger.roll_up(conn, new)
        self.insight.after(conn, new)
        return len(new)

    def close(self, timeout: float = 10) -> None:
        self._watching.clear()
        super().close(timeout)
        if self._watcher is not None:
            self._watcher.join(timeout)
            self._watcher = None

    # -- other processes' commits --------------------------------------------------------------------------
    def watch(self) -> None:
        """Announce on `bus` the records other processes commit (as `RecordsCommitted` without records: read
        them from the store), from a thread that LISTENs, until `close`."""
        if self._watcher is not None or self._closed:
            return
        self._watching.set()
        self._watcher = threading.Thread(target=self._listen, name="gatewatch-store-watch", daemon=True)
        self._watcher.start()

    def _listen(self) -> None:
        while self._watching.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.bus.emit(RecordsCommitted(()))  # whatever was missed while not listening
                    while self._watching.is_set():
                        theirs = any(
                            n.payload != self._token for n in conn.notifies(timeout=0.5, stop_after=100)
                        )
                        if theirs and self._watching.is_set():
                            self.bus.emit(RecordsCommitted(()))
            except psycopg.Error as exc:
                log.debug("store watch: %s; listening again", said(exc, self.url))
                time.sleep(1.0)

    # -- reading (the queries are `SqlStore`'s) --------------------------------------------------------------
    def reader(self) -> Connection:
        """This thread's read connection (opened again when the server dropped it)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = connect(self.url, create=False)
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError as exc:  # the server went away under a kept connection
            raise StoreError(f"{self.where}: {said(exc, self.url)}") from None

    def _stream(self, sql: str, params: Sequence[Any], batch: int = 500) -> Iterator[Sequence[Any]]:
        """Through a server-side cursor."""
        conn = connect(self.url, create=False)
        try:
            with conn.transaction(), conn.cursor(name="gatewatch_scan") as cur:
                cur.itersize = batch
                cur.execute(sql, params)
                yield from cur
        finally:
            conn.close()

    @contextlib.contextmanager
    def _maintenance(self) -> Iterator[Connection]:
        """Under the writers' lock, so a shared part a writer is adding again is not taken from under it; the
        prune is marked, so every writer sends its shared parts again."""
        conn = connect(self.url, create=False)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('pruned', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (uuid.uuid4().hex,),
                )
                yield conn
        finally:
            conn.close()

    # -- the budget (proxy/exchange/budget.py) ----------------------------------------------------------------
    def budget_connection(self) -> Any:
        """A connection of its own for the budget's thread; a statement that hangs (a stalled server) is cut
        by the server after `BUDGET_STATEMENT_S`, though the budget stopped waiting long before."""
        conn = connect(self.url, create=False)
        conn.execute(f"SET statement_timeout = {int(BUDGET_STATEMENT_S * 1000)}")
        return conn

    @contextlib.contextmanager
    def budget_transaction(self, conn: Any) -> Iterator[Any]:
        """An admission: every replica's takes one advisory lock, so two can't both take the last room."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (BUDGET_LOCK,))
            yield conn

    def budget_exclusive(self, conn: Any) -> None:
        """Within an admission: also the writers' lock, so a late reservation and its call's record can't
        cross (the record committed after this read would not delete it)."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
