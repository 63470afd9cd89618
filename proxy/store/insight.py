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

from ..insight import detector
from ..record import Record
from ..translate.notes import Note, kinds
from .base import Conn

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
    "CREATE INDEX IF NOT EXISTS records_session_prompt ON records(session_id, prompt_id)",
)
KEEP_DAYS_WITHOUT_RECORD = 7
"""telemetry whose record never came (a call to another gateway) is pruned with the records of its age"""


@dataclass(frozen=True, slots=True)
class Turn:
    """One user prompt of a Claude Code session: every call (and sub-agent call) it caused."""

    prompt_id: str
    first_seen: float
    last_seen: float
    calls: int
    agents: int
    """distinct agents among its calls (the main one counts)"""
    input_tokens: int
    cache_read_tokens: int
    cost: float
    cc_cost: float | None
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
    findings: dict[str, tuple[int, int, float]]
    """kind → (calls, tokens, $)"""

    @property
    def cache_share(self) -> float:
        whole = self.input_tokens + self.cache_read_tokens
        return self.cache_read_tokens / whole if whole else 0.0


def create(conn: Conn) -> None:
    for sql in DDL:
        conn.execute(sql)


class Insight:
    """The writer's side: the detector's state, fed each committed record in order."""

    def __init__(self) -> None:
        self.detector = detector.Detector()

    def roll(self, conn: Conn, records: Iterable[Record]) -> None:
        """Findings, savings and the telemetry join for newly committed records (in the writer's transaction)."""
        for r in records:
            found = self.detector.observe(r)
            for n in found:
                conn.execute(
                    "INSERT INTO findings (record_id, session_id, started_at, kind, detail, data, tokens, cost) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
            if found:
                every = kinds([*r.notes, *found])
                conn.execute(
                    "UPDATE records SET notes = ? WHERE id = ?", (orjson.dumps(every).decode(), r.id)
                )
            if r.usage.cache_read_tokens:
                saved = detector.saved(r)
                if saved:
                    conn.execute("UPDATE records SET cache_saved = ? WHERE id = ?", (saved, r.id))
            if r.session_id and r.kind == "messages":
                row = conn.execute(
                    "SELECT prompt_id, cost_usd, query_source FROM cc_calls WHERE request_id = ?", (r.id,)
                ).fetchone()
                if row is not None:
                    conn.execute(
                        "UPDATE records SET prompt_id = ?, cc_cost = ?, query_source = ? WHERE id = ?",
                        (row[0], row[1], row[2], r.id),
                    )


def telemetry(conn: Conn, events: Sequence[dict[str, Any]]) -> None:
    """Claude Code's events (`proxy/telemetry.py`'s dicts), stored and joined to records already there."""
    for e in events:
        if e.get("event") == "api_request" and e.get("request_id"):
            params = (
                e["request_id"],
                e.get("prompt_id"),
                e.get("session_id"),
                e.get("cost_usd"),
                e.get("query_source"),
                e.get("at"),
            )
            conn.execute(
                "INSERT INTO cc_calls (request_id, prompt_id, session_id, cost_usd, query_source, at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET prompt_id = excluded.prompt_id, "
                "session_id = excluded.session_id, cost_usd = excluded.cost_usd, "
                "query_source = excluded.query_source, at = excluded.at",
                params,
            )
            conn.execute(
                "UPDATE records SET prompt_id = ?, cc_cost = ?, query_source = ? WHERE id = ?",
                (e.get("prompt_id"), e.get("cost_usd"), e.get("query_source"), e["request_id"]),
            )
        elif e.get("event") == "user_prompt" and e.get("prompt_id"):
            conn.execute(
                "INSERT INTO cc_prompts (prompt_id, session_id, at, text, length) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (prompt_id) DO UPDATE SET session_id = excluded.session_id, at = excluded.at, "
                "text = coalesce(excluded.text, cc_prompts.text), length = excluded.length",
                (e["prompt_id"], e.get("session_id"), e.get("at"), e.get("text"), e.get("length")),
            )


def prune(conn: Conn, cutoff: float) -> None:
    conn.execute("DELETE FROM findings WHERE started_at < ?", (cutoff,))
    conn.execute("DELETE FROM cc_calls WHERE at < ?", (cutoff,))
    conn.execute("DELETE FROM cc_prompts WHERE at < ?", (cutoff,))


# -- reading -----------------------------------------------------------------------------------------------
def findings(conn: Conn, record_ids: Sequence[str]) -> dict[str, list[Note]]:
    """The findings of these records, by record."""
    out: dict[str, list[Note]] = {}
    for i in range(0, len(record_ids), 500):
        chunk = list(record_ids[i : i + 500])
        rows = conn.execute(
            f"SELECT record_id, kind, detail, data FROM findings WHERE record_id IN ({', '.join('?' * len(chunk))})",
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
        marks = ", ".join("?" * len(chunk))
        for pid, text in conn.execute(
            f"SELECT prompt_id, text FROM cc_prompts WHERE prompt_id IN ({marks})", chunk
        ).fetchall():
            out[pid] = text
    return out


def complete(conn: Conn, doc: dict[str, Any]) -> dict[str, Any]:
    """A stored record's JSON with what the writer learnt after it was serialised: its findings as notes,
    Claude Code's prompt id, cost estimate and query source."""
    rid = doc.get("id")
    if not isinstance(rid, str):
        return doc
    found = findings(conn, [rid]).get(rid)
    if found:
        doc["notes"] = [
            *(doc.get("notes") or []),
            *({"kind": n.kind, "detail": n.detail, "data": n.data} for n in found),
        ]
    row = conn.execute("SELECT prompt_id, cc_cost, query_source FROM records WHERE id = ?", (rid,)).fetchone()
    if row is not None:
        doc["prompt_id"], doc["cc_cost"], doc["query_source"] = row[0], row[1], row[2]
    return doc


def turns(conn: Conn, session_id: str, limit: int = 200) -> list[Turn]:
    """A session's turns (calls grouped by Claude Code's prompt id), the newest first."""
    rows = conn.execute(
        "SELECT prompt_id, min(started_at), max(started_at), count(*), count(DISTINCT coalesce(agent_id, '')), "
        "sum(input_tokens), sum(cache_read_tokens), coalesce(sum(cost), 0), sum(cc_cost), "
        "coalesce(sum(cache_saved), 0), sum(CASE WHEN notes IS NULL THEN 0 ELSE 1 END) "
        "FROM records WHERE session_id = ? AND prompt_id IS NOT NULL GROUP BY prompt_id "
        "ORDER BY min(started_at) DESC LIMIT ?",
        (session_id, limit),
    ).fetchall()
    texts: dict[str, str | None] = {}
    ids = [r[0] for r in rows]
    if ids:
        for pid, text in conn.execute(
            f"SELECT prompt_id, text FROM cc_prompts WHERE prompt_id IN ({', '.join('?' * len(ids))})", ids
        ).fetchall():
            texts[pid] = text
    return [
        Turn(
            r[0],
            r[1],
            r[2],
            int(r[3]),
            int(r[4]),
            int(r[5] or 0),
            int(r[6] or 0),
            float(r[7]),
            None if r[8] is None else float(r[8]),
            float(r[9]),
            0,
            texts.get(r[0]),
        )
        for r in rows
    ]


def session_view(conn: Conn, session_id: str) -> SessionView:
    row = conn.execute(
        "SELECT coalesce(sum(cost), 0), sum(cc_cost), coalesce(sum(input_tokens), 0), "
        "coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_saved), 0) FROM records WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    found: dict[str, tuple[int, int, float]] = {}
    for kind, calls, tokens, cost in conn.execute(
        "SELECT kind, count(DISTINCT record_id), coalesce(sum(tokens), 0), coalesce(sum(cost), 0) FROM findings "
        "WHERE session_id = ? GROUP BY kind",
        (session_id,),
    ).fetchall():
        found[kind] = (int(calls), int(tokens), float(cost))
    missed = found.get("cache-break", (0, 0, 0.0))[2]
    return SessionView(
        session_id,
        float(row[0]),
        None if row[1] is None else float(row[1]),
        int(row[2]),
        int(row[3]),
        float(row[4]),
        missed,
        found,
    )
