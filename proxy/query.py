"""The filter language shared by the CLI, the console and export: compiled once to SQL over the store.

    free text            full-text search over prompts and responses
    model:flash          requested or answering model contains "flash" (globs: model:claude-*haiku*)
    target:vertex-flash  the target that answered (globs too)
    status:200 | status:4xx | status:>=400 | status:error
    since:15m | since:2h | since:3d | since:2026-11-24 | until:…
    session:<id>         Claude Code session id (prefix)
    tool:Bash            the model called this tool
    cost>0.01  latency>500 (ms; 2s also)  ttft>300  tokens>10000
    stream:yes|no  kind:messages|count  error:yes|no  cancelled:yes
Terms are ANDed; a term may be negated with a leading '-' (-model:pro).
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import time
from dataclasses import dataclass, field


class QueryError(ValueError):
    """A filter the language can't read; the message says which term and why."""


@dataclass
class Compiled:
    where: str
    params: list = field(default_factory=list)
    text: str = ""
    """the free-text part, for FTS5"""
    match: str = ""
    """the FTS5 MATCH expression ('' without free text)"""
    base_where: str = ""
    base_params: list = field(default_factory=list)
    """the clauses other than free text (for queries that drive from the FTS index)"""

    def sql(self) -> tuple[str, list]:
        return self.where or "1", self.params


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NUM_OPS = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "="}
_NUMERIC = {
    "cost": "cost",
    "latency": "latency_ms",
    "ttft": "ttft_ms",
    "tokens": "total_tokens",
    "input": "input_tokens",
    "output": "output_tokens",
}
_NUM_TERM = re.compile(r"^(cost|latency|ttft|tokens|input|output)(>=|<=|>|<|=)(.+)$")


def parse_duration(value: str) -> float | None:
    """'15m', '2h', '30d' → seconds; None when it isn't a duration."""
    m = _DURATION.match(value.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def _time(value: str, now: float) -> float:
    seconds = parse_duration(value)
    if seconds is not None:
        return now - seconds
    try:
        d = dt.datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            f"since/until: {value!r} is neither a duration (15m, 2h, 3d) nor a date (2026-11-24)"
        ) from None
    if d.tzinfo is None:
        d = d.astimezone()  # a bare date means local time, as a person typing it means
    return d.timestamp()


def _glob(value: str) -> str:
    """A glob → SQL LIKE; a plain word matches anywhere."""
    v = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if "*" in v or "?" in v:
        return v.replace("*", "%").replace("?", "_")
    return f"%{v}%"


def _yes(value: str, term: str) -> bool:
    v = value.lower()
    if v in ("yes", "y", "true", "1", "on"):
        return True
    if v in ("no", "n", "false", "0", "off"):
        return False
    raise QueryError(f"{term}: expected yes or no")


def _status(value: str) -> tuple[str, list]:
    v = value.lower()
    if v in ("error", "err", "fail"):
        return "(status IS NULL OR status >= 400 OR error_type IS NOT NULL)", []
    if v in ("ok", "success"):
        return "(status < 400 AND error_type IS NULL)", []
    m = re.fullmatch(r"([1-5])xx", v)
    if m:
        lo = int(m.group(1)) * 100
        return "(status >= ? AND status < ?)", [lo, lo + 100]
    m = re.fullmatch(r"(>=|<=|>|<|=)?(\d{3})", v)
    if m:
        return f"status {m.group(1) or '='} ?", [int(m.group(2))]
    raise QueryError(f"status:{value}: use 200, 4xx, >=400, ok or error")


def _number(key: str, raw: str) -> float:
    raw = raw.strip().lstrip("$")
    try:
        if key in ("latency", "ttft"):
            if raw.endswith("ms"):
                return float(raw[:-2])
            if raw.endswith("s"):
                return float(raw[:-1]) * 1000
        if raw.lower().endswith("k") and key in ("tokens", "input", "output"):
            return float(raw[:-1]) * 1000
        return float(raw)
    except ValueError:
        raise QueryError(f"{key}: {raw!r} is not a number") from None


def compile(text: str, now: float | None = None) -> Compiled:
    """Compile a filter string. Raises QueryError with the offending term."""
    now = time.time() if now is None else now
    try:
        terms = shlex.split(text or "")
    except ValueError as exc:
        raise QueryError(f"unbalanced quotes: {exc}") from None
    clauses: list[str] = []
    params: list = []
    words: list[str] = []
    for term in terms:
        neg = term.startswith("-") and len(term) > 1 and (":" in term or _NUM_TERM.match(term[1:]))
        t = term[1:] if neg else term
        clause: str | None = None
        p: list = []
        m = _NUM_TERM.match(t)
        if m:
            key, op, raw = m.groups()
            clause, p = f"{_NUMERIC[key]} {_NUM_OPS[op]} ?", [_number(key, raw)]
        elif ":" in t and t.split(":", 1)[0].lower() in (
            "model",
            "target",
            "status",
            "since",
            "until",
            "session",
            "tool",
            "stream",
            "kind",
            "error",
            "cancelled",
            "provider",
        ):
            key, value = t.split(":", 1)
            key = key.lower()
            if not value:
                raise QueryError(f"{key}: needs a value ({key}:…)")
            if key == "model":
                clause, p = (
                    "(request_model LIKE ? ESCAPE '\\' OR response_model LIKE ? ESCAPE '\\')",
                    [_glob(value)] * 2,
                )
            elif key == "target":
                clause, p = "target LIKE ? ESCAPE '\\'", [_glob(value)]
            elif key == "provider":
                clause, p = "provider = ?", [value]
            elif key == "status":
                clause, p = _status(value)
            elif key == "since":
                clause, p = "started_at >= ?", [_time(value, now)]
            elif key == "until":
                clause, p = "started_at < ?", [_time(value, now)]
            elif key == "session":
                clause, p = "session_id LIKE ?", [value.replace("%", "") + "%"]
            elif key == "tool":
                clause, p = "tools_used LIKE ?", [f"% {value} %"]
            elif key == "stream":
                clause, p = "request_mode = ?", ["stream" if _yes(value, term) else "oneshot"]
            elif key == "kind":
                v = "count_tokens" if value.lower().startswith("count") else value.lower()
                clause, p = "kind = ?", [v]
            elif key == "error":
                clause = "(error_type IS NOT NULL)" if _yes(value, term) else "(error_type IS NULL)"
            elif key == "cancelled":
                clause, p = "cancelled = ?", [1 if _yes(value, term) else 0]
        else:
            words.append(term)
            continue
        if neg:
            clause = f"NOT ({clause})"
        clauses.append(clause)
        params.extend(p)
    fts = " ".join(words)
    base_where, base_params = " AND ".join(clauses), list(params)
    match = ""
    if fts:
        # Each word as a quoted FTS5 string: user text never becomes FTS syntax.
        match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        clauses.append("rowid IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)")
        params.append(match)
    return Compiled(" AND ".join(clauses), params, fts, match, base_where, base_params)
