"""A `Filter` as PostgreSQL: the same conditions as `sql.py` (ILIKE where SQLite's LIKE ignores ASCII case),
and free text over the `fts` tsvector column instead of FTS5.

Full text matches FTS5's default tokenizer (unicode61) as closely as PostgreSQL's own search allows. Text is
cut into tokens as unicode61 cuts it (runs of letters and digits; everything else, `_` `.` `/` `-` `@` too,
separates them, and diacritics are dropped) before PostgreSQL sees it: its own parser would keep `parser.py`,
`/usr/lib/x.so` or `a@b.com` whole, and `parser` would not find `parser.py` as it does with SQLite. Then the
`simple` configuration (lower case, no stemming, no stop words); each word of the search a phrase of its tokens
(`phraseto_tsquery`, like a quoted FTS5 string), every word required; an excluded word (`-word`) removes the
records it matches. The prompt and the response are indexed as two vectors joined, so a phrase never spans them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from proxy.store.query import Condition, Filter, HasNote
from proxy.store.sql import Param, _clause, _glob, negate

FTS_CONFIG = "simple"
_PHRASE = f"fts @@ phraseto_tsquery('{FTS_CONFIG}', %s)"


_SEPARATORS = re.compile(r"[\W_]+")


def fts_text(text: str) -> str:
    """Text as unicode61 tokenizes it, tokens joined by spaces (what is indexed, and what is searched)."""
    if not text.isascii():
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", text)


@dataclass
class PgCompiled:
    where: str = "TRUE"
    """every condition, free text included, as one WHERE clause over `records` (%s parameters)"""
    params: list[Param] = field(default_factory=list)
    text: bool = False
    """the filter has free text: pages go newest-first by commit order (`seq`), as SQLite's do"""


def _pg(sql: str) -> str:
    # sql.py's clauses use qmark parameters and SQLite's ASCII-case-insensitive LIKE; neither holds a literal
    # '?' or '%' (values are always parameters)
    return sql.replace("?", "%s").replace(" LIKE ", " ILIKE ")


def _pg_clause(c: Condition) -> tuple[str, list[Param]]:
    if isinstance(c, HasNote):  # the kinds are a JSON array; each matched whole, as sql.py's json_each does
        return (
            "(records.notes IS NOT NULL AND EXISTS (SELECT 1 FROM json_array_elements_text(records.notes::json) "
            "AS k(kind) WHERE kind ILIKE %s ESCAPE '\\'))"
        ), [_glob(c.pattern)]
    sql, p = _clause(c)
    return _pg(sql), p


def compile_filter(flt: Filter) -> PgCompiled:
    clauses: list[str] = []
    params: list[Param] = []
    for c in flt.conditions:
        sql, p = _pg_clause(c)
        clauses.append(negate(sql) if c.negated else sql)
        params.extend(p)
    for w in flt.words:
        clauses.append(_PHRASE)
        params.append(fts_text(w))
    for w in flt.excluded:
        clauses.append(negate(_PHRASE))
        params.append(fts_text(w))
    return PgCompiled(" AND ".join(clauses) or "TRUE", params, bool(flt.words))
