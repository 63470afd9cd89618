"""The records table's columns, one line each: its name, portable type, how a record fills it, how a `Summary`
reads it, the schema step that added it and whether a filter may name it. The schema (proxy/store/schema.py),
the inserts, the summaries' reads and the filter compiler (proxy/store/sql.py) all read this table; a new
column is one line here (with `since` the next step) and a field of `Summary`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

import orjson

from proxy.record import Record
from proxy.store.base import Summary
from proxy.store.dialect import Dialect
from proxy.translate.notes import Note, kinds


def _int(v: Any) -> int:
    return int(v or 0)


def _same(v: Any) -> Any:
    return v


def _text(v: Any) -> str:
    return v or ""


def note_kinds(notes: list[Note]) -> str | None:
    """The `notes` column: the kinds of a record's notes as a JSON array (NULL without any)."""
    return orjson.dumps(kinds(notes)).decode() if notes else None


def _load_kinds(v: Any) -> tuple[str, ...]:
    return tuple(orjson.loads(v)) if v else ()


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: Literal["TEXT", "INTEGER", "REAL"]
    """portable: each dialect says it in its words"""
    get: Callable[[Record], Any]
    load: Callable[[Any], Any] = _same
    """the column's value as `Summary` holds it"""
    since: int = 1
    """the schema step that adds it"""
    extra: str = ""
    """constraints after the type"""
    filterable: bool = False
    """a filter's condition may name it (proxy/store/sql.py)"""

    def ddl(self, d: Dialect) -> str:
        return f"{self.name} {d.type(self.type)}" + (f" {self.extra}" if self.extra else "")


def _field(name: str, filterable: bool = True, since: int = 1) -> Column:
    """A TEXT column holding the record's field of the same name."""
    return Column(name, "TEXT", lambda r: getattr(r, name), since=since, filterable=filterable)


COLUMNS: tuple[Column, ...] = (
    Column("id", "TEXT", lambda r: r.id, extra="UNIQUE NOT NULL"),
    Column("started_at", "REAL", lambda r: r.started_at, extra="NOT NULL", filterable=True),
    Column("ended_at", "REAL", lambda r: r.ended_at),
    _field("kind"),
    Column("status", "INTEGER", lambda r: r.status, filterable=True),
    Column("request_model", "TEXT", lambda r: r.request_model, _text, filterable=True),
    _field("response_model"),
    _field("target"),
    _field("provider"),
    _field("request_mode"),
    _field("session_id"),
    Column("client_ip", "TEXT", lambda r: r.client_ip, _text),
    Column("user_agent", "TEXT", lambda r: r.user_agent, _text),
    Column("path", "TEXT", lambda r: r.path, _text),
    Column("input_tokens", "INTEGER", lambda r: r.usage.input_tokens, _int, filterable=True),
    Column("output_tokens", "INTEGER", lambda r: r.usage.output_tokens, _int, filterable=True),
    Column("cache_read_tokens", "INTEGER", lambda r: r.usage.cache_read_tokens, _int),
    Column("thinking_tokens", "INTEGER", lambda r: r.usage.thinking_tokens, _int),
    Column("total_tokens", "INTEGER", lambda r: r.usage.total_tokens, _int, filterable=True),
    Column("cost", "REAL", lambda r: r.usage.cost, filterable=True),
    Column("latency_ms", "REAL", lambda r: r.latency_ms, filterable=True),
    Column("ttft_ms", "REAL", lambda r: r.usage.time_to_first_token, filterable=True),
    Column("ttfb_ms", "REAL", lambda r: r.usage.time_to_first_byte),
    Column("time_per_token", "REAL", lambda r: r.usage.time_per_token),
    _field("stop_reason", filterable=False),
    _field("error_type"),
    _field("error_message", filterable=False),
    Column("cancelled", "INTEGER", lambda r: int(r.cancelled), bool, filterable=True),
    # spaces around every name, so `tool:Bash` is one LIKE '% Bash %'
    Column(
        "tools_used",
        "TEXT",
        lambda r: " " + " ".join(r.tools_used) + " ",
        lambda v: tuple((v or "").split()),
    ),
    Column("attempts", "INTEGER", lambda r: len(r.tried_targets), _int),
    Column("preview", "TEXT", lambda r: r.preview, _text),
    Column(
        "cache_creation_tokens",
        "INTEGER",
        lambda r: r.usage.cache_creation_tokens,
        _int,
        since=3,
        extra="NOT NULL DEFAULT 0",
    ),
    _field("agent_id", since=4),
    _field("cc_version", filterable=False, since=4),
    Column(
        "cc_is_subagent",
        "INTEGER",
        lambda r: None if r.cc_is_subagent is None else int(r.cc_is_subagent),
        lambda v: None if v is None else bool(v),
        since=4,
    ),
    _field("replay_of", since=5),
    # the kinds of the record's translation notes (and of its findings): `note:KIND`, stats
    Column("notes", "TEXT", lambda r: note_kinds(r.notes), _load_kinds, since=5),
    _field("parent_agent_id", since=6),
    # Claude Code's telemetry joined by request id, and what the cache saved: filled by the writer
    # (proxy/store/insight.py), usually after the row is written
    _field("prompt_id", filterable=False, since=7),
    Column("cc_cost", "REAL", lambda r: r.cc_cost, since=7),
    _field("query_source", filterable=False, since=7),
    Column("cache_saved", "REAL", lambda r: None, since=7),
)
NAMES = tuple(c.name for c in COLUMNS)
_GETS = tuple(c.get for c in COLUMNS)
BY_NAME = {c.name: c for c in COLUMNS}
FILTERABLE = frozenset(c.name for c in COLUMNS if c.filterable)
"""the columns a filter's condition may name (a filter never puts anything else into SQL)"""

# a summary row is read in `Summary`'s field order and built positionally: 100 rows a page, a page a keystroke
SUMMARY_FIELDS = tuple(f.name for f in fields(Summary))[1:]  # after seq (the row number)
_LOADS = [(i, BY_NAME[n].load) for i, n in enumerate(SUMMARY_FIELDS, 1) if BY_NAME[n].load is not _same]


def summary_columns(d: Dialect) -> str:
    """What a summary row selects, over `records`."""
    return ", ".join([d.seq, *(f"records.{n}" for n in SUMMARY_FIELDS)])


def to_row(rec: Record, data: bytes, over: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The columns of a record in `COLUMNS`' order, and `data`, its JSON from `serialize_parts`; `over`:
    columns the writer filled (proxy/store/insight.py: findings' kinds, what the cache saved, Claude Code's
    telemetry)."""
    if over:
        return (*(over[c.name] if c.name in over else c.get(rec) for c in COLUMNS), data)
    row = [get(rec) for get in _GETS]  # a list, not a generator unpacked: half the steps per column
    row.append(data)
    return tuple(row)


def to_summary(row: Any) -> Summary:
    values = list(row)
    for i, load in _LOADS:
        values[i] = load(values[i])
    return Summary(*values)
