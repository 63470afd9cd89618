"""The filter language shared by the CLI, the console and export: `parse(text)` reads it once into a `Filter`
(data, no SQL); each store compiles a Filter to its own query language.

Every term is described once, in `TERMS`: the help screen, the README table, the CLI help and the error for an
unknown field are all written from it (the table below is appended from it too).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import fnmatch
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from proxy import registry
from proxy.translate.notes import KINDS

MAX_TERMS = 200
"""More terms than this is refused (SQLite's expression depth ends near 1,000, with a traceback)."""


class QueryError(ValueError):
    """A filter the language can't read; the message says which term and why."""


# -- the conditions a filter is made of ---------------------------------------------------------------------
Op = Literal[">", ">=", "<", "<=", "="]
_OPS: dict[str, Op] = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "=", "": "="}


@dataclass(frozen=True, slots=True)
class Glob:
    """Any of `fields` matches `pattern` (a glob; a plain word matches anywhere in the value)."""

    fields: tuple[str, ...]
    pattern: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Equals:
    field: str
    value: str | int | bool
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Prefix:
    field: str
    value: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: Op
    value: float
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Ago:
    """field op (now - seconds), `now` taken when the filter runs: `since:15m` slides with the clock."""

    field: str
    op: Op
    seconds: float
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Range:
    """lo <= field < hi"""

    field: str
    lo: float
    hi: float
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Present:
    """The field has a value (not null)."""

    field: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    """The call failed: no status, a status >= 400 or an error type."""

    negated: bool = False


@dataclass(frozen=True, slots=True)
class UsedTool:
    name: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class HasNote:
    """One of the call's translation notes is of a kind matching `pattern` (a glob; a plain word matches
    anywhere in the kind)."""

    pattern: str
    negated: bool = False


Condition = Glob | Equals | Prefix | Compare | Ago | Range | Present | Failed | UsedTool | HasNote


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed filter: every condition and every free-text word must hold, no excluded word may match."""

    conditions: tuple[Condition, ...] = ()
    words: tuple[str, ...] = ()
    """free text: each word (or quoted phrase) must appear in the prompt or the response"""
    excluded: tuple[str, ...] = ()
    """negated free text: records where any of these appears are left out"""
    text: str = ""
    """what the user typed, to show back"""

    def __bool__(self) -> bool:
        return bool(self.conditions or self.words or self.excluded)


EVERYTHING = Filter()


# -- reading values ----------------------------------------------------------------------------------------
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


MAX_AGO_S = 10_000 * 365.25 * 86400
"""the longest duration a filter takes (10,000 years): past it, `now - duration` is no time at all"""
_EPOCH = dt.datetime(1970, 1, 1)
FIRST_YEAR = 1970
"""a date before this is an error, not a search: no record is older than the Unix epoch"""


def parse_duration(value: str) -> float | None:
    """'15m', '2h', '30d' → seconds; None when it isn't a duration."""
    m = _DURATION.match(value.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def _local_offset(naive: dt.datetime) -> dt.timedelta:
    """The local UTC offset at `naive`; today's where the platform's clock can't reach (year 1, year 9999)."""
    try:
        offset = naive.astimezone().utcoffset()
    except (ValueError, OverflowError, OSError):
        offset = dt.datetime.now().astimezone().utcoffset()
    return offset or dt.timedelta(0)


def timestamp(d: dt.datetime) -> float:
    """Seconds since the epoch for any datetime Python holds, year 1 to 9999 (a bare one is local time). The
    arithmetic is done without tz conversion, which fails near the ends of the range (`year 0 is out of
    range`)."""
    naive = d.replace(tzinfo=None)
    offset = d.utcoffset() if d.tzinfo is not None else _local_offset(naive)
    return (naive - _EPOCH).total_seconds() - (offset or dt.timedelta(0)).total_seconds()


def _time(op: Op, value: str) -> Condition:
    """A duration (how long ago) or a date: started_at compared with it."""
    seconds = parse_duration(value)
    if seconds is not None:
        if not seconds <= MAX_AGO_S:
            raise QueryError(f"since/until: {value!r} is longer than gatewatch reaches back (10,000 years)")
        return Ago("started_at", op, seconds)
    try:
        d = dt.datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            f"since/until: {value!r} is neither a duration (15m, 2h, 3d) nor a date (2026-11-24)"
        ) from None
    if d.year < FIRST_YEAR:
        raise QueryError(
            f"since/until: {value!r} is before {FIRST_YEAR}: no call is that old (dates run from "
            f"{FIRST_YEAR}-01-01 to 9999-12-31; to see everything, leave since: out)"
        )
    return Compare("started_at", op, timestamp(d))


def _yes(name: str, value: str) -> bool:
    v = value.lower()
    if v in ("yes", "y", "true", "1", "on"):
        return True
    if v in ("no", "n", "false", "0", "off"):
        return False
    raise QueryError(f"{name}:{value}: expected yes or no")


def _number(name: str, raw: str, unit: str) -> float:
    raw = raw.strip().lstrip("$")
    try:
        if unit == "ms":
            if raw.endswith("ms"):
                return float(raw[:-2])
            if raw.endswith("s"):
                return float(raw[:-1]) * 1000
        if unit == "tokens" and raw.lower().endswith("k"):
            return float(raw[:-1]) * 1000
        return float(raw)
    except ValueError:
        raise QueryError(f"{name}: {raw!r} is not a number") from None


def _status(value: str) -> Condition:
    v = value.lower()
    if v in ("error", "err", "fail"):
        return Failed()
    if v in ("ok", "success"):
        return Failed(negated=True)
    m = re.fullmatch(r"([1-5])xx", v)
    if m:
        lo = int(m.group(1)) * 100
        return Range("status", lo, lo + 100)
    m = re.fullmatch(r"(>=|<=|>|<|=)?(\d{3})", v)
    if m:
        return Compare("status", _OPS[m.group(1) or ""], int(m.group(2)))
    raise QueryError(f"status:{value}: use 200, 4xx, >=400, ok or error")


def _kind(value: str) -> Condition:
    v = value.lower()
    if v.startswith("count"):
        return Equals("kind", "count_tokens")
    if v in ("messages", "message"):
        return Equals("kind", "messages")
    raise QueryError(f"kind:{value}: use messages or count")


def _provider(value: str) -> Condition:
    v = value.lower()
    if registry.kind(v) is None:
        raise QueryError(f"provider:{value}: use one of {', '.join(registry.KINDS)}")
    return Equals("provider", v)


def _is_glob(value: str) -> bool:
    return "*" in value or "?" in value


def _session(value: str) -> Condition:
    """A glob (`session:4f2*-*`) or, as before, a prefix of the id."""
    return Glob(("session_id",), value) if _is_glob(value) else Prefix("session_id", value)


def _agent(value: str) -> Condition:
    """A sub-agent (a prefix of its id) and the agents it spawned (their `x-claude-code-parent-agent-id`)."""
    return Glob(("agent_id", "parent_agent_id"), value.replace("*", "").replace("?", "") + "*")


# -- the terms ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Term:
    """One term of the language: its name, an example, what it means, and how its value is read.

    `parse(value)` reads a `name:value` term; a numeric term (`unit` set) is written `name>value` with any
    of > >= < <= = and compares `field`."""

    name: str
    example: str
    help: str
    parse: Callable[[str], Condition] | None = None
    field: str = ""
    unit: str = ""


def _numeric(name: str, field: str, unit: str, example: str, help: str) -> Term:
    return Term(name, example, help, field=field, unit=unit)


TERMS: tuple[Term, ...] = (
    Term("text", 'bananas  "two words"', "full-text search over prompts and responses"),
    Term(
        "model",
        "model:flash  model:claude-*haiku*",
        "model asked for or that answered (globs too)",
        lambda v: Glob(("request_model", "response_model"), v),
    ),
    Term(
        "target",
        "target:vertex*",
        "the target that answered (globs too)",
        lambda v: Glob(("target",), v),
    ),
    Term("provider", "provider:vertex", "the answering target's provider", _provider),
    Term(
        "status",
        "status:200  status:4xx  status:>=400  status:error",
        "HTTP status, a class, or ok / error",
        _status,
    ),
    Term(
        "since",
        "since:15m  since:2026-11-24",
        "started within this long, or from this date",
        lambda v: _time(">=", v),
    ),
    Term(
        "until",
        "until:2h  until:2026-11-24",
        "started before that",
        lambda v: _time("<", v),
    ),
    Term("session", "session:4f2a*", "Claude Code session id (a prefix, or a glob)", _session),
    Term(
        "agent",
        "agent:<id>  agent:main",
        "Claude Code sub-agent id (a prefix) and the agents it spawned, or main",
        lambda v: Present("agent_id", negated=True) if v == "main" else _agent(v),
    ),
    Term("tool", "tool:Bash", "the model called this tool", lambda v: UsedTool(v)),
    Term(
        "note",
        "note:signature-injected  note:schema-*",
        "a translation note of this kind (globs too)",
        lambda v: _note(v),
    ),
    Term(
        "stream",
        "stream:yes",
        "streamed (yes) or one-shot (no)",
        lambda v: Equals("request_mode", "stream" if _yes("stream", v) else "oneshot"),
    ),
    Term("kind", "kind:count", "messages or count (count_tokens)", _kind),
    Term(
        "error",
        "error:yes",
        "the call ended in an error",
        lambda v: Present("error_type", negated=not _yes("error", v)),
    ),
    Term(
        "cancelled",
        "cancelled:yes",
        "the client went away before the answer ended",
        lambda v: Equals("cancelled", _yes("cancelled", v)),
    ),
    _numeric("cost", "cost", "usd", "cost>0.01", "USD (> >= < <= =, as every number term)"),
    _numeric("latency", "latency_ms", "ms", "latency>500  latency>2s", "whole call, ms (or s)"),
    _numeric("ttft", "ttft_ms", "ms", "ttft>300", "time to first token, ms (or s)"),
    _numeric("tokens", "total_tokens", "tokens", "tokens>10k", "all tokens of the call"),
    _numeric("input", "input_tokens", "tokens", "input>5000", "input tokens"),
    _numeric("output", "output_tokens", "tokens", "output>1k", "output tokens"),
    Term("-", "-model:pro  -router", "negates a term; -word leaves out its matches"),
)
_FIELDS = {t.name: t for t in TERMS if t.parse is not None}
_NUMBERS = {t.name: t for t in TERMS if t.unit}
_NUM_TERM = re.compile(r"^([a-z]+)(>=|<=|>|<|=)(.+)$")
_FIELD_NAME = re.compile(r"^[a-z_]+$")


def field_names() -> list[str]:
    return [t.name for t in TERMS if t.parse is not None or t.unit]


def _note(pattern: str) -> HasNote:
    """`note:` of a kind no translation produces would match nothing, silently: say so, with the kinds."""
    p = pattern.lower()
    glob = p if "*" in p or "?" in p else f"*{p}*"  # as the stores match: a plain word anywhere in the kind
    if not any(fnmatch.fnmatchcase(k, glob) for k in KINDS):
        near = difflib.get_close_matches(p, KINDS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise QueryError(f"note:{pattern}: no such note kind{hint}; kinds: {', '.join(KINDS)}")
    return HasNote(pattern)


def _unknown(name: str) -> QueryError:
    near = difflib.get_close_matches(name, field_names(), n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return QueryError(f"unknown field {name!r}{hint}; fields: {', '.join(field_names())}")


def _term(body: str) -> Condition | None:
    """The condition a `name:value` or `name>value` term stands for; None when it is free text."""
    bare = re.fullmatch(r"([a-z]+)(>=|<=|>|<|=)", body)
    if bare and bare.group(1) in _NUMBERS:  # `latency>` with its number forgotten is no text to search for
        raise QueryError(
            f"{bare.group(1)}: needs a number after {bare.group(2)} (e.g. {_NUMBERS[bare.group(1)].example.split()[0]})"
        )
    m = _NUM_TERM.match(body)
    if m and m.group(1) in _NUMBERS:
        name, op, raw = m.groups()
        t = _NUMBERS[name]
        return Compare(t.field, _OPS[op], _number(name, raw, t.unit))
    name, sep, value = body.partition(":")
    key = name.lower()
    if not sep:
        return None
    if key in _FIELDS:
        if not value and name != key:  # `Note:` in prose is text, `note:` a term missing its value
            return None
        if not value:
            raise QueryError(f"{key}: needs a value ({key}:…)")
        parse = _FIELDS[key].parse
        assert parse is not None
        return parse(value)
    # `modle:flash` is a typo, not a search for that text, and so is `modle:` with its value not typed yet
    # (searched as text it matched nothing, silently); `http://…`, `Note:` and `a:b:c` stay free text
    if _FIELD_NAME.match(name) and not value.startswith("/") and ":" not in value:
        raise _unknown(name)
    return None


def _tokens(text: str) -> list[str]:
    """Words and quoted phrases. An apostrophe that closes nothing (`it's`) is a letter, not a quote."""
    try:
        return shlex.split(text)
    except ValueError:
        pass
    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split, lex.quotes, lex.escape = True, '"', ""
    try:
        return list(lex)
    except ValueError:
        raise QueryError('unbalanced quotes: a "phrase" needs its closing "') from None


def parse(text: str) -> Filter:
    """Read a filter. Raises QueryError naming the offending term."""
    if "\x00" in (text or ""):
        raise QueryError("a filter can't contain a NUL character")
    tokens = _tokens(text or "")
    if len(tokens) > MAX_TERMS:
        raise QueryError(f"too many terms ({len(tokens)}); a filter takes at most {MAX_TERMS}")
    conditions: list[Condition] = []
    words: list[str] = []
    excluded: list[str] = []
    for token in tokens:
        if token == "-":
            raise QueryError("a lone '-' negates nothing: write -term or -word, with no space")
        negated = token.startswith("-") and len(token) > 1
        body = token[1:] if negated else token
        cond = _term(body)
        if cond is None:
            (excluded if negated else words).append(body)
        elif negated:
            conditions.append(dataclasses.replace(cond, negated=not cond.negated))
        else:
            conditions.append(cond)
    return Filter(tuple(conditions), tuple(words), tuple(excluded), text.strip())


# -- the help, written from TERMS --------------------------------------------------------------------------
def help_rows() -> list[tuple[str, str]]:
    """(example, meaning) for each term, in TERMS order."""
    return [(t.example, t.help) for t in TERMS]


def help_text(width: int = 34) -> str:
    """The language as plain text, for the CLI's help."""
    # an example longer than its column gets a line of its own
    lines = [
        f"  {ex:<{width}} {h}" if len(ex) <= width else f"  {ex}\n  {'':<{width}} {h}"
        for ex, h in help_rows()
    ]
    return "filter terms (ANDed):\n" + "\n".join(lines)


def markdown_table() -> str:
    """The README's table of terms."""
    rows = ["| term | example | meaning |", "|---|---|---|"]
    for t in TERMS:
        ex = "  ".join(f"`{e}`" for e in t.example.split("  "))
        rows.append(f"| {t.name} | {ex} | {t.help} |")
    return "\n".join(rows)


__doc__ = f"{__doc__}\n{help_text()}\n"
