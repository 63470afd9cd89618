"""What differs between SQLite and PostgreSQL SQL, in one object per database (`SQLITE`, `POSTGRES`): parameter
marks, column types, the records' row number, full-text search, case-insensitive LIKE, JSON arrays, date
buckets, aggregates, index names, id prefixes, the schema's version. Every statement of the stores, the schema's
steps, the ledger, the findings and the filter compiler is written once, with its differences asked of the
dialect of the connection it runs on (`conn.dialect`), never rewritten afterwards.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.store.payloads import SHARED

Param = str | int | float


class _Executes(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...


def escape_like(value: str) -> str:
    """`value` matched literally by LIKE ... ESCAPE '\\'."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class Search:
    """Free text as a dialect searches it: the rows to read (`source`), their commit order (`seq`), the
    condition and its parameters; `lead`: the condition comes first (it drives the query)."""

    source: str
    seq: str
    where: str
    params: list[Param]
    lead: bool = False


@dataclass(frozen=True)
class Dialect:
    name: str
    p: str
    """a parameter's mark"""
    row: str
    """the records' row number, in commit order (keyset paging's tiebreak, free text's order)"""
    like: str
    """LIKE ignoring ASCII case (SQLite's own LIKE; PostgreSQL's ILIKE)"""
    types: dict[str, str] = field(default_factory=dict)
    """a column's portable type (`TEXT`, `INTEGER`, `REAL`, `BLOB`) in this database's words"""
    index_prefix: str = ""

    @property
    def seq(self) -> str:
        """`row`, qualified (a free-text page joins another table)."""
        return f"records.{self.row}"

    def marks(self, n: int) -> str:
        return ", ".join([self.p] * n)

    def type(self, portable: str) -> str:
        return self.types.get(portable, portable)

    def index(self, name: str, table: str, columns: str) -> str:
        return f"CREATE INDEX IF NOT EXISTS {self.index_prefix}{name} ON {table} ({columns})"

    # -- what each database spells its own way -------------------------------------------------------------
    def instr(self, haystack: str, needle: str) -> str:
        """The 1-based position of `needle` in `haystack` (0: absent)."""
        raise NotImplementedError

    def bucket(self, epoch: str, seconds: int) -> str:
        """`epoch` // `seconds`, an integer."""
        raise NotImplementedError

    def group_concat(self, expr: str) -> str:
        """The distinct values of `expr` in a group, joined by commas (NULL: none)."""
        raise NotImplementedError

    def serial(self) -> str:
        """A `rowid` column for a table that has none of its own ('' where every table has one)."""
        raise NotImplementedError

    def json_array_has(self, column: str, condition: str) -> str:
        """Some element of the JSON array of strings in `column` satisfies `condition` (on `{value}`)."""
        raise NotImplementedError

    def id_prefix(self, prefix: str) -> tuple[str, list[Param]]:
        """Ids that start with `prefix`, over an index."""
        raise NotImplementedError

    def find_bytes(self, column: str) -> str:
        """The 1-based position of the (bytes) parameter in the bytes of `column` (0: absent)."""
        raise NotImplementedError

    # -- the records table: its row number and its full text -----------------------------------------------
    def records_ddl(self, columns: str) -> list[str]:
        """The records table with `columns` (the column table's first ones), its full text and first indexes."""
        raise NotImplementedError

    def insert_records(self, names: Sequence[str]) -> str:
        """Insert a record's row (its columns, then its JSON, then its text for the full-text index where that
        is in the row); a record already there is left alone."""
        raise NotImplementedError

    def search(self, words: Sequence[str], drive: bool) -> Search:
        """Every word of the free text (a phrase each); `drive`: a page of them, newest first."""
        raise NotImplementedError

    def exclude(self, words: Sequence[str]) -> tuple[str, list[Param]]:
        """None of these words."""
        raise NotImplementedError

    def prune_text(self) -> list[str]:
        """Statements that forget the full text of the records started before the parameter."""
        raise NotImplementedError

    def blob_refs(self) -> tuple[str, list[Param]]:
        """A query of the hashes of the shared parts that records name (`payloads.SHARED`)."""
        raise NotImplementedError

    # -- the schema's version ------------------------------------------------------------------------------
    def columns_of(self, conn: _Executes, table: str) -> set[str]:
        raise NotImplementedError

    def version(self, conn: _Executes) -> int:
        """The last schema step this database took (proxy/store/schema.py)."""
        raise NotImplementedError

    def set_version(self, conn: _Executes, step: int) -> None:
        raise NotImplementedError


# -- SQLite ------------------------------------------------------------------------------------------------
_FTS_ROWS = "SELECT rowid FROM records_fts WHERE records_fts MATCH ?"


def _match(words: Sequence[str]) -> str:
    # each word as a quoted FTS5 string: user text never becomes FTS syntax
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


class Sqlite(Dialect):
    def instr(self, haystack: str, needle: str) -> str:
        return f"instr({haystack}, {needle})"

    def bucket(self, epoch: str, seconds: int) -> str:
        return f"CAST({epoch} / {seconds} AS INTEGER)"

    def group_concat(self, expr: str) -> str:
        return f"group_concat(DISTINCT {expr})"

    def serial(self) -> str:
        return ""

    def json_array_has(self, column: str, condition: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE {condition.format(value='json_each.value')})"

    def find_bytes(self, column: str) -> str:
        return f"instr({column}, ?)"

    def id_prefix(self, prefix: str) -> tuple[str, list[Param]]:
        # a range over the unique index, not a LIKE (which would scan every id)
        return "id >= ? AND id < ?", [prefix, prefix + "\U0010ffff"]

    def records_ddl(self, columns: str) -> list[str]:
        # started_at orders every page; the others are the history's filters (names as sqlite-utils made them)
        indexes = (
            "started_at",
            "request_model, started_at",
            "target, started_at",
            "status, started_at",
            "session_id",
            "cost",
            "latency_ms",
        )
        return [
            f"CREATE TABLE IF NOT EXISTS records (rowid INTEGER PRIMARY KEY, {columns}, data BLOB)",
            *(self.index("records_" + c.replace(", ", "_"), "records", c) for c in indexes),
            "CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(prompt, response)",
        ]

    def insert_records(self, names: Sequence[str]) -> str:
        # the full text goes to records_fts, by the new row's rowid (`SqliteStore._insert`)
        return (
            f"INSERT INTO records ({', '.join(names)}, data) VALUES ({self.marks(len(names) + 1)}) "
            "ON CONFLICT (id) DO NOTHING"
        )

    def search(self, words: Sequence[str], drive: bool) -> Search:
        if drive:
            # from the full-text index, newest first in rowid order: a page stops at its end instead of
            # collecting every match and sorting it by time (a common word costs what a rare one does)
            return Search(
                "records_fts JOIN records ON records.rowid = records_fts.rowid",
                "records_fts.rowid",
                "records_fts MATCH ?",
                [_match(words)],
                lead=True,
            )
        return Search("records", self.seq, f"records.rowid IN ({_FTS_ROWS})", [_match(words)])

    def exclude(self, words: Sequence[str]) -> tuple[str, list[Param]]:
        return f"records.rowid NOT IN ({_FTS_ROWS})", [" OR ".join(_match((w,)) for w in words)]

    def prune_text(self) -> list[str]:
        return ["DELETE FROM records_fts WHERE rowid IN (SELECT rowid FROM records WHERE started_at < ?)"]

    def blob_refs(self) -> tuple[str, list[Param]]:
        refs = " UNION ".join(
            f"SELECT json_extract(data, '$.{part}.{key}.\"$blob\"') AS h FROM records"
            for part, keys in SHARED.items()
            for key in keys
        )
        return f"SELECT h FROM ({refs}) WHERE h IS NOT NULL", []

    def columns_of(self, conn: _Executes, table: str) -> set[str]:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}

    def version(self, conn: _Executes) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def set_version(self, conn: _Executes, step: int) -> None:
        conn.execute(f"PRAGMA user_version = {int(step)}")


# -- PostgreSQL --------------------------------------------------------------------------------------------
PG_SCHEMA = "gatewatch"
"""every table lives in this PostgreSQL schema: a shared database keeps its own tables apart"""
PG_COMPATIBLE = 1
"""`meta.schema`: what an older gatewatch checks before it writes (its steps are all additive since)"""
PG_LEGACY_STEP = 4
"""a database made before the steps were counted (`meta.steps`): it was made with the ledger's tables"""
FTS_CONFIG = "simple"
_PHRASE = f"fts @@ phraseto_tsquery('{FTS_CONFIG}', %s)"
_TSVECTOR = f"to_tsvector('{FTS_CONFIG}', %s)"
_SEPARATORS = re.compile(r"[\W_]+")
_BLOB_REF = r'\{"\$blob":"([0-9a-f]{40})"\}'


def fts_text(text: str) -> str:
    """Text as FTS5's default tokenizer (unicode61) cuts it, tokens joined by spaces: what PostgreSQL indexes
    and searches, so `parser` finds `parser.py` there as it does in SQLite (its own parser would keep
    `parser.py`, `/usr/lib/x.so` or `a@b.com` whole); diacritics dropped, as unicode61 does."""
    if not text.isascii():
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", text)


def _negate(sql: str) -> str:
    return f"(({sql}) IS NOT TRUE)"


class Postgres(Dialect):
    def instr(self, haystack: str, needle: str) -> str:
        return f"strpos({haystack}, {needle})"

    def bucket(self, epoch: str, seconds: int) -> str:
        return f"floor({epoch} / {seconds})::bigint"

    def group_concat(self, expr: str) -> str:
        return f"string_agg(DISTINCT {expr}, ',')"

    def serial(self) -> str:
        return "rowid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "

    def json_array_has(self, column: str, condition: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM json_array_elements_text({column}::json) AS k(kind) "
            f"WHERE {condition.format(value='kind')})"
        )

    def find_bytes(self, column: str) -> str:
        return f"position(%s in {column})"

    def id_prefix(self, prefix: str) -> tuple[str, list[Param]]:
        # LIKE over the text_pattern_ops index (a prefix range would follow the database's collation)
        return "id LIKE %s ESCAPE '\\'", [escape_like(prefix) + "%"]

    def records_ddl(self, columns: str) -> list[str]:
        # `seq` numbers the rows in commit order (writers take one lock per batch); `fts` is the full text
        return [
            f"CREATE TABLE IF NOT EXISTS records (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {columns}, "
            "data BYTEA, fts TSVECTOR)",
            self.index("records_started", "records", "started_at, seq"),
            self.index("records_model", "records", "request_model, started_at"),
            self.index("records_target", "records", "target, started_at"),
            self.index("records_status", "records", "status, started_at"),
            self.index("records_cost", "records", "cost"),
            self.index("records_latency", "records", "latency_ms"),
            "CREATE INDEX IF NOT EXISTS records_fts ON records USING GIN (fts)",
            self.index("records_id_prefix", "records", "id text_pattern_ops"),
        ]

    def insert_records(self, names: Sequence[str]) -> str:
        # the prompt and the response as two vectors joined, so a phrase never spans them; RETURNING says
        # which rows were new (a batch is one pipelined executemany)
        return (
            f"INSERT INTO records ({', '.join(names)}, data, fts) VALUES ({self.marks(len(names) + 1)}, "
            f"{_TSVECTOR} || {_TSVECTOR}) ON CONFLICT (id) DO NOTHING RETURNING id"
        )

    def search(self, words: Sequence[str], drive: bool) -> Search:
        # each word a phrase of its tokens (like a quoted FTS5 string), every one required
        return Search("records", self.seq, " AND ".join([_PHRASE] * len(words)), [fts_text(w) for w in words])

    def exclude(self, words: Sequence[str]) -> tuple[str, list[Param]]:
        return " AND ".join([_negate(_PHRASE)] * len(words)), [fts_text(w) for w in words]

    def prune_text(self) -> list[str]:
        return []  # the full text is a column of the row

    def blob_refs(self) -> tuple[str, list[Param]]:
        # a pattern, not JSON: PostgreSQL's JSON refuses the \u0000 a record's text may hold
        return "SELECT (regexp_matches(convert_from(data, 'UTF8'), %s, 'g'))[1] FROM records", [_BLOB_REF]

    def columns_of(self, conn: _Executes, table: str) -> set[str]:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (PG_SCHEMA, table),
        ).fetchall()
        return {r[0] for r in rows}

    def version(self, conn: _Executes) -> int:
        if conn.execute("SELECT to_regclass(%s)", (f"{PG_SCHEMA}.meta",)).fetchone()[0] is None:
            return 0
        rows = dict(conn.execute(f"SELECT key, value FROM {PG_SCHEMA}.meta").fetchall())
        if "steps" in rows:
            return int(rows["steps"])
        return PG_LEGACY_STEP if "schema" in rows else 0

    def set_version(self, conn: _Executes, step: int) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', %s) ON CONFLICT (key) DO NOTHING",
            (str(PG_COMPATIBLE),),
        )
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('steps', %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(step),),
        )


SQLITE = Sqlite("sqlite", "?", "rowid", "LIKE", index_prefix="idx_")
POSTGRES = Postgres(
    "postgresql",
    "%s",
    "seq",
    "ILIKE",
    {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"},
)
