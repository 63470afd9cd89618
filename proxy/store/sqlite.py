"""The SQLite store: one writer thread fed by a queue (batched, off the event loop: proxy/store/writer.py),
readers on their own connections under WAL, full-text search over prompts and responses (FTS5), the schema's
steps (proxy/store/schema.py) kept in `PRAGMA user_version`. Reads are `SqlStore`'s, in SQLite's dialect."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from proxy.record import Record
from proxy.record.events import Bus
from proxy.store import ledger, schema
from proxy.store.base import StoreError, default_path
from proxy.store.columns import NAMES, to_row
from proxy.store.dialect import SQLITE, Dialect
from proxy.store.sqlstore import SqlStore

log = logging.getLogger("gatewatch.store")

_INSERT = SQLITE.insert_records(NAMES)
_BLOB = f"INSERT INTO blobs (hash, data) VALUES ({SQLITE.marks(2)}) ON CONFLICT (hash) DO NOTHING"


class Connection(sqlite3.Connection):
    """SQLite's connection, knowing its dialect (what the SQL written for both databases asks)."""

    dialect: Dialect = SQLITE


@contextlib.contextmanager
def _immediate(conn: Connection) -> Iterator[Connection]:
    """A write transaction that takes the file's write lock first (no other writer can slip in)."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        yield conn


# -- connections -------------------------------------------------------------------------------------------
def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite does (it would use the umask); the WAL and shm follow its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        os.close(fd)


_tightened: set[str] = set()


def tighten(*paths: Path) -> None:
    """Files holding prompts readable by others (an older gatewatch, a copy) become 0600; said once each."""
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            try:
                os.chmod(p, 0o600)
            except OSError:
                continue
            if str(p) not in _tightened:
                _tightened.add(str(p))
                log.warning("%s was readable by others (mode %o); now 0600", p, stat.S_IMODE(st.st_mode))


def _explain(p: Path, exc: BaseException) -> StoreError:
    """What really went wrong opening `p`: a read-only filesystem, a full disk, no file descriptors, no
    permission, or a file that is not ours."""
    err = getattr(exc, "errno", None)
    text = str(exc).lower()
    if err in (errno.EMFILE, errno.ENFILE) or "too many open files" in text:
        return StoreError(
            f"{p}: out of file descriptors (ulimit -n); close other programs or raise the limit"
        )
    if err == errno.ENOSPC or "disk is full" in text:
        return StoreError(f"{p}: the disk is full; free some space or pass another --db")
    if err == errno.EROFS or "readonly" in text or "read-only" in text:
        return StoreError(f"{p}: the database or its directory is read-only; pass a writable --db")
    if err == errno.EACCES:
        return StoreError(f"{p}: permission denied; pass another --db")
    if "unable to open" in text:
        try:
            os.close(os.open(p, os.O_RDWR))
        except OSError as probe:
            return _explain(p, probe)
        if not os.access(p.parent, os.W_OK):
            return StoreError(f"{p}: its directory is not writable (SQLite needs to create -wal beside it)")
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return StoreError(f"{p}: not a gatewatch database ({exc}); move it away or pass another --db")
    return StoreError(f"{p}: cannot use the database: {exc}")


def connect(path: str | os.PathLike[str], create: bool = True) -> Connection:
    """Open (and migrate) the store; a clear StoreError for a file that isn't ours."""
    p = Path(path)
    if create:
        try:
            _create_private(p)
        except OSError as exc:
            raise _explain(p, exc) from None
    elif not p.exists():
        raise StoreError(f"{p}: no such database")
    try:
        conn = sqlite3.connect(
            p, timeout=10, check_same_thread=False, isolation_level=None, factory=Connection
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process crash
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise _explain(p, exc) from None
    if version == 0 and tables and "records" not in tables:
        raise StoreError(
            f"{p}: this SQLite file belongs to something else (tables: {', '.join(sorted(tables)[:5])});"
            " pass another --db"
        )
    if version > schema.latest():
        raise StoreError(
            f"{p}: written by a newer gatewatch (schema {version} > {schema.latest()}); upgrade gatewatch"
        )
    if version < schema.latest():
        # each step in a transaction holding the write lock; one another process took meanwhile is skipped
        schema.upgrade(conn, _immediate)
    return conn


# -- the store ---------------------------------------------------------------------------------------------
def _lock_path(db: Path) -> Path:
    """The writer's lock file, named for the database file's identity (device, inode), not its path: a
    symlink or a hard link to the same file finds the same lock. It lives in a private directory of this
    user's (not beside the database: closing any descriptor of the database file would drop the POSIX locks
    SQLite holds on it in this process)."""
    st = os.stat(db)
    uid = os.getuid()
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"gatewatch-{uid}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
    except FileExistsError:
        pass
    own = os.lstat(base)
    if not stat.S_ISDIR(own.st_mode) or own.st_uid != uid or own.st_mode & 0o077:
        raise StoreError(f"{base}: the lock directory is not a private directory of this user's; remove it")
    return base / f"{st.st_dev:x}-{st.st_ino:x}.lock"


class SqliteStore(SqlStore):
    """The SQLite `RecordStore`: the writer (a thread + queue, `JournaledStore`), the readers (a connection
    per thread).

    One writer per database: the lock is a `flock` on a lock file named for the database file's device and
    inode, so it holds whatever path, symlink or hard link names the file.
    """

    _errors = (sqlite3.Error, StoreError, OSError)
    dialect = SQLITE

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        secrets: list[str] | None = None,
        bus: Bus | None = None,
        create: bool = True,
    ):
        super().__init__(secrets, bus)
        self.path = Path(path) if path is not None else default_path()
        # fail now, with a clear message, not in the writer; create=False refuses a file that isn't there
        connect(self.path, create=create).close()
        real = Path(os.path.realpath(self.path))
        self.journal_path = real.with_name(real.name + ".journal")
        tighten(*(real.with_name(real.name + s) for s in ("", "-wal", "-shm", ".journal")))

    shared = False

    @property
    def where(self) -> str:
        return str(self.path.resolve())

    def start(self) -> SqliteStore:
        super().start()
        return self

    def watch(self) -> None:
        """Nothing to watch: only this process's writer (or the gateway a viewer attaches to) writes here."""

    def _explain(self, exc: BaseException) -> StoreError:
        return _explain(self.journal_path, exc)

    def _acquire(self) -> int:
        try:
            lock = os.open(_lock_path(self.path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise _explain(self.path, exc) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise StoreError(
                f"{self.path}: another gatewatch is writing to this database; stop it or pass another --db"
            ) from None
        return lock

    def _connect(self) -> Connection:
        conn = connect(self.path)
        ledger.create_reservations(conn)  # a store made before reservations: the writer settles them
        return conn

    @contextlib.contextmanager
    def _transaction(self, conn: Connection) -> Iterator[Connection]:
        with _immediate(conn):
            yield conn

    def _insert(self, conn: Connection, items: list[tuple[Record, bytes]], blobs: dict[str, bytes]) -> int:
        # already there almost always: a primary-key probe, no data written
        conn.executemany(_BLOB, blobs.items())
        new = []
        over = self.insight.before(conn, [rec for rec, _ in items])
        for rec, data in items:
            cur = conn.execute(_INSERT, to_row(rec, data, over.get(rec.id)))
            if cur.rowcount == 1:
                new.append(rec)
                conn.execute(
                    "INSERT INTO records_fts(rowid, prompt, response) VALUES (?, ?, ?)",
                    (cur.lastrowid, rec.preview, rec.response_text),
                )
        ledger.roll_up(conn, new)
        self.insight.after(conn, new)
        return len(new)

    # -- reading (the queries are `SqlStore`'s) --------------------------------------------------------------
    def reader(self) -> Connection:
        """This thread's read connection."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def _stream(self, sql: str, params: Sequence[Any], batch: int = 500) -> Iterator[Sequence[Any]]:
        conn = connect(self.path)
        try:
            cur = conn.execute(sql, params)
            while rows := cur.fetchmany(batch):
                yield from rows
        finally:
            conn.close()

    @contextlib.contextmanager
    def _maintenance(self) -> Iterator[Connection]:
        """BEGIN IMMEDIATE holds the file's write lock; the space freed is given back after (VACUUM)."""
        conn = connect(self.path)
        try:
            with _immediate(conn):
                yield conn
            conn.execute("VACUUM")
        finally:
            conn.close()

    # -- the budget (proxy/exchange/budget.py) ----------------------------------------------------------------
    def budget_connection(self) -> Any:
        """A connection of its own for the budget's thread (admissions are written, one at a time)."""
        conn = connect(self.path)
        conn.execute("PRAGMA busy_timeout = 2000")
        ledger.create_reservations(conn)
        return conn

    def budget_exclusive(self, conn: Any) -> None:
        """Nothing to take: BEGIN IMMEDIATE already excludes the writer."""

    @contextlib.contextmanager
    def budget_transaction(self, conn: Any) -> Iterator[Any]:
        """An admission: the file's write lock serialises it with the writer's commits."""
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
