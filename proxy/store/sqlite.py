"""The SQLite store: one writer thread fed by a queue (batched, off the event loop), readers on their own
connections under WAL, full-text search over prompts and responses, a schema version with migrations."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils

from proxy.record import Record
from proxy.record.events import Bus
from proxy.store import insight, ledger
from proxy.store.base import (
    AgentTotals,
    SessionTotals,
    StoreError,
    Summary,
    Totals,
    default_path,
)
from proxy.store.payloads import SHARED, hydrate
from proxy.store.query import EVERYTHING, Filter
from proxy.store.sql import Compiled, Param, compile_filter
from proxy.store.writer import JournaledStore
from proxy.translate.notes import Note, from_text, kinds

log = logging.getLogger("gatewatch.store")

SCHEMA_VERSION = 7


# -- the columns: one table writes the DDL, the column list, record → row and row → Summary ------------------
def _int(v: Any) -> int:
    return int(v or 0)


def _same(v: Any) -> Any:
    return v


def _note_kinds(notes: list[Note]) -> str | None:
    return orjson.dumps(kinds(notes)).decode() if notes else None


def _load_kinds(v: Any) -> tuple[str, ...]:
    return tuple(orjson.loads(v)) if v else ()


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    ddl: str
    """SQL type and constraints"""
    get: Callable[[Record], Any]
    load: Callable[[Any], Any] = _same
    """the column's value as `Summary` holds it"""
    since: int = 1
    """the schema version that added it"""


COLUMNS: tuple[Column, ...] = (
    Column("id", "TEXT UNIQUE NOT NULL", lambda r: r.id),
    Column("started_at", "REAL NOT NULL", lambda r: r.started_at),
    Column("ended_at", "REAL", lambda r: r.ended_at),
    Column("kind", "TEXT", lambda r: r.kind),
    Column("status", "INTEGER", lambda r: r.status),
    Column("request_model", "TEXT", lambda r: r.request_model, lambda v: v or ""),
    Column("response_model", "TEXT", lambda r: r.response_model),
    Column("target", "TEXT", lambda r: r.target),
    Column("provider", "TEXT", lambda r: r.provider),
    Column("request_mode", "TEXT", lambda r: r.request_mode),
    Column("session_id", "TEXT", lambda r: r.session_id),
    Column("client_ip", "TEXT", lambda r: r.client_ip, lambda v: v or ""),
    Column("user_agent", "TEXT", lambda r: r.user_agent, lambda v: v or ""),
    Column("path", "TEXT", lambda r: r.path, lambda v: v or ""),
    Column("input_tokens", "INTEGER", lambda r: r.usage.input_tokens, _int),
    Column("output_tokens", "INTEGER", lambda r: r.usage.output_tokens, _int),
    Column("cache_read_tokens", "INTEGER", lambda r: r.usage.cache_read_tokens, _int),
    Column("thinking_tokens", "INTEGER", lambda r: r.usage.thinking_tokens, _int),
    Column("total_tokens", "INTEGER", lambda r: r.usage.total_tokens, _int),
    Column("cost", "REAL", lambda r: r.usage.cost),
    Column("latency_ms", "REAL", lambda r: r.latency_ms),
    Column("ttft_ms", "REAL", lambda r: r.usage.time_to_first_token),
    Column("ttfb_ms", "REAL", lambda r: r.usage.time_to_first_byte),
    Column("time_per_token", "REAL", lambda r: r.usage.time_per_token),
    Column("stop_reason", "TEXT", lambda r: r.stop_reason),
    Column("error_type", "TEXT", lambda r: r.error_type),
    Column("error_message", "TEXT", lambda r: r.error_message),
    Column("cancelled", "INTEGER", lambda r: int(r.cancelled), bool),
    # spaces around every name, so `tool:Bash` is one LIKE '% Bash %'
    Column(
        "tools_used",
        "TEXT",
        lambda r: " " + " ".join(r.tools_used) + " ",
        lambda v: tuple((v or "").split()),
    ),
    Column("attempts", "INTEGER", lambda r: len(r.tried_targets), _int),
    Column("preview", "TEXT", lambda r: r.preview, lambda v: v or ""),
    Column(
        "cache_creation_tokens",
        "INTEGER NOT NULL DEFAULT 0",
        lambda r: r.usage.cache_creation_tokens,
        _int,
        since=3,
    ),
    Column("agent_id", "TEXT", lambda r: r.agent_id, since=4),
    Column("cc_version", "TEXT", lambda r: r.cc_version, since=4),
    Column(
        "cc_is_subagent",
        "INTEGER",
        lambda r: None if r.cc_is_subagent is None else int(r.cc_is_subagent),
        lambda v: None if v is None else bool(v),
        since=4,
    ),
    Column("replay_of", "TEXT", lambda r: r.replay_of, since=5),
    # the kinds of the record's translation notes as a JSON array (NULL without any): `note:KIND`, stats
    Column("notes", "TEXT", lambda r: _note_kinds(r.notes), _load_kinds, since=5),
    Column("parent_agent_id", "TEXT", lambda r: r.parent_agent_id, since=6),
    # Claude Code's telemetry joined by request id, and what the cache saved: filled by the writer
    # (proxy/store/insight.py), usually after the row is written
    Column("prompt_id", "TEXT", lambda r: r.prompt_id, since=7),
    Column("cc_cost", "REAL", lambda r: r.cc_cost, since=7),
    Column("query_source", "TEXT", lambda r: r.query_source, since=7),
    Column("cache_saved", "REAL", lambda r: None, since=7),
)
_NAMES = [c.name for c in COLUMNS]
# the record's JSON (`serialize_parts`) is the last column of every insert; reads of summaries leave it out
_INSERT = (
    f"INSERT OR IGNORE INTO records ({', '.join(_NAMES)}, data) VALUES ({', '.join('?' * (len(_NAMES) + 1))})"
)
# a summary row is read in `Summary`'s field order and built positionally: 100 rows a page, a page a keystroke
_BY_NAME = {c.name: c for c in COLUMNS}
_SUMMARY_FIELDS = [f.name for f in fields(Summary)][1:]  # after seq (the rowid)
_SUMMARY_COLS = ", ".join(["records.rowid"] + [f"records.{n}" for n in _SUMMARY_FIELDS])
_LOADS = [(i, _BY_NAME[n].load) for i, n in enumerate(_SUMMARY_FIELDS, 1) if _BY_NAME[n].load is not _same]


def to_row(rec: Record, data: bytes, over: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The indexed columns of a record, and `data`, its JSON from `serialize_parts`; `over`: columns the
    writer filled (proxy/store/insight.py: findings' kinds, what the cache saved, Claude Code's telemetry)."""
    if over:
        return (*(over[c.name] if c.name in over else c.get(rec) for c in COLUMNS), data)
    return (*(c.get(rec) for c in COLUMNS), data)


def to_summary(row: sqlite3.Row | tuple[Any, ...]) -> Summary:
    values = list(row)
    for i, load in _LOADS:
        values[i] = load(values[i])
    return Summary(*values)


# -- schema ------------------------------------------------------------------------------------------------
def _migrate_1(db: sqlite_utils.Database) -> None:
    cols = ", ".join(f"{c.name} {c.ddl}" for c in COLUMNS if c.since == 1)
    db.execute(f"CREATE TABLE IF NOT EXISTS records (rowid INTEGER PRIMARY KEY, {cols}, data BLOB)")
    # Indexes for the history filters; started_at orders every page.
    for index in (
        ["started_at"],
        ["request_model", "started_at"],
        ["target", "started_at"],
        ["status", "started_at"],
        ["session_id"],
        ["cost"],
        ["latency_ms"],
    ):
        db.table("records").create_index(index, if_not_exists=True)
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(prompt, response)")


def _migrate_2(db: sqlite_utils.Database) -> None:
    # Content-addressed pieces of payloads: Claude Code sends the same system prompt and tools (~50 KB)
    # on every call; each distinct one is kept once.
    db.execute("CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL)")


def _migrate_3(db: sqlite_utils.Database) -> None:
    # cache_creation_tokens: priced and exported, so it gets a column; older records have it in their JSON
    for c in COLUMNS:
        if c.since == 3:
            db.execute(f"ALTER TABLE records ADD COLUMN {c.name} {c.ddl}")
    # Most records wrote 0 (the column's default): a byte search skips them, only the rest are parsed as JSON.
    db.execute(
        "UPDATE records SET cache_creation_tokens = "
        "coalesce(json_extract(data, '$.usage.cache_creation_tokens'), 0) "
        "WHERE instr(data, '\"cache_creation_tokens\":0,') = 0"
    )


def _migrate_4(db: sqlite_utils.Database) -> None:
    # Claude Code's sub-agent and version as columns (the `agent:` filter, the sessions view), and the ledger's
    # roll-ups (proxy/store/ledger.py), filled from the records already there
    for c in COLUMNS:
        if c.since == 4:
            db.execute(f"ALTER TABLE records ADD COLUMN {c.name} {c.ddl}")
    db.execute("CREATE INDEX IF NOT EXISTS idx_records_session_agent ON records (session_id, agent_id)")
    conn = db.conn
    ledger.create(conn)
    ledger.backfill(conn)


def _migrate_5(db: sqlite_utils.Database) -> None:
    # replay_of: the call a replay sent again (`gatewatch replay`), indexed for the `replay_of:` filter and the
    # detail's link; older records were nobody's replay (NULL)
    if "replay_of" not in {c.name for c in db.table("records").columns}:
        db.execute("ALTER TABLE records ADD COLUMN replay_of TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS idx_records_replay_of ON records (replay_of)")
    # the kinds of each record's translation notes, for `note:KIND` and stats; older records' text notes are
    # read back by kind (`translate.notes.from_text`)
    have = {row[1] for row in db.execute("PRAGMA table_info(records)").fetchall()}
    if "notes" not in have:
        db.execute(f"ALTER TABLE records ADD COLUMN notes {_BY_NAME['notes'].ddl}")
    # most records have none: a byte search skips them, only the rest are parsed
    rows = db.execute("SELECT rowid, data FROM records WHERE instr(data, '\"notes\":[]') = 0")
    for rowid, data in rows.fetchall():
        try:
            raw = orjson.loads(data).get("notes") or []
        except (orjson.JSONDecodeError, AttributeError):
            continue
        notes = [from_text(n) if isinstance(n, str) else Note(**n) for n in raw if isinstance(n, (str, dict))]
        db.execute("UPDATE records SET notes = ? WHERE rowid = ?", (_note_kinds(notes), rowid))


def _migrate_6(db: sqlite_utils.Database) -> None:
    # parent_agent_id: the sub-agent that spawned a sub-agent (x-claude-code-parent-agent-id), for the `agent:`
    # filter's nesting; older records name none (NULL)
    have = {row[1] for row in db.execute("PRAGMA table_info(records)").fetchall()}
    if "parent_agent_id" not in have:
        db.execute(f"ALTER TABLE records ADD COLUMN parent_agent_id {_BY_NAME['parent_agent_id'].ddl}")


def _migrate_7(db: sqlite_utils.Database) -> None:
    # Claude Code's telemetry joined to records, the findings of the detector and what the cache saved
    # (proxy/store/insight.py); older records have none of them
    have = {row[1] for row in db.execute("PRAGMA table_info(records)").fetchall()}
    for c in COLUMNS:
        if c.since == 7 and c.name not in have:
            db.execute(f"ALTER TABLE records ADD COLUMN {c.name} {c.ddl}")
    insight.create(db.conn)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
    _migrate_7,
]


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


def connect(path: str | os.PathLike[str], create: bool = True) -> sqlite3.Connection:
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
        conn = sqlite3.connect(p, timeout=10, check_same_thread=False, isolation_level=None)
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
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{p}: written by a newer gatewatch (schema {version} > {SCHEMA_VERSION}); upgrade gatewatch"
        )
    if version < SCHEMA_VERSION:
        db = sqlite_utils.Database(conn)
        for v in range(version, SCHEMA_VERSION):
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                # another process may have migrated between our read of the version and our lock
                if conn.execute("PRAGMA user_version").fetchone()[0] > v:
                    continue
                MIGRATIONS[v](db)
                conn.execute(f"PRAGMA user_version = {v + 1}")
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


class SqliteStore(JournaledStore):
    """The SQLite `RecordStore`: the writer (a thread + queue, `JournaledStore`), the readers (a connection
    per thread).

    One writer per database: the lock is a `flock` on a lock file named for the database file's device and
    inode, so it holds whatever path, symlink or hard link names the file.
    """

    _errors = (sqlite3.Error, StoreError, OSError)

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

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path)
        ledger.create_reservations(conn)  # a store made before reservations: the writer settles them
        return conn

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            yield conn

    def _insert(
        self, conn: sqlite3.Connection, items: list[tuple[Record, bytes]], blobs: dict[str, bytes]
    ) -> int:
        # already there almost always: a primary-key probe, no data written
        conn.executemany("INSERT OR IGNORE INTO blobs(hash, data) VALUES (?, ?)", blobs.items())
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

    # -- reading -------------------------------------------------------------------------------------------
    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (SQLite's own rows: for this module and the tests of its layout)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def count(self, flt: Filter = EVERYTHING, cap: int | None = None) -> int:
        """How many records match; with `cap`, stop counting past it (returns cap + 1: "more than cap")."""
        c = compile_filter(flt)
        if c.match:
            inner, params = self._from_text(c, "1")
        else:
            where, params = c.full()
            inner = f"SELECT 1 FROM records WHERE {where}"
        if cap is not None:
            inner += f" LIMIT {int(cap) + 1}"
        n: int = self.reader().execute(f"SELECT count(*) FROM ({inner})", params).fetchone()[0]
        return n

    @staticmethod
    def _from_text(c: Compiled, cols: str) -> tuple[str, list[Param]]:
        """Free text: drive from the full-text index, newest-first in rowid order (the order calls were
        recorded), so a page stops at its end instead of collecting every match and sorting it by time: a
        word found in half of a million records costs what a rare one does."""
        where = "records_fts MATCH ?" + (f" AND ({c.where})" if c.where else "")
        sql = (
            f"SELECT {cols} FROM records_fts JOIN records ON records.rowid = records_fts.rowid WHERE {where}"
        )
        return sql, [c.match, *c.params]

    def page(
        self, flt: Filter = EVERYTHING, limit: int = 100, after: Summary | None = None, offset: int = 0
    ) -> list[Summary]:
        """Newest first, without the payloads. `after` is the last row seen (keyset paging: as fast on page
        1,000 as on page 1)."""
        c = compile_filter(flt)
        if c.match:
            sql, params = self._from_text(c, _SUMMARY_COLS)
            if after is not None:
                sql += " AND records_fts.rowid < ?"
                params.append(after.seq)
            sql += " ORDER BY records_fts.rowid DESC LIMIT ? OFFSET ?"
        else:
            where, params = c.full()
            if after is not None:
                where = f"({where}) AND (started_at < ? OR (started_at = ? AND records.rowid < ?))"
                params += [after.started_at, after.started_at, after.seq]
            sql = (
                f"SELECT {_SUMMARY_COLS} FROM records WHERE {where} "
                "ORDER BY started_at DESC, records.rowid DESC LIMIT ? OFFSET ?"
            )
        rows = self.reader().execute(sql, [*params, limit, offset]).fetchall()
        return [to_summary(r) for r in rows]

    def ids(self, prefix: str, limit: int = 2) -> list[str]:
        """The ids that start with `prefix` (with or without its `req_`), at most `limit`: an id as typed."""
        want = prefix if prefix.startswith("req_") else "req_" + prefix
        # a range over the unique index, not a LIKE (which would scan every id)
        rows = self.reader().execute(
            "SELECT id FROM records WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (want, want + "\U0010ffff", limit),
        )
        return [r[0] for r in rows]

    def get(self, record_id: str) -> Record | None:
        conn = self.reader()
        row = conn.execute("SELECT data FROM records WHERE id = ?", (record_id,)).fetchone()
        return Record.model_validate(insight.complete(conn, hydrate(row[0], conn))) if row else None

    def _scan(self, flt: Filter, cols: str, batch: int = 500) -> Iterator[sqlite3.Row]:
        """Every matching row, oldest first, on a connection of its own (the caller may interleave reads)."""
        where, params = compile_filter(flt).full()
        conn = connect(self.path)
        conn.row_factory = sqlite3.Row
        try:
            cur = conn.execute(
                f"SELECT {cols} FROM records WHERE {where} ORDER BY started_at, records.rowid", params
            )
            while rows := cur.fetchmany(batch):
                yield from rows
        finally:
            conn.close()

    def iter_records(self, flt: Filter = EVERYTHING) -> Iterator[dict[str, Any]]:
        """Every matching record as a dict, oldest first, in constant memory."""
        conn = self.reader()
        for row in self._scan(flt, "data, notes, prompt_id"):
            doc = hydrate(row["data"], conn)
            yield insight.complete(conn, doc) if insight.learnt(row["notes"], row["prompt_id"]) else doc

    def summaries(self, flt: Filter = EVERYTHING) -> Iterator[Summary]:
        for row in self._scan(flt, _SUMMARY_COLS):
            yield to_summary(row)

    def totals(self, since: float) -> Totals:
        """A full scan of the cost column: call it off the event loop."""
        cost, cost_since, n = (
            self.reader()
            .execute(
                "SELECT coalesce(sum(cost), 0), coalesce(sum(CASE WHEN started_at >= ? THEN cost END), 0), "
                "count(*) FROM records",
                (since,),
            )
            .fetchone()
        )
        return Totals(cost, cost_since, since, n, self.stats.written, self.stats.lost)

    # -- the ledger (proxy/store/ledger.py) -----------------------------------------------------------------
    def sessions(self, limit: int = 50, since: float | None = None) -> list[SessionTotals]:
        return ledger.sessions(self.reader(), limit, since)

    def session(self, session_id: str) -> SessionTotals | None:
        return ledger.session(self.reader(), session_id)

    def agents(self, session_id: str) -> list[AgentTotals]:
        return ledger.agents(self.reader(), session_id)

    def spend_today(self) -> float:
        return ledger.spend_on(self.reader(), ledger.day_of(time.time()))

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

    # -- findings, turns, Claude Code's view (proxy/store/insight.py) ----------------------------------------
    def findings(self, record_ids: Sequence[str]) -> dict[str, list[Note]]:
        return insight.findings(self.reader(), record_ids)

    def prompts(self, prompt_ids: Sequence[str]) -> dict[str, str | None]:
        return insight.prompts(self.reader(), prompt_ids)

    def turns(self, session_id: str) -> list[insight.Turn]:
        return insight.turns(self.reader(), session_id)

    def latest_turns(self, session_ids: Sequence[str], per: int) -> dict[str, list[insight.Turn]]:
        return insight.latest_turns(self.reader(), session_ids, per)

    def session_views(self, session_ids: Sequence[str]) -> dict[str, insight.SessionView]:
        return insight.session_views(self.reader(), session_ids)

    def session_view(self, session_id: str) -> insight.SessionView:
        return insight.session_view(self.reader(), session_id)

    def session_spend(self, session_id: str) -> float:
        s = ledger.session(self.reader(), session_id)
        return s.cost if s is not None else 0.0

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
                n: int = conn.execute("DELETE FROM records WHERE started_at < ?", (cutoff,)).rowcount
                ledger.prune(conn, cutoff)
                insight.prune(conn, cutoff)
                # shared parts no remaining record names go too
                refs = " UNION ".join(
                    f"SELECT json_extract(data, '$.{field}.{key}.\"$blob\"') AS h FROM records"
                    for field, keys in SHARED.items()
                    for key in keys
                )
                conn.execute(
                    f"DELETE FROM blobs WHERE hash NOT IN (SELECT h FROM ({refs}) WHERE h IS NOT NULL)"
                )
            conn.execute("VACUUM")
            return n
        finally:
            conn.close()
