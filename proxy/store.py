"""The SQLite store: one writer thread fed by a queue (batched, off the event loop), readers on their own
connections under WAL, full-text search over prompts and responses, a schema version with migrations."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import sqlite_utils

from .query import compile as compile_query
from .record import REDACTED, Record

log = logging.getLogger("gatewatch.store")

SCHEMA_VERSION = 2
BATCH_MAX = 500
BATCH_WAIT = 0.05  # seconds the writer waits to fill a batch once one record is there
RETRIES = 5


class StoreError(Exception):
    """The database can't be used; the message says which file and what to do."""


def default_path() -> Path:
    env = os.environ.get("GATEWATCH_DB")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gatewatch" / "gatewatch.db"


_COLUMNS = [
    "id",
    "started_at",
    "ended_at",
    "kind",
    "status",
    "request_model",
    "response_model",
    "target",
    "provider",
    "request_mode",
    "session_id",
    "client_ip",
    "user_agent",
    "path",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "thinking_tokens",
    "total_tokens",
    "cost",
    "latency_ms",
    "ttft_ms",
    "ttfb_ms",
    "time_per_token",
    "stop_reason",
    "error_type",
    "error_message",
    "cancelled",
    "tools_used",
    "attempts",
    "preview",
    "data",
]
_INSERT = f"INSERT OR REPLACE INTO records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE IF NOT EXISTS records (
            rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, started_at REAL NOT NULL, ended_at REAL,
            kind TEXT, status INTEGER, request_model TEXT, response_model TEXT, target TEXT, provider TEXT,
            request_mode TEXT, session_id TEXT, client_ip TEXT, user_agent TEXT, path TEXT,
            input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER, thinking_tokens INTEGER,
            total_tokens INTEGER, cost REAL, latency_ms REAL, ttft_ms REAL, ttfb_ms REAL, time_per_token REAL,
            stop_reason TEXT, error_type TEXT, error_message TEXT, cancelled INTEGER, tools_used TEXT,
            attempts INTEGER, preview TEXT, data BLOB)"""
    )
    # Indexes for the history filters; started_at orders every page.
    for cols in (
        ["started_at"],
        ["request_model", "started_at"],
        ["target", "started_at"],
        ["status", "started_at"],
        ["session_id"],
        ["cost"],
        ["latency_ms"],
    ):
        db["records"].create_index(cols, if_not_exists=True)
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(prompt, response)")


def _migrate_2(db: sqlite_utils.Database) -> None:
    # Content-addressed pieces of payloads: Claude Code sends the same system prompt and tools (~50 KB)
    # on every call; each distinct one is kept once.
    db.execute("CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL)")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1, _migrate_2]


_PAYLOADS = {"client_request", "upstream_request", "upstream_response", "response", "events", "metadata"}


# Payload parts that repeat from call to call, stored once by hash: (payload field, keys inside it).
_SHARED = {"client_request": ("system", "tools"), "upstream_request": ("systemInstruction", "tools")}
BLOB_MIN = 2048  # bytes; smaller parts stay inline


def _scrub(data: bytes, secrets: list[str]) -> bytes:
    for s in secrets:  # defence in depth: a credential that slipped into a payload is cut here
        if s and s.encode() in data:
            data = data.replace(s.encode(), REDACTED.encode())
    return data


def serialize_parts(rec: Record, secrets: list[str]) -> tuple[bytes, dict[str, bytes]]:
    """The record as JSON with its large repeated parts replaced by {"$blob": hash}, and those parts."""
    # The payloads are plain JSON already: orjson writes them directly, pydantic only the small rest.
    head = rec.model_dump(mode="json", exclude=_PAYLOADS)
    blobs: dict[str, bytes] = {}
    for k in _PAYLOADS:
        value = getattr(rec, k)
        keys = _SHARED.get(k)
        if keys and isinstance(value, dict):
            value = dict(value)
            for key in keys:
                if key in value:
                    part = orjson.dumps(value[key])
                    if len(part) >= BLOB_MIN:
                        part = _scrub(part, secrets)
                        h = hashlib.sha1(part).hexdigest()
                        blobs[h] = part
                        value[key] = {"$blob": h}
        head[k] = value
    return _scrub(orjson.dumps(head), secrets), blobs


def hydrate(data: bytes | dict, blobs: Any) -> dict:
    """Put the shared parts back; `blobs` maps hash → bytes, or is a connection to read them from."""
    doc = orjson.loads(data) if isinstance(data, (bytes, str)) else data
    for k, keys in _SHARED.items():
        value = doc.get(k)
        if not isinstance(value, dict):
            continue
        for key in keys:
            ref = value.get(key)
            if isinstance(ref, dict) and set(ref) == {"$blob"}:
                if isinstance(blobs, dict):
                    raw = blobs.get(ref["$blob"])
                else:
                    row = blobs.execute("SELECT data FROM blobs WHERE hash = ?", (ref["$blob"],)).fetchone()
                    raw = row[0] if row else None
                if raw is not None:
                    value[key] = orjson.loads(raw)
    return doc


def to_row(rec: Record, data: bytes) -> tuple:
    """The indexed columns of a record, and `data`, its JSON from `serialize_parts`."""
    u = rec.usage
    return (
        rec.id,
        rec.started_at,
        rec.ended_at,
        rec.kind,
        rec.status,
        rec.request_model,
        rec.response_model,
        rec.target,
        rec.provider,
        rec.request_mode,
        rec.session_id,
        rec.client_ip,
        rec.user_agent,
        rec.path,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.thinking_tokens,
        u.total_tokens,
        u.cost,
        rec.latency_ms,
        u.time_to_first_token,
        u.time_to_first_byte,
        u.time_per_token,
        rec.stop_reason,
        rec.error_type,
        rec.error_message,
        int(rec.cancelled),
        " " + " ".join(rec.tools_used) + " ",
        len(rec.tried_targets),
        rec.preview,
        data,
    )


def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite does (it would use the umask); the WAL and shm follow its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def connect(path: str | os.PathLike, create: bool = True) -> sqlite3.Connection:
    """Open (and migrate) the store; a clear StoreError for a file that isn't ours."""
    p = Path(path)
    if create:
        try:
            _create_private(p)
        except OSError as exc:
            raise StoreError(f"{p}: cannot create the database: {exc.strerror}") from None
    elif not p.exists():
        raise StoreError(f"{p}: no such database")
    try:
        conn = sqlite3.connect(p, timeout=10, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process crash
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{p}: not a gatewatch database ({exc}); move it away or pass another --db"
        ) from None
    if version == 0 and tables and "records" not in tables:
        raise StoreError(
            f"{p}: this SQLite file belongs to something else (tables: {', '.join(sorted(tables)[:5])});"
            " pass another --db"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{p}: written by a newer gatewatch (schema {version} > {SCHEMA_VERSION}); upgrade gatewatch"
        )
    if version < SCHEMA_VERSION:
        db = sqlite_utils.Database(conn)
        for v in range(version, SCHEMA_VERSION):
            with conn:
                conn.execute("BEGIN")
                MIGRATIONS[v](db)
                conn.execute(f"PRAGMA user_version = {v + 1}")
    return conn


@dataclass
class WriterStats:
    written: int = 0
    lost: int = 0
    retries: int = 0
    last_error: str | None = None


class Store:
    """The writer (a thread + queue) and the readers (a connection per calling thread).

    Durability: `submit` appends the record to a journal file (one write() into the page cache, no fsync)
    before queueing it, so a process killed before the writer commits loses nothing: the next writer
    replays the journal. The journal is emptied whenever the writer has committed everything queued.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        secrets: list[str] | None = None,
        file_log: str | None = None,
    ):
        self.path = Path(path) if path is not None else default_path()
        self.secrets = [s for s in (secrets or []) if len(s) >= 8]
        self.file_log = file_log
        connect(self.path).close()  # fail now, with a clear message, not in the writer
        self.stats = WriterStats()
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self._journal: int | None = None
        self._journaled_blobs: set[str] = set()
        self._jlock = threading.Lock()
        self._q: queue.Queue[tuple[Record, bytes] | None] = queue.Queue()
        self._local = threading.local()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[list[Record]], None]] = []

    # -- writing -------------------------------------------------------------------------------------------
    def start(self) -> "Store":
        """Become the writer: take the journal's lock, replay what a crashed writer left, start the thread."""
        if self._thread is None:
            fd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StoreError(
                    f"{self.path}: another gatewatch is writing to this database; "
                    "stop it or pass another --db"
                ) from None
            self._journal = fd
            self.replayed = self._replay()
            self._thread = threading.Thread(target=self._run, name="gatewatch-store-writer", daemon=True)
            self._thread.start()
        return self

    def _replay(self) -> int:
        assert self._journal is not None
        size = os.fstat(self._journal).st_size
        if not size:
            return 0
        data = os.pread(self._journal, size, 0)
        recs = []
        blobs: dict[str, bytes] = {}
        for line in data.split(b"\n"):
            if line.startswith(b"#blob "):
                _, h, part = line.split(b" ", 2)
                if hashlib.sha1(part).hexdigest() == h.decode():  # a cut-short line fails this
                    blobs[h.decode()] = part
                continue
            try:
                recs.append((Record.model_validate(orjson.loads(line)), line))
            except (orjson.JSONDecodeError, ValueError):
                continue  # the last line of a write cut short by the crash
        conn = connect(self.path)
        n = 0
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT OR IGNORE INTO blobs(hash, data) VALUES (?, ?)", blobs.items())
                for rec, line in recs:
                    cur = conn.execute(
                        _INSERT.replace("INSERT OR REPLACE", "INSERT OR IGNORE"), to_row(rec, line)
                    )
                    if cur.rowcount == 1:
                        n += 1
                        conn.execute(
                            "INSERT INTO records_fts(rowid, prompt, response) VALUES (?, ?, ?)",
                            (cur.lastrowid, rec.preview, rec.response_text),
                        )
        finally:
            conn.close()
        os.ftruncate(self._journal, 0)
        if n:
            log.warning("store: recovered %d records from the journal of a writer that stopped abruptly", n)
        return n

    def submit(self, rec: Record) -> None:
        """Journal and queue a finished record; one small write(), never a wait on SQLite."""
        data, blobs = serialize_parts(rec, self.secrets)
        with self._jlock:
            if self._journal is not None:
                # a shared part goes to the journal once; later records only name it
                new = [h for h in blobs if h not in self._journaled_blobs]
                lines = [b"#blob " + h.encode() + b" " + blobs[h] for h in new] + [data]
                try:
                    os.write(self._journal, b"\n".join(lines) + b"\n")
                    self._journaled_blobs.update(new)
                except OSError as exc:  # a full disk: the queue still has it; say so once per failure
                    self.stats.last_error = f"journal: {exc.strerror}"
            self._q.put((rec, data, blobs))

    def on_written(self, fn: Callable[[list[Record]], None]) -> None:
        """Called from the writer thread after each committed batch."""
        self._listeners.append(fn)

    @property
    def pending(self) -> int:
        return self._q.qsize()

    def close(self, timeout: float = 10) -> None:
        """Flush everything queued, then stop the writer."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self._journal is not None:
            with self._jlock:
                if self._q.empty() and not self.stats.lost:
                    os.ftruncate(self._journal, 0)
                os.close(self._journal)  # closing drops the lock
                self._journal = None

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        stop = False
        while not stop:
            item = self._q.get()
            if item is None:
                break
            batch = [item]
            deadline = time.monotonic() + BATCH_WAIT
            while len(batch) < BATCH_MAX:
                try:
                    nxt = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            conn = self._write(conn, batch)
        if conn is not None:
            conn.close()

    def _write(
        self, conn: sqlite3.Connection | None, items: list[tuple[Record, bytes, dict[str, bytes]]]
    ) -> sqlite3.Connection | None:
        batch = [rec for rec, _, _ in items]
        rows = [to_row(rec, data) for rec, data, _ in items]
        blobs = {h: part for _, _, parts in items for h, part in parts.items()}
        for attempt in range(RETRIES):
            try:
                if conn is None:
                    conn = connect(self.path)
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    # already there almost always: a primary-key probe, no data written
                    conn.executemany("INSERT OR IGNORE INTO blobs(hash, data) VALUES (?, ?)", blobs.items())
                    for row, rec in zip(rows, batch, strict=True):
                        cur = conn.execute(_INSERT, row)
                        conn.execute(
                            "INSERT INTO records_fts(rowid, prompt, response) VALUES (?, ?, ?)",
                            (cur.lastrowid, rec.preview, rec.response_text),
                        )
                self.stats.written += len(batch)
                self.stats.last_error = None
                with self._jlock:  # everything queued is committed: the journal has done its job
                    if self._journal is not None and self._q.empty():
                        os.ftruncate(self._journal, 0)
                self._mirror(batch)
                for fn in self._listeners:
                    try:
                        fn(batch)
                    except Exception:
                        log.exception("store listener failed")
                return conn
            except (sqlite3.Error, StoreError, OSError) as exc:
                self.stats.retries += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("store write failed (attempt %d/%d): %s", attempt + 1, RETRIES, exc)
                if conn is not None:
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
                    conn = None
                time.sleep(min(2.0, 0.1 * 2**attempt))
        self.stats.lost += len(batch)
        with self._jlock:
            self._journaled_blobs.clear()  # what the lost batch named must be journaled again
        log.error(
            "store: %d records could not be written and are counted as lost: %s",
            len(batch),
            self.stats.last_error,
        )
        return conn

    def _mirror(self, batch: list[Record]) -> None:
        """`[log] file`: append Kong file-log lines, as Kong's file-log plugin does."""
        if not self.file_log:
            return
        from .export import kong_record

        p = Path(self.file_log)
        try:
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
            with open(p, "ab") as f:
                for rec in batch:
                    line = orjson.dumps(kong_record(rec))
                    for s in self.secrets:
                        line = line.replace(s.encode(), REDACTED.encode())
                    f.write(line + b"\n")
        except OSError as exc:
            log.warning("file log %s: %s", p, exc.strerror)

    # -- reading -------------------------------------------------------------------------------------------
    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def count(self, filter_text: str = "", cap: int | None = None) -> int:
        """How many records match; with `cap`, stop counting past it (returns cap + 1: "more than cap")."""
        compiled = compile_query(filter_text)
        if compiled.match:
            where = "records_fts MATCH ?" + (f" AND ({compiled.base_where})" if compiled.base_where else "")
            inner = f"SELECT 1 FROM records_fts JOIN records r ON r.rowid = records_fts.rowid WHERE {where}"
            params = [compiled.match, *compiled.base_params]
        else:
            where, params = compiled.sql()
            inner = f"SELECT 1 FROM records WHERE {where}"
        if cap is not None:
            inner += f" LIMIT {int(cap) + 1}"
        return self.reader().execute(f"SELECT count(*) FROM ({inner})", params).fetchone()[0]

    def page(
        self,
        filter_text: str = "",
        limit: int = 100,
        before: tuple[float, int] | None = None,
        offset: int = 0,
    ) -> list[sqlite3.Row]:
        """Newest first, without the payload blob. `before` = (started_at, rowid) of the last row seen
        (keyset paging: as fast on page 1,000 as on page 1)."""
        compiled = compile_query(filter_text)
        if compiled.match:
            return self._text_page(compiled, limit, before, offset)
        where, params = compiled.sql()
        cols = ", ".join(["rowid"] + [c for c in _COLUMNS if c != "data"])
        if before is not None:
            where = f"({where}) AND (started_at < ? OR (started_at = ? AND rowid < ?))"
            params = [*params, before[0], before[0], before[1]]
        sql = (
            f"SELECT {cols} FROM records WHERE {where} ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?"
        )
        return self.reader().execute(sql, [*params, limit, offset]).fetchall()

    def _text_page(
        self, compiled, limit: int, before: tuple[float, int] | None, offset: int
    ) -> list[sqlite3.Row]:
        """Free text: walk the full-text index newest-first (rowid order, i.e. the order calls were recorded)
        and stop at the page's end, instead of collecting every match and sorting it by time — a word found in
        half of a million records costs what a rare one does."""
        cols = ", ".join(["r.rowid AS rowid"] + [f"r.{c}" for c in _COLUMNS if c != "data"])
        where = "records_fts MATCH ?" + (f" AND ({compiled.base_where})" if compiled.base_where else "")
        params = [compiled.match, *compiled.base_params]
        if before is not None:
            where += " AND records_fts.rowid < ?"
            params.append(before[1])
        sql = (
            f"SELECT {cols} FROM records_fts JOIN records r ON r.rowid = records_fts.rowid WHERE {where} "
            f"ORDER BY records_fts.rowid DESC LIMIT ? OFFSET ?"
        )
        return self.reader().execute(sql, [*params, limit, offset]).fetchall()

    def get(self, record_id: str) -> Record | None:
        conn = self.reader()
        row = conn.execute("SELECT data FROM records WHERE id = ?", (record_id,)).fetchone()
        return Record.model_validate(hydrate(row[0], conn)) if row else None

    def iter_records(self, filter_text: str = "", batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every matching record as a dict, oldest first, in constant memory."""
        where, params = compile_query(filter_text).sql()
        conn = connect(self.path)  # its own cursor: the caller may interleave other reads
        try:
            cur = conn.execute(f"SELECT data FROM records WHERE {where} ORDER BY started_at, rowid", params)
            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    break
                for (data,) in rows:
                    yield hydrate(data, conn)
        finally:
            conn.close()

    def column_values(self, filter_text: str, columns: str) -> list[sqlite3.Row]:
        where, params = compile_query(filter_text).sql()
        return self.reader().execute(f"SELECT {columns} FROM records WHERE {where}", params).fetchall()

    def prune(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        conn = connect(self.path)
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "DELETE FROM records_fts WHERE rowid IN (SELECT rowid FROM records WHERE started_at < ?)",
                    (cutoff,),
                )
                n = conn.execute("DELETE FROM records WHERE started_at < ?", (cutoff,)).rowcount
                # shared parts no remaining record names go too
                refs = " UNION ".join(
                    f"SELECT json_extract(data, '$.{field}.{key}.\"$blob\"') AS h FROM records"
                    for field, keys in _SHARED.items()
                    for key in keys
                )
                conn.execute(
                    f"DELETE FROM blobs WHERE hash NOT IN (SELECT h FROM ({refs}) WHERE h IS NOT NULL)"
                )
            conn.execute("VACUUM")
            return n
        finally:
            conn.close()
