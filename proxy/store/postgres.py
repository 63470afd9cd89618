"""The PostgreSQL store: one database that several gateway processes write and any console reads.

The table is derived from the SQLite store's column table (`sqlite.COLUMNS`), its types mapped (REAL → DOUBLE
PRECISION, INTEGER → BIGINT, BLOB → BYTEA), with `seq` an identity column and `fts` a tsvector (GIN index) for
the free text. A column added to `COLUMNS` is added here when a gatewatch that knows it connects.

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
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from proxy.paths import data_dir
from proxy.record import Record
from proxy.record.events import Bus, RecordsCommitted
from proxy.store import insight, ledger
from proxy.store.base import AgentTotals, SessionTotals, StoreError, Summary, Totals
from proxy.store.payloads import hydrate
from proxy.store.pgsql import FTS_CONFIG, PgCompiled, compile_filter, fts_text
from proxy.store.query import EVERYTHING, Filter
from proxy.store.sql import _like
from proxy.store.sqlite import COLUMNS, to_row, to_summary
from proxy.store.writer import JournaledStore
from proxy.translate.notes import Note

try:
    import psycopg
    from psycopg import conninfo as _conninfo
except ImportError as exc:  # pragma: no cover - the message is the point
    raise StoreError(
        "a postgresql:// store needs psycopg 3: pip install 'gatewatch[postgres]' (or pip install 'psycopg[binary]')"
    ) from exc

log = logging.getLogger("gatewatch.store")

SCHEMA = "gatewatch"
"""every table lives in this PostgreSQL schema: a shared database keeps its own tables apart"""
SCHEMA_VERSION = 1
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

_TYPES = (("REAL", "DOUBLE PRECISION"), ("INTEGER", "BIGINT"), ("BLOB", "BYTEA"))


def pg_type(ddl: str) -> str:
    """A column's SQLite declaration in PostgreSQL's words."""
    for lite, pg in _TYPES:
        ddl = re.sub(rf"\b{lite}\b", pg, ddl)
    return ddl


_NAMES = [c.name for c in COLUMNS]
_SUMMARY_FIELDS = [f.name for f in fields(Summary)][1:]  # after seq
_SUMMARY_COLS = ", ".join(["seq", *_SUMMARY_FIELDS])
_INSERT = (
    f"INSERT INTO records ({', '.join(_NAMES)}, data, fts) VALUES ("
    + ", ".join(["%s"] * (len(_NAMES) + 1))
    + f", to_tsvector('{FTS_CONFIG}', %s) || to_tsvector('{FTS_CONFIG}', %s)) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
_BLOB_REF = r'\{"\$blob":"([0-9a-f]{40})"\}'


def _ddl() -> list[str]:
    cols = ", ".join(f"{c.name} {pg_type(c.ddl)}" for c in COLUMNS)
    stmts = [
        f"CREATE TABLE IF NOT EXISTS records (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {cols}, "
        "data BYTEA, fts TSVECTOR)",
        # a column added to COLUMNS after this database was made
        *(f"ALTER TABLE records ADD COLUMN IF NOT EXISTS {c.name} {pg_type(c.ddl)}" for c in COLUMNS),
        "CREATE INDEX IF NOT EXISTS records_started ON records (started_at, seq)",
        "CREATE INDEX IF NOT EXISTS records_model ON records (request_model, started_at)",
        "CREATE INDEX IF NOT EXISTS records_target ON records (target, started_at)",
        "CREATE INDEX IF NOT EXISTS records_status ON records (status, started_at)",
        "CREATE INDEX IF NOT EXISTS records_session_agent ON records (session_id, agent_id)",
        "CREATE INDEX IF NOT EXISTS records_cost ON records (cost)",
        "CREATE INDEX IF NOT EXISTS records_latency ON records (latency_ms)",
        "CREATE INDEX IF NOT EXISTS records_fts ON records USING GIN (fts)",
        "CREATE INDEX IF NOT EXISTS records_id_prefix ON records (id text_pattern_ops)",
        "CREATE INDEX IF NOT EXISTS records_replay_of ON records (replay_of)",
        "CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, data BYTEA NOT NULL)",
    ]
    for sql in ledger.DDL:
        sql = pg_type(sql)
        # the ledger names a spawn by its rowid, which PostgreSQL tables don't have: give it one
        stmts.append(
            sql.replace("spawns (", "spawns (rowid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ", 1)
        )
    stmts += list(insight.DDL)
    return stmts


def redact(url: str) -> str:
    """The URL without its password, for messages and for the console that attaches."""
    if _misread(url):  # libpq's reading holds pieces of the password: the URL's own, after its last @
        rest = url.split("://", 1)[-1]
        userinfo, place = rest.rsplit("@", 1)
        return f"postgresql://{userinfo.split(':', 1)[0]}@{place.split('?', 1)[0]}"
    try:
        params = _conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://…"
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


def _secrets_of(url: str) -> list[str]:
    """The URL's password in every spelling a message could hold (as written, decoded), and the whole
    userinfo: a password holding `@`, `/` or `#` unescaped is read by libpq as a host or a port, and echoed."""
    found = set()
    try:
        pw = _conninfo.conninfo_to_dict(url).get("password")
        if pw:
            found.add(str(pw))
    except psycopg.Error:
        pass
    rest = url.split("://", 1)[-1]
    if "@" in rest:
        userinfo = rest.rsplit("@", 1)[0]
        found.add(userinfo)
        if ":" in userinfo:
            raw = userinfo.split(":", 1)[1]
            found.update({raw, unquote(raw)})
    for part in re.findall(r"(?:^|[?&])password=([^&#]*)", url.split("?", 1)[-1] if "?" in url else ""):
        found.update({part, unquote(part)})
    return sorted((f for f in found if f), key=len, reverse=True)


def hide_password(text: str, url: str) -> str:
    """`text` with the URL's password (and userinfo) cut out."""
    for secret in _secrets_of(url):
        text = text.replace(secret, "***")
    return text


MISREAD = (
    "the URL's user and password could not be read as written (percent-encode an @, /, #, ? or space in "
    "the password: %40, %2F, %23, %3F, %20)"
)


def _misread(url: str) -> bool:
    """A password holding an unescaped `@ / # ?` or a space: libpq reads part of it as a host or a port and
    echoes that part in its errors, where no cutting-out can find it."""
    rest = url.split("://", 1)[-1]
    return rest.count("@") > 1 or ("@" in rest and any(c in rest.rsplit("@", 1)[0] for c in "/#? "))


def _said(exc: BaseException, url: str) -> str:
    """What psycopg said, without the password: libpq echoes parts of a connection string it could not read."""
    if _misread(url):
        return MISREAD
    return hide_password(str(exc).strip(), url)


def _clean(v: Any) -> Any:
    # PostgreSQL text can't hold NUL; a prompt that had one keeps a visible stand-in
    if isinstance(v, str) and "\x00" in v:
        return v.replace("\x00", "\ufffd")
    return v


class Qmark:
    """A psycopg connection that takes the ledger's qmark SQL (and SQLite's `instr`)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        sql = sql.replace("?", "%s").replace("instr(", "strpos(")
        return self.conn.execute(sql, [_clean(p) for p in parameters])


_schema_ready: set[str] = set()
_schema_lock = threading.Lock()


def connect(url: str, create: bool = True) -> psycopg.Connection[Any]:
    """A connection (autocommit; `transaction()` for writes) whose tables are in place; StoreError otherwise."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise StoreError(f"{redact(url)}: cannot connect: {_said(exc, url)}") from None
    try:
        with _schema_lock:
            if url not in _schema_ready:
                _ensure_schema(conn, url, create)
                if create:  # a reader's check made nothing: a writer of this process still adds columns
                    _schema_ready.add(url)
        conn.execute(f"SET search_path TO {SCHEMA}")
    except BaseException:
        conn.close()
        raise
    return conn


def _ensure_schema(conn: psycopg.Connection[Any], url: str, create: bool) -> None:
    meta = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.meta",)).fetchone()
    if meta is None or meta[0] is None:
        if not create:
            raise StoreError(f"{redact(url)}: no gatewatch tables in this database (nothing was created)")
    else:
        row = conn.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{redact(url)}: written by a newer gatewatch (schema {row[0]} > {SCHEMA_VERSION}); upgrade gatewatch"
            )
        if not create:
            return
    with conn.transaction():
        # replicas that start together: one makes the tables, the others wait for it
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f"SET LOCAL search_path TO {SCHEMA}")
        for sql in _ddl():
            conn.execute(sql)
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', %s) ON CONFLICT (key) DO NOTHING",
            (str(SCHEMA_VERSION),),
        )


class PostgresStore(JournaledStore):
    """The PostgreSQL `RecordStore`. Readers use a connection per thread; the writer, its own."""

    def __init__(
        self, url: str, secrets: list[str] | None = None, bus: Bus | None = None, create: bool = True
    ) -> None:
        super().__init__(secrets, bus)
        self.url = url
        self._errors = (psycopg.Error, StoreError, OSError)
        self.said = lambda exc: f"{type(exc).__name__}: {_said(exc, url)}"
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
    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self.url)

    @contextlib.contextmanager
    def _transaction(self, conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
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

    def _send_blobs(self, conn: psycopg.Connection[Any], blobs: dict[str, bytes]) -> None:
        """The shared parts the database may not have: all of them after a prune (any process's), else only
        those this writer has not committed before."""
        if self._pruned_now != self._pruned:
            self._known_blobs.clear()
            self._pruned = self._pruned_now
        fresh = [(h, part) for h, part in blobs.items() if h not in self._known_blobs]
        if fresh:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO blobs (hash, data) VALUES (%s, %s) ON CONFLICT (hash) DO NOTHING", fresh
                )
            self._adding_blobs.update(h for h, _ in fresh)

    def _insert(
        self, conn: psycopg.Connection[Any], items: list[tuple[Record, bytes]], blobs: dict[str, bytes]
    ) -> int:
        if blobs:
            self._send_blobs(conn, blobs)
        new: list[Record] = []
        rows = []
        over = self.insight.before(Qmark(conn), [rec for rec, _ in items])
        for rec, data in items:
            row = [_clean(v) for v in to_row(rec, data, over.get(rec.id))]
            row.append(_clean(fts_text(rec.preview[:FTS_MAX_CHARS])))
            row.append(_clean(fts_text((rec.response_text or "")[:FTS_MAX_CHARS])))
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
        ledger.roll_up(Qmark(conn), new)
        self.insight.after(Qmark(conn), new)
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
                log.debug("store watch: %s; listening again", _said(exc, self.url))
                time.sleep(1.0)

    # -- reading ------------------------------------------------------------------------------------------
    def reader(self) -> psycopg.Connection[Any]:
        """This thread's read connection (opened again when the server dropped it)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = connect(self.url, create=False)
            self._local.conn = conn
        return conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.reader().execute(sql, params).fetchall()
        except psycopg.OperationalError as exc:
            raise StoreError(f"{self.where}: {_said(exc, self.url)}") from None

    def count(self, flt: Filter = EVERYTHING, cap: int | None = None) -> int:
        c = compile_filter(flt)
        inner = f"SELECT 1 FROM records WHERE {c.where}"
        if cap is not None:
            inner += f" LIMIT {int(cap) + 1}"
        return int(self._read(f"SELECT count(*) FROM ({inner}) AS matching", c.params)[0][0])

    def page(
        self, flt: Filter = EVERYTHING, limit: int = 100, after: Summary | None = None, offset: int = 0
    ) -> list[Summary]:
        """Newest first, as SQLite's: by start time, or with free text by commit order (`seq`)."""
        c: PgCompiled = compile_filter(flt)
        where, params = c.where, list(c.params)
        if c.text:
            if after is not None:
                where += " AND seq < %s"
                params.append(after.seq)
            order = "seq DESC"
        else:
            if after is not None:
                where += " AND (started_at < %s OR (started_at = %s AND seq < %s))"
                params += [after.started_at, after.started_at, after.seq]
            order = "started_at DESC, seq DESC"
        rows = self._read(
            f"SELECT {_SUMMARY_COLS} FROM records WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return [to_summary(r) for r in rows]

    def ids(self, prefix: str, limit: int = 2) -> list[str]:
        """The ids that start with `prefix` (with or without its `req_`), at most `limit`: an id as typed."""
        want = prefix if prefix.startswith("req_") else "req_" + prefix
        # LIKE over the text_pattern_ops index (a prefix range would follow the database's collation)
        rows = self._read(
            "SELECT id FROM records WHERE id LIKE %s ESCAPE '\\' ORDER BY id LIMIT %s",
            (_like(want) + "%", limit),
        )
        return [r[0] for r in rows]

    def get(self, record_id: str) -> Record | None:
        rows = self._read("SELECT data FROM records WHERE id = %s", (record_id,))
        if not rows:
            return None
        conn = Qmark(self.reader())
        return Record.model_validate(insight.complete(conn, hydrate(bytes(rows[0][0]), conn)))

    def _scan(self, flt: Filter, cols: str, batch: int = 500) -> Iterator[tuple[Any, ...]]:
        """Every matching row, oldest first, through a server-side cursor on a connection of its own."""
        c = compile_filter(flt)
        conn = connect(self.url, create=False)
        try:
            with conn.transaction(), conn.cursor(name="gatewatch_scan") as cur:
                cur.itersize = batch
                cur.execute(
                    f"SELECT {cols} FROM records WHERE {c.where} ORDER BY started_at, seq",
                    c.params,
                )
                yield from cur
        finally:
            conn.close()

    def iter_records(self, flt: Filter = EVERYTHING) -> Iterator[dict[str, Any]]:
        blobs = Qmark(self.reader())
        for data, notes, prompt_id in self._scan(flt, "data, notes, prompt_id"):
            doc = hydrate(bytes(data), blobs)
            yield insight.complete(blobs, doc) if insight.learnt(notes, prompt_id) else doc

    def summaries(self, flt: Filter = EVERYTHING) -> Iterator[Summary]:
        for row in self._scan(flt, _SUMMARY_COLS):
            yield to_summary(row)

    def totals(self, since: float) -> Totals:
        cost, cost_since, n = self._read(
            "SELECT coalesce(sum(cost), 0), coalesce(sum(CASE WHEN started_at >= %s THEN cost END), 0), "
            "count(*) FROM records",
            (since,),
        )[0]
        return Totals(float(cost), float(cost_since), since, int(n), self.stats.written, self.stats.lost)

    def _ledger(self, conn: Any) -> Any:
        return Qmark(conn)

    # -- findings, turns, Claude Code's view (proxy/store/insight.py) ----------------------------------------
    def findings(self, record_ids: Sequence[str]) -> dict[str, list[Note]]:
        return insight.findings(Qmark(self.reader()), record_ids)

    def prompts(self, prompt_ids: Sequence[str]) -> dict[str, str | None]:
        return insight.prompts(Qmark(self.reader()), prompt_ids)

    def turns(self, session_id: str) -> list[insight.Turn]:
        return insight.turns(Qmark(self.reader()), session_id)

    def latest_turns(self, session_ids: Sequence[str], per: int) -> dict[str, list[insight.Turn]]:
        return insight.latest_turns(Qmark(self.reader()), session_ids, per)

    def session_views(self, session_ids: Sequence[str]) -> dict[str, insight.SessionView]:
        return insight.session_views(Qmark(self.reader()), session_ids)

    def session_view(self, session_id: str) -> insight.SessionView:
        return insight.session_view(Qmark(self.reader()), session_id)

    # -- the ledger (proxy/store/ledger.py) -----------------------------------------------------------------
    def sessions(self, limit: int = 50, since: float | None = None) -> list[SessionTotals]:
        return ledger.sessions(Qmark(self.reader()), limit, since)

    def session(self, session_id: str) -> SessionTotals | None:
        return ledger.session(Qmark(self.reader()), session_id)

    def agents(self, session_id: str) -> list[AgentTotals]:
        return ledger.agents(Qmark(self.reader()), session_id)

    def spend_today(self) -> float:
        try:
            return ledger.spend_on(Qmark(self.reader()), ledger.day_of(time.time()))
        except psycopg.OperationalError as exc:  # the server went away under a kept connection
            raise StoreError(f"{self.where}: {_said(exc, self.url)}") from None

    def budget_connection(self) -> Any:
        """A connection of its own for the budget's thread; a statement that hangs (a stalled server) is cut
        by the server after `BUDGET_STATEMENT_S`, though the budget stopped waiting long before."""
        conn = connect(self.url, create=False)
        conn.execute(f"SET statement_timeout = {int(BUDGET_STATEMENT_S * 1000)}")
        return Qmark(conn)

    @contextlib.contextmanager
    def budget_transaction(self, conn: Any) -> Iterator[Any]:
        """An admission: every replica's takes one advisory lock, so two can't both take the last room."""
        with conn.conn.transaction():
            conn.conn.execute("SELECT pg_advisory_xact_lock(%s)", (BUDGET_LOCK,))
            yield conn

    def budget_exclusive(self, conn: Any) -> None:
        """Within an admission: also the writers' lock, so a late reservation and its call's record can't
        cross (the record committed after this read would not delete it)."""
        conn.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def session_spend(self, session_id: str) -> float:
        try:
            s = ledger.session(Qmark(self.reader()), session_id)
        except psycopg.OperationalError as exc:
            raise StoreError(f"{self.where}: {_said(exc, self.url)}") from None
        return s.cost if s is not None else 0.0

    def prune(self, older_than_s: float) -> int:
        """Delete old records, their roll-ups and the shared parts nothing names any more; under the writers'
        lock, so a part a writer is adding again is not taken from under it."""
        cutoff = time.time() - older_than_s
        conn = connect(self.url, create=False)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                n = conn.execute("DELETE FROM records WHERE started_at < %s", (cutoff,)).rowcount
                ledger.prune(Qmark(conn), cutoff)
                insight.prune(Qmark(conn), cutoff)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('pruned', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (uuid.uuid4().hex,),
                )
                conn.execute(
                    "DELETE FROM blobs WHERE hash NOT IN (SELECT (regexp_matches(convert_from(data, 'UTF8'), "
                    "%s, 'g'))[1] FROM records)",
                    (_BLOB_REF,),
                )
            return n
        finally:
            conn.close()
