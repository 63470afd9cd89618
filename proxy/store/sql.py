"""A `Filter` as SQL over the records table, in a dialect's words (proxy/store/dialect.py): the conditions
over the column table's filterable columns (proxy/store/columns.py), and free text through the dialect's
full-text search (SQLite: FTS5; PostgreSQL: a tsvector column)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from proxy.store.columns import FILTERABLE
from proxy.store.dialect import SQLITE, Dialect, Param, escape_like
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

__all__ = ["Compiled", "Param", "compile_filter", "negate"]


@dataclass
class Compiled:
    where: str = "TRUE"
    """every condition, free text included, as one WHERE clause over `source`"""
    params: list[Param] = field(default_factory=list)
    text: bool = False
    """the filter has free text: a page goes newest first by commit order (`seq`)"""
    source: str = "records"
    seq: str = "records.rowid"
    """the records' commit order in `source`"""


def _col(name: str) -> str:
    if name not in FILTERABLE:
        raise ValueError(f"not a filterable column: {name}")
    return name


def _glob(value: str) -> str:
    """A glob → SQL LIKE; a plain word matches anywhere."""
    v = escape_like(value)
    if "*" in v or "?" in v:
        return v.replace("*", "%").replace("?", "_")
    return f"%{v}%"


def _clause(c: Condition, d: Dialect) -> tuple[str, list[Param]]:
    p, like = d.p, f"{d.like} {d.p} ESCAPE '\\'"
    if isinstance(c, Glob):
        # coalesce: a field with no value (NULL) matches nothing, so its negation (`-agent:x`) takes it
        return "(" + " OR ".join(f"coalesce({_col(f)}, '') {like}" for f in c.fields) + ")", [
            _glob(c.pattern)
        ] * len(c.fields)
    if isinstance(c, Equals):
        return f"{_col(c.field)} = {p}", [int(c.value) if isinstance(c.value, bool) else c.value]
    if isinstance(c, Prefix):
        return f"{_col(c.field)} {like}", [escape_like(c.value) + "%"]
    if isinstance(c, Compare):
        return f"{_col(c.field)} {c.op} {p}", [c.value]
    if isinstance(c, Ago):
        return f"{_col(c.field)} {c.op} {p}", [time.time() - c.seconds]
    if isinstance(c, Range):
        return f"({_col(c.field)} >= {p} AND {_col(c.field)} < {p})", [c.lo, c.hi]
    if isinstance(c, Present):
        return f"({_col(c.field)} IS NOT NULL)", []
    if isinstance(c, Failed):
        return "(status IS NULL OR status >= 400 OR error_type IS NOT NULL)", []
    if isinstance(c, HasNote):  # the kinds are a JSON array; each matched whole, so a glob never spans two
        has = d.json_array_has("records.notes", "{value} " + like)
        return f"(records.notes IS NOT NULL AND {has})", [_glob(c.pattern)]
    if isinstance(c, UsedTool):
        return f"tools_used {like}", [f"% {escape_like(c.name)} %"]
    raise TypeError(f"no SQL for {c!r}")


def negate(sql: str) -> str:
    """`sql` negated, NULL-safe, for every backend: a negated term keeps each record the term doesn't match,
    a record whose field is empty too (SQL's `NOT (x)` is NULL there, and NULL drops the record)."""
    return f"(({sql}) IS NOT TRUE)"


def compile_filter(flt: Filter, d: Dialect = SQLITE, drive: bool = True) -> Compiled:
    """`flt` in `d`'s SQL. `drive`: for a page or a count, free text may drive the query from its index (a
    join); else (a scan by start time) it is one more condition on `records`."""
    clauses: list[str] = []
    params: list[Param] = []
    for c in flt.conditions:
        sql, p = _clause(c, d)
        clauses.append(negate(sql) if c.negated else sql)
        params.extend(p)
    if flt.excluded:
        sql, p = d.exclude(flt.excluded)
        clauses.append(sql)
        params.extend(p)
    if not flt.words:
        return Compiled(" AND ".join(clauses) or "TRUE", params, False, "records", d.seq)
    s = d.search(flt.words, drive)
    if s.lead:
        where = s.where + (f" AND ({' AND '.join(clauses)})" if clauses else "")
        return Compiled(where, [*s.params, *params], True, s.source, s.seq)
    return Compiled(" AND ".join([*clauses, s.where]), [*params, *s.params], True, s.source, s.seq)
