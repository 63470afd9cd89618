"""A `Filter` as SQLite: WHERE clauses over the records table and FTS5 MATCH expressions over records_fts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from proxy.store.query import (
    Ago,
    Compare,
    Condition,
    Equals,
    Failed,
    Filter,
    Glob,
    HasNote,
    Prefix,
    Present,
    Range,
    UsedTool,
)

# the columns a condition may name (a filter never puts anything but these into SQL)
FILTERABLE = frozenset(
    {
        "request_model",
        "response_model",
        "target",
        "provider",
        "status",
        "started_at",
        "session_id",
        "agent_id",
        "parent_agent_id",
        "request_mode",
        "kind",
        "error_type",
        "cancelled",
        "cost",
        "latency_ms",
        "ttft_ms",
        "total_tokens",
        "input_tokens",
        "output_tokens",
        "replay_of",
    }
)
_FTS_ROWS = "SELECT rowid FROM records_fts WHERE records_fts MATCH ?"
Param = str | int | float


@dataclass
class Compiled:
    where: str = ""
    """the clauses other than free text ('' when none), over the unaliased `records` table"""
    params: list[Param] = field(default_factory=list)
    match: str = ""
    """the FTS5 MATCH expression of the free text ('' without any)"""

    def full(self) -> tuple[str, list[Param]]:
        """Everything, free text included, as one WHERE clause (for queries that drive from `records`)."""
        clauses = [self.where] if self.where else []
        params = list(self.params)
        if self.match:
            clauses.append(f"records.rowid IN ({_FTS_ROWS})")
            params.append(self.match)
        return " AND ".join(clauses) or "1", params


def _col(name: str) -> str:
    if name not in FILTERABLE:
        raise ValueError(f"not a filterable column: {name}")
    return name


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _glob(value: str) -> str:
    """A glob → SQL LIKE; a plain word matches anywhere."""
    v = _like(value)
    if "*" in v or "?" in v:
        return v.replace("*", "%").replace("?", "_")
    return f"%{v}%"


def _match(words: tuple[str, ...]) -> str:
    # each word as a quoted FTS5 string: user text never becomes FTS syntax
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def _clause(c: Condition) -> tuple[str, list[Param]]:
    if isinstance(c, Glob):
        # coalesce: a field with no value (NULL) matches nothing, so its negation (`-agent:x`) takes it
        return "(" + " OR ".join(f"coalesce({_col(f)}, '') LIKE ? ESCAPE '\\'" for f in c.fields) + ")", [
            _glob(c.pattern)
        ] * len(c.fields)
    if isinstance(c, Equals):
        return f"{_col(c.field)} = ?", [int(c.value) if isinstance(c.value, bool) else c.value]
    if isinstance(c, Prefix):
        return f"{_col(c.field)} LIKE ? ESCAPE '\\'", [_like(c.value) + "%"]
    if isinstance(c, Compare):
        return f"{_col(c.field)} {c.op} ?", [c.value]
    if isinstance(c, Ago):
        return f"{_col(c.field)} {c.op} ?", [time.time() - c.seconds]
    if isinstance(c, Range):
        return f"({_col(c.field)} >= ? AND {_col(c.field)} < ?)", [c.lo, c.hi]
    if isinstance(c, Present):
        return f"({_col(c.field)} IS NOT NULL)", []
    if isinstance(c, Failed):
        return "(status IS NULL OR status >= 400 OR error_type IS NOT NULL)", []
    if isinstance(c, HasNote):  # each kind matched whole, so a glob never spans two kinds
        return (
            "(records.notes IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(records.notes) "
            "WHERE json_each.value LIKE ? ESCAPE '\\'))"
        ), [_glob(c.pattern)]
    if isinstance(c, UsedTool):
        return "tools_used LIKE ? ESCAPE '\\'", [f"% {_like(c.name)} %"]
    raise TypeError(f"no SQL for {c!r}")


def negate(sql: str) -> str:
    """`sql` negated, NULL-safe, for every backend: a negated term keeps each record the term doesn't match,
    a record whose field is empty too (SQL's `NOT (x)` is NULL there, and NULL drops the record)."""
    return f"(({sql}) IS NOT TRUE)"


def compile_filter(flt: Filter) -> Compiled:
    clauses: list[str] = []
    params: list[Param] = []
    for c in flt.conditions:
        sql, p = _clause(c)
        clauses.append(negate(sql) if c.negated else sql)
        params.extend(p)
    if flt.excluded:
        clauses.append(f"records.rowid NOT IN ({_FTS_ROWS})")
        params.append(" OR ".join(_match((w,)) for w in flt.excluded))
    return Compiled(" AND ".join(clauses), params, _match(flt.words))
