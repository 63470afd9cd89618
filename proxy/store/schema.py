"""The schema on both databases, as numbered steps taken in order (`upgrade`), each in a transaction of its own
that the caller makes exclusive (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock). A step adds the
columns of `COLUMNS` whose `since` names it, then does its own work (tables, indexes, back-fills), written once
through the connection's dialect. The step a database reached is the dialect's to keep (SQLite's
`user_version`, PostgreSQL's `meta` table).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import orjson

from proxy.store import columns, insight, ledger
from proxy.store.base import Conn
from proxy.store.columns import note_kinds
from proxy.translate.notes import Note, from_text

BACKFILL_BATCH = 500
Begin = Callable[[Any], contextlib.AbstractContextManager[Any]]
"""a step's transaction on the connection, exclusive among the processes that may take it"""


def _records(conn: Conn) -> None:
    d = conn.dialect
    for sql in d.records_ddl(", ".join(c.ddl(d) for c in columns.COLUMNS if c.since == 1)):
        conn.execute(sql)


def _blobs(conn: Conn) -> None:
    # Content-addressed pieces of payloads: Claude Code sends the same system prompt and tools (~50 KB)
    # on every call; each distinct one is kept once.
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, data {conn.dialect.type('BLOB')} NOT NULL)"
    )


def _backfill(
    conn: Conn, column: str, value: Callable[[dict[str, Any]], Any], skip: bytes, where: str = ""
) -> None:
    """Fill `column` of older records from their JSON, `value(doc)`; the records whose JSON holds `skip` are
    left alone without being parsed (a byte search), so are those `where` (SQL) leaves out. In batches by row
    number: never more than one batch in memory."""
    d = conn.dialect
    seq = d.row
    after = 0
    while True:
        rows = conn.execute(
            f"SELECT {seq}, data FROM records WHERE {seq} > {d.p} AND {d.find_bytes('data')} = 0"
            f"{' AND ' + where if where else ''} ORDER BY {seq} LIMIT {BACKFILL_BATCH}",
            (after, skip),
        ).fetchall()
        for n, data in rows:
            try:
                doc = orjson.loads(data)
                filled = value(doc)
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                continue
            conn.execute(f"UPDATE records SET {column} = {d.p} WHERE {seq} = {d.p}", (filled, n))
        if len(rows) < BACKFILL_BATCH:
            return
        after = rows[-1][0]


def _cache_creation(conn: Conn) -> None:
    # cache_creation_tokens: priced and exported, so it gets a column; older records have it in their JSON, and
    # most of them wrote 0 (the column's default)
    _backfill(
        conn,
        "cache_creation_tokens",
        lambda doc: int((doc.get("usage") or {}).get("cache_creation_tokens") or 0),
        b'"cache_creation_tokens":0,',
    )


def _sessions(conn: Conn) -> None:
    # Claude Code's sub-agent and version as columns (the `agent:` filter, the sessions view), and the ledger's
    # roll-ups (proxy/store/ledger.py), filled from the records already there
    conn.execute(conn.dialect.index("records_session_agent", "records", "session_id, agent_id"))
    ledger.create(conn)
    ledger.backfill(conn)


def _kinds(doc: dict[str, Any]) -> str | None:
    raw = doc.get("notes") or []
    return note_kinds(
        [from_text(n) if isinstance(n, str) else Note(**n) for n in raw if isinstance(n, (str, dict))]
    )


def _replays_and_notes(conn: Conn) -> None:
    # replay_of: the call a replay sent again (`gatewatch replay`), indexed for the `replay_of:` filter and the
    # detail's link; older records were nobody's replay (NULL). The kinds of each record's translation notes,
    # for `note:KIND` and stats, read back from older records' notes (`translate.notes.from_text`)
    conn.execute(conn.dialect.index("records_replay_of", "records", "replay_of"))
    _backfill(conn, "notes", _kinds, b'"notes":[]', "notes IS NULL")


def _insight(conn: Conn) -> None:
    # Claude Code's telemetry joined to records, the findings of the detector and what the cache saved
    # (proxy/store/insight.py); older records have none of them. (Step 6 is a column: parent_agent_id.)
    insight.create(conn)


STEPS: dict[int, Callable[[Conn], None]] = {
    1: _records,
    2: _blobs,
    3: _cache_creation,
    4: _sessions,
    5: _replays_and_notes,
    7: _insight,
}


def latest() -> int:
    """The last step this gatewatch knows."""
    return max(max(STEPS), *(c.since for c in columns.COLUMNS))


SCHEMA_VERSION = latest()


def _add_columns(conn: Conn, step: int) -> None:
    new = [c for c in columns.COLUMNS if c.since == step]
    if step == 1 or not new:  # the first step makes the table with its columns
        return
    have = conn.dialect.columns_of(conn, "records")
    for c in new:
        if c.name not in have:
            conn.execute(f"ALTER TABLE records ADD COLUMN {c.ddl(conn.dialect)}")


def upgrade(conn: Conn, begin: Begin) -> None:
    """Take the steps this database has not taken, each in its `begin(conn)` transaction; one another process
    took meanwhile is skipped."""
    d = conn.dialect
    for step in range(d.version(conn) + 1, latest() + 1):
        with begin(conn):
            if d.version(conn) >= step:
                continue
            _add_columns(conn, step)
            run = STEPS.get(step)
            if run is not None:
                run(conn)
            d.set_version(conn, step)
