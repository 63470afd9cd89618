"""What the writer adds beside each record, off the calls' path (`proxy/insight`): the detector's findings
(a `findings` row each, their kinds added to the record's `notes` column so `note:cache-break` finds them),
what the cache saved, and Claude Code's telemetry joined by request id whichever arrives first.

- `findings`: one row per finding (record, session, kind, detail, data, tokens and $ at stake).
- `cc_calls`: Claude Code's `api_request` events by request id (= the record id the gateway answered with):
  its prompt id, cost estimate and query source, copied onto the record when both are there.
- `cc_prompts`: Claude Code's `user_prompt` events: the prompt id, and its text when Claude Code sent it and
  payloads are kept.

Only the writer calls `Insight.roll` and `telemetry`; readers use `findings`, `turns` and `session_view`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.insight import detector
from proxy.record import Record
from proxy.store.base import Conn
from proxy.translate.notes import Note, kinds

DDL = (
    """CREATE TABLE IF NOT EXISTS findings (
        record_id TEXT NOT NULL, session_id TEXT, started_at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL,
        detail TEXT NOT NULL, data TEXT, tokens BIGINT NOT NULL DEFAULT 0, cost DOUBLE PRECISION)""",
    "CREATE INDEX IF NOT EXISTS findings_record ON findings(record_id)",
    "CREATE INDEX IF NOT EXISTS findings_session ON findings(session_id)",
    """CREATE TABLE IF NOT EXISTS cc_calls (
        request_id TEXT PRIMARY KEY, prompt_id TEXT, session_id TEXT, cost_usd DOUBLE PRECISION,
        query_source TEXT, at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS cc_prompts (
        prompt_id TEXT PRIMARY KEY, session_id TEXT, at DOUBLE PRECISION, text TEXT, length BIGINT)""",
    # roll-ups, as the ledger's: a session's and a turn's figures are one indexed row however many calls
    """CREATE TABLE IF NOT EXISTS session_insight (
        session_id TEXT PRIMARY KEY, saved DOUBLE PRECISION NOT NULL DEFAULT 0, cc_cost DOUBLE PRECISION,
        cc_calls BIGINT NOT NULL DEFAULT 0, findings BIGINT NOT NULL DEFAULT 0,
        missed DOUBLE PRECISION NOT NULL DEFAULT 0, wasted DOUBLE PRECISION NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS turns (
        session_id TEXT NOT NULL, prompt_id TEXT NOT NULL, first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL, calls BIGINT NOT NULL DEFAULT 0,
        input_tokens BIGINT NOT NULL DEFAULT 0, cache_read_tokens BIGINT NOT NULL DEFAULT 0,
        cost DOUBLE PRECISION NOT NULL DEFAULT 0, cc_cost DOUBLE PRECISION NOT NULL DEFAULT 0,
        saved DOUBLE PRECISION NOT NULL DEFAULT 0, findings BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (session_id, prompt_id))""",
    "CREATE INDEX IF NOT EXISTS turns_session_seen ON turns(session_id, first_seen)",
)


@dataclass(frozen=True, slots=True)
class Turn:
    """One user prompt of a Claude Code session: every call (and sub-agent call) it caused."""

    prompt_id: str
    first_seen: float
    last_seen: float
    calls: int
    input_tokens: int
    cache_read_tokens: int
    cost: float
    cc_cost: float
    """Claude Code's own estimate over the turn's calls"""
    saved: float
    findings: int
    text: str | None
    """the prompt's text when Claude Code sent it (OTEL_LOG_USER_PROMPTS=1) and payloads are kept"""

    @property
    def cache_share(self) -> float:
        whole = self.input_tokens + self.cache_read_tokens
        return self.cache_read_tokens / whole if whole else 0.0


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session's cache share, savings, findings and Claude Code's estimate beside Google's bill."""

    session_id: str
    cost: float
    cc_cost: float | None
    """Claude Code's own estimate over the calls its telemetry named (None: no telemetry)"""
    input_tokens: int
    cache_read_tokens: int
    saved: float
    """what the cache saved"""
    missed: float
    """what the cache breaks cost (their re-billed tokens at input price less the cache's)"""
    wasted: float
    """what the other findings' calls cost (repeats, retries, loops, fallbacks)"""
    findings: dict[str, tuple[int, int, float]]
    """kind → (calls, tokens, $); only when read for one session (`session_view`)"""
    found: int = 0
    """findings of every kind"""

    @property
    def cache_share(self) -> float:
        whole = self.input_tokens + self.cache_read_tokens
        return self.cache_read_tokens / whole if whole else 0.0


def create(conn: Conn) -> None:
    for sql in DDL:
        conn.execute(sql)


class Insight:
    """The writer's side: the detector's state, fed each committed record in order. `before` runs ahead of a
    batch's insert and answers the columns it fills (so a record's row is written once, never rewritten with
    its payloads); `after` writes the findings and the roll-ups of the records that were new."""

    def __init__(self) -> None:
        self.detector = detector.Detector()
        self._pending: dict[str, tuple[list[Note], float, tuple[Any, ...] | None]] = {}

    def before(self, conn: Conn, records: Iterable[Record]) -> dict[str, dict[str, Any]]:
        """Each record's findings, what the cache saved and its telemetry if that came first: the columns to
        write in its row (`notes`, `cache_saved`, `prompt_id`, `cc_cost`, `query_source`), by record id."""
        records = list(records)
        told = _told(conn, [r.id for r in records if r.session_id and r.kind == "messages"])
        over: dict[str, dict[str, Any]] = {}
        for r in records:
            found = self.detector.observe(r)
            saved = (detector.saved(r) or 0.0) if r.usage.cache_read_tokens else 0.0
            cols: dict[str, Any] = {}
            if found:
                cols["notes"] = orjson.dumps(kinds([*r.notes, *found])).decode()
            if saved:
                cols["cache_saved"] = saved
            joined = told.get(r.id)
            if joined is not None:
                cols.update(prompt_id=joined[0], cc_cost=joined[1], query_source=joined[2])
            if cols:
                over[r.id] = cols
            self._pending[r.id] = (found, saved, joined)
        return over

    def after(self, conn: Conn, new: Iterable[Record]) -> None:
        """The findings' rows and the turn and session roll-ups of the records just inserted: a session's
        additions summed over the batch in order and written once (as the ledger's roll-ups are)."""
        sessions: dict[str, list[Any]] = {}
        for r in new:
            found, saved, joined = self._pending.pop(r.id, ([], 0.0, None))
            for n in found:
                conn.execute(
                    "INSERT INTO findings (record_id, session_id, started_at, kind, detail, data, tokens, cost) "
                    f"VALUES ({conn.dialect.marks(8)})",
                    (
                        r.id,
                        r.session_id,
                        r.started_at,
                        n.kind,
                        n.detail,
                        orjson.dumps(n.data).decode(),
                        int(n.data.get("tokens") or 0),
                        n.data.get("cost"),
                    ),
                )
            if not r.session_id:
                continue
            if saved or found:
                missed = sum(float(n.data.get("cost") or 0) for n in found if n.kind == "cache-break")
                wasted = sum(float(n.data.get("cost") or 0) for n in found if n.kind != "cache-break")
                s = sessions.get(r.session_id)
                if s is None:
                    sessions[r.session_id] = [saved, len(found), missed, wasted]
                else:
                    s[0] += saved
                    s[1] += len(found)
                    s[2] += missed
                    s[3] += wasted
            if joined is not None:
                u = r.usage
                _turn_add(
                    conn,
                    r.session_id,
                    joined[0],
                    r.started_at,
                    u.input_tokens,
                    u.cache_read_tokens,
                    u.cost or 0.0,
                    joined[1],
                    saved,
                    len(found),
                )
        for sid, (saved, found_n, missed, wasted) in sessions.items():
            _session_add(conn, sid, saved=saved, findings=found_n, missed=missed, wasted=wasted)
        self._pending.clear()


def _told(conn: Conn, ids: Sequence[str]) -> dict[str, tuple[Any, Any, Any]]:
    """Claude Code's telemetry that came before these records: (prompt id, its cost, query source) by
    request id, read in one statement per 500 (not one per record)."""
    out: dict[str, tuple[Any, Any, Any]] = {}
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        rows = conn.execute(
            "SELECT request_id, prompt_id, cost_usd, query_source FROM cc_calls "
            f"WHERE request_id IN ({conn.dialect.marks(len(chunk))})",
            chunk,
        ).fetchall()
        for rid, pid, cost, source in rows:
            if pid:
                out[rid] = (pid, cost, source)
    return out


def _session_add(
    conn: Conn,
    sid: str,
    saved: float = 0.0,
    cc_cost: float | None = None,
    findings: int = 0,
    missed: float = 0.0,
    wasted: float = 0.0,
) -> None:
    conn.execute(
        "INSERT INTO session_insight AS s (session_id, saved, cc_cost, cc_calls, findings, missed, wasted) "
        f"VALUES ({conn.dialect.marks(7)}) ON CONFLICT (session_id) DO UPDATE SET saved = s.saved + excluded.saved, "
        "cc_cost = CASE WHEN excluded.cc_cost IS NULL THEN s.cc_cost "
        "ELSE coalesce(s.cc_cost, 0) + excluded.cc_cost END, cc_calls = s.cc_calls + excluded.cc_calls, "
        "findings = s.findings + excluded.findings, missed = s.missed + excluded.missed, "
        "wasted = s.wasted + excluded.wasted",
        (sid, saved, cc_cost, int(cc_cost is not None), findings, missed, wasted),
    )


def _turn_add(
    conn: Conn,
    sid: str,
    pid: str,
    at: float,
    input_tokens: int,
    read: int,
    cost: float,
    cc_cost: float | None,
    saved: float,
    findings: int,
) -> None:
    """One call more in a turn (and Claude Code's estimate of it in its session's figures)."""
    p = conn.dialect.p
    conn.execute(
        "INSERT INTO turns AS t (session_id, prompt_id, first_seen, last_seen, calls, input_tokens, "
        f"cache_read_tokens, cost, cc_cost, saved, findings) VALUES ({p}, {p}, {p}, {p}, 1, {p}, {p}, {p}, {p}, {p}, {p}) "
        "ON CONFLICT (session_id, prompt_id) DO UPDATE SET "
        "first_seen = CASE WHEN excluded.first_seen < t.first_seen THEN excluded.first_seen ELSE t.first_seen END, "
        "last_seen = CASE WHEN excluded.last_seen > t.last_seen THEN excluded.last_seen ELSE t.last_seen END, "
        "calls = t.calls + 1, input_tokens = t.input_tokens + excluded.input_tokens, "
        "cache_read_tokens = t.cache_read_tokens + excluded.cache_read_tokens, cost = t.cost + excluded.cost, "
        "cc_cost = t.cc_cost + excluded.cc_cost, saved = t.saved + excluded.saved, "
        "findings = t.findings + excluded.findings",
        (sid, pid, at, at, input_tokens, read, cost, cc_cost or 0.0, saved, findings),
    )
    if cc_cost is not None:
        _session_add(conn, sid, cc_cost=cc_cost)


def telemetry(conn: Conn, events: Sequence[dict[str, Any]]) -> None:
    """Claude Code's events (`proxy/edge/telemetry.py`'s dicts), stored and joined to records already there."""
    p = conn.dialect.p
    for e in events:
        if e.get("event") == "api_request" and e.get("request_id") and e.get("prompt_id"):
            rid, pid = str(e["request_id"]), str(e["prompt_id"])
            conn.execute(
                "INSERT INTO cc_calls (request_id, prompt_id, session_id, cost_usd, query_source, at) "
                f"VALUES ({conn.dialect.marks(6)}) ON CONFLICT (request_id) DO NOTHING",
                (rid, pid, e.get("session_id"), e.get("cost_usd"), e.get("query_source"), e.get("at")),
            )
            row = conn.execute(
                "SELECT session_id, started_at, input_tokens, cache_read_tokens, cost, cache_saved, prompt_id "
                f"FROM records WHERE id = {p}",
                (rid,),
            ).fetchone()
            if row is None or row[6] is not None or not row[0]:
                continue  # not here yet (joined when it comes), or joined already (an event sent twice)
            conn.execute(
                f"UPDATE records SET prompt_id = {p}, cc_cost = {p}, query_source = {p} WHERE id = {p}",
                (pid, e.get("cost_usd"), e.get("query_source"), rid),
            )
            (n,) = conn.execute(f"SELECT count(*) FROM findings WHERE record_id = {p}", (rid,)).fetchone()
            _turn_add(
                conn,
                row[0],
                pid,
                float(row[1]),
                int(row[2] or 0),
                int(row[3] or 0),
                float(row[4] or 0),
                e.get("cost_usd"),
                float(row[5] or 0),
                int(n),
            )
        elif e.get("event") == "user_prompt" and e.get("prompt_id"):
            conn.execute(
                f"INSERT INTO cc_prompts (prompt_id, session_id, at, text, length) VALUES ({conn.dialect.marks(5)}) "
                "ON CONFLICT (prompt_id) DO UPDATE SET session_id = excluded.session_id, at = excluded.at, "
                "text = coalesce(excluded.text, cc_prompts.text), length = excluded.length",
                (e["prompt_id"], e.get("session_id"), e.get("at"), e.get("text"), e.get("length")),
            )


def prune(conn: Conn, cutoff: float) -> None:
    p = conn.dialect.p
    conn.execute(f"DELETE FROM findings WHERE started_at < {p}", (cutoff,))
    conn.execute(f"DELETE FROM cc_calls WHERE at < {p}", (cutoff,))
    conn.execute(f"DELETE FROM cc_prompts WHERE at < {p}", (cutoff,))
    conn.execute(f"DELETE FROM turns WHERE last_seen < {p}", (cutoff,))
    conn.execute("DELETE FROM session_insight WHERE session_id NOT IN (SELECT session_id FROM sessions)")


# -- reading -----------------------------------------------------------------------------------------------
def findings(conn: Conn, record_ids: Sequence[str]) -> dict[str, list[Note]]:
    """The findings of these records, by record."""
    out: dict[str, list[Note]] = {}
    for i in range(0, len(record_ids), 500):
        chunk = list(record_ids[i : i + 500])
        rows = conn.execute(
            f"SELECT record_id, kind, detail, data FROM findings WHERE record_id IN ({conn.dialect.marks(len(chunk))})",
            chunk,
        ).fetchall()
        for rid, kind, detail, data in rows:
            out.setdefault(rid, []).append(Note(kind, detail, orjson.loads(data) if data else {}))
    return out


def prompts(conn: Conn, prompt_ids: Sequence[str]) -> dict[str, str | None]:
    """The text of these prompts where Claude Code sent it (None where it did not), by prompt id."""
    out: dict[str, str | None] = {}
    for i in range(0, len(prompt_ids), 500):
        chunk = list(prompt_ids[i : i + 500])
        marks = conn.dialect.marks(len(chunk))
        for pid, text in conn.execute(
            f"SELECT prompt_id, text FROM cc_prompts WHERE prompt_id IN ({marks})", chunk
        ).fetchall():
            out[pid] = text
    return out


def learnt(notes: str | None, prompt_id: str | None) -> bool:
    """Whether a row's record has more than its JSON holds (findings, or Claude Code's telemetry): what
    `complete` adds, so an export reads only those again."""
    return prompt_id is not None or (notes is not None and any(k in notes for k in detector.FINDINGS))


def complete(conn: Conn, doc: dict[str, Any]) -> dict[str, Any]:
    """A stored record's JSON with what the writer learnt after it was serialised: its findings as notes,
    Claude Code's prompt id, cost estimate and query source."""
    p = conn.dialect.p
    rid = doc.get("id")
    if not isinstance(rid, str):
        return doc
    found = findings(conn, [rid]).get(rid)
    if found:
        doc["notes"] = [
            *(doc.get("notes") or []),
            *({"kind": n.kind, "detail": n.detail, "data": n.data} for n in found),
        ]
    row = conn.execute(
        f"SELECT prompt_id, cc_cost, query_source FROM records WHERE id = {p}", (rid,)
    ).fetchone()
    if row is not None:
        doc["prompt_id"], doc["cc_cost"], doc["query_source"] = row[0], row[1], row[2]
    return doc


def turns(conn: Conn, session_id: str, limit: int = 200) -> list[Turn]:
    """A session's turns (its calls by Claude Code's prompt id), the newest first."""
    p = conn.dialect.p
    rows = conn.execute(
        "SELECT prompt_id, first_seen, last_seen, calls, input_tokens, cache_read_tokens, cost, cc_cost, saved, "
        f"findings FROM turns WHERE session_id = {p} ORDER BY first_seen DESC LIMIT {p}",
        (session_id, limit),
    ).fetchall()
    texts = prompts(conn, [r[0] for r in rows])
    return [
        Turn(
            r[0],
            float(r[1]),
            float(r[2]),
            int(r[3]),
            int(r[4]),
            int(r[5]),
            float(r[6]),
            float(r[7]),
            float(r[8]),
            int(r[9]),
            texts.get(r[0]),
        )
        for r in rows
    ]


def _view(row: Sequence[Any], by_kind: dict[str, tuple[int, int, float]]) -> SessionView:
    sid, cost, read, inp, saved, cc_cost, cc_calls, found, missed, wasted = row
    return SessionView(
        sid,
        float(cost or 0),
        None if not cc_calls else float(cc_cost or 0),
        int(inp or 0),
        int(read or 0),
        float(saved or 0),
        float(missed or 0),
        float(wasted or 0),
        by_kind,
        int(found or 0),
    )


_VIEW = (
    "SELECT s.session_id, s.cost, s.cache_read_tokens, s.input_tokens, i.saved, i.cc_cost, i.cc_calls, "
    "i.findings, i.missed, i.wasted FROM sessions s LEFT JOIN session_insight i ON i.session_id = s.session_id"
)


def session_views(conn: Conn, session_ids: Sequence[str]) -> dict[str, SessionView]:
    """Several sessions' figures at once, findings by kind included (the Sessions view's rows): three
    queries whatever the number of sessions."""
    if not session_ids:
        return {}
    ids = list(session_ids)
    marks = conn.dialect.marks(len(ids))
    kinds_of: dict[str, dict[str, tuple[int, int, float]]] = {}
    for sid, kind, calls, tokens, cost in conn.execute(
        "SELECT session_id, kind, count(DISTINCT record_id), coalesce(sum(tokens), 0), coalesce(sum(cost), 0) "
        f"FROM findings WHERE session_id IN ({marks}) GROUP BY session_id, kind",
        ids,
    ).fetchall():
        kinds_of.setdefault(sid, {})[kind] = (int(calls), int(tokens), float(cost))
    rows = conn.execute(f"{_VIEW} WHERE s.session_id IN ({marks})", ids).fetchall()
    return {r[0]: _view(r, kinds_of.get(r[0], {})) for r in rows}


def latest_turns(conn: Conn, session_ids: Sequence[str], per: int) -> dict[str, list[Turn]]:
    """The latest `per` turns of each session, oldest first (one query: a window over the turns' index)."""
    p = conn.dialect.p
    if not session_ids:
        return {}
    ids = list(session_ids)
    marks = conn.dialect.marks(len(ids))
    rows = conn.execute(
        "SELECT session_id, prompt_id, first_seen, last_seen, calls, input_tokens, cache_read_tokens, cost, "
        "cc_cost, saved, findings FROM (SELECT t.*, row_number() OVER (PARTITION BY session_id "
        f"ORDER BY first_seen DESC) AS n FROM turns t WHERE session_id IN ({marks})) latest WHERE n <= {p} "
        "ORDER BY session_id, first_seen",
        [*ids, per],
    ).fetchall()
    texts = prompts(conn, [r[1] for r in rows])
    out: dict[str, list[Turn]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(
            Turn(
                r[1],
                float(r[2]),
                float(r[3]),
                int(r[4]),
                int(r[5]),
                int(r[6]),
                float(r[7]),
                float(r[8]),
                float(r[9]),
                int(r[10]),
                texts.get(r[1]),
            )
        )
    return out


def session_view(conn: Conn, session_id: str) -> SessionView:
    """One session's figures with its findings by kind."""
    p = conn.dialect.p
    found: dict[str, tuple[int, int, float]] = {}
    for kind, calls, tokens, cost in conn.execute(
        "SELECT kind, count(DISTINCT record_id), coalesce(sum(tokens), 0), coalesce(sum(cost), 0) FROM findings "
        f"WHERE session_id = {p} GROUP BY kind",
        (session_id,),
    ).fetchall():
        found[kind] = (int(calls), int(tokens), float(cost))
    row = conn.execute(f"{_VIEW} WHERE s.session_id = {p}", (session_id,)).fetchone()
    if row is None:
        return SessionView(session_id, 0.0, None, 0, 0, 0.0, 0.0, 0.0, found, 0)
    return _view(row, found)
