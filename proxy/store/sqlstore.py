"""What both SQL stores share beyond the writer (proxy/store/writer.py): every read and `prune`, written once
through the dialect of the backend's connections (proxy/store/dialect.py). A backend gives it `reader()` (this
thread's connection), `_stream` (rows in constant memory) and `_maintenance` (a transaction that excludes the
writers)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from proxy.record import Record
from proxy.store import insight, ledger
from proxy.store.base import AgentTotals, SessionTotals, Summary, Totals
from proxy.store.columns import summary_columns, to_summary
from proxy.store.dialect import Dialect
from proxy.store.payloads import hydrate
from proxy.store.query import EVERYTHING, Filter
from proxy.store.sql import compile_filter
from proxy.store.writer import JournaledStore
from proxy.translate.notes import Note


def _json(data: Any) -> bytes | str:
    return data if isinstance(data, (bytes, str)) else bytes(data)


class SqlStore(JournaledStore):
    dialect: Dialect

    # -- what a backend provides ---------------------------------------------------------------------------
    def reader(self) -> Any:
        """This thread's read connection (its rows indexable by position)."""
        raise NotImplementedError

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        """Every row of a query, on a connection of its own (the caller may interleave reads), in constant
        memory."""
        raise NotImplementedError

    def _maintenance(self) -> contextlib.AbstractContextManager[Any]:
        """A connection of its own in a write transaction that excludes the writers of every process."""
        raise NotImplementedError

    def _guard(self) -> contextlib.AbstractContextManager[None]:
        """Where a read's own errors become a StoreError (a server that went away)."""
        return contextlib.nullcontext()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._guard():
            rows: list[Any] = self.reader().execute(sql, params).fetchall()
            return rows

    # -- the records ---------------------------------------------------------------------------------------
    def count(self, flt: Filter = EVERYTHING, cap: int | None = None) -> int:
        """How many records match; with `cap`, stop counting past it (returns cap + 1: "more than cap")."""
        c = compile_filter(flt, self.dialect)
        inner = f"SELECT 1 FROM {c.source} WHERE {c.where}"
        if cap is not None:
            inner += f" LIMIT {int(cap) + 1}"
        return int(self._rows(f"SELECT count(*) FROM ({inner}) AS matching", c.params)[0][0])

    def page(
        self, flt: Filter = EVERYTHING, limit: int = 100, after: Summary | None = None, offset: int = 0
    ) -> list[Summary]:
        """Newest first, without the payloads: by start time, or with free text by commit order. `after` is the
        last row seen (keyset paging: as fast on page 1,000 as on page 1)."""
        d = self.dialect
        c = compile_filter(flt, d)
        where, params = c.where, list(c.params)
        if c.text:
            if after is not None:
                where += f" AND {c.seq} < {d.p}"
                params.append(after.seq)
            order = f"{c.seq} DESC"
        else:
            if after is not None:
                where = f"({where}) AND (started_at < {d.p} OR (started_at = {d.p} AND {c.seq} < {d.p}))"
                params += [after.started_at, after.started_at, after.seq]
            order = f"started_at DESC, {c.seq} DESC"
        rows = self._rows(
            f"SELECT {summary_columns(d)} FROM {c.source} WHERE {where} ORDER BY {order} LIMIT {d.p} OFFSET {d.p}",
            [*params, limit, offset],
        )
        return [to_summary(r) for r in rows]

    def ids(self, prefix: str, limit: int = 2) -> list[str]:
        """The ids that start with `prefix` (with or without its `req_`), at most `limit`: an id as typed."""
        want = prefix if prefix.startswith("req_") else "req_" + prefix
        cond, params = self.dialect.id_prefix(want)
        rows = self._rows(
            f"SELECT id FROM records WHERE {cond} ORDER BY id LIMIT {self.dialect.p}", [*params, limit]
        )
        return [r[0] for r in rows]

    def get(self, record_id: str) -> Record | None:
        rows = self._rows(f"SELECT data FROM records WHERE id = {self.dialect.p}", (record_id,))
        if not rows:
            return None
        conn = self.reader()
        return Record.model_validate(insight.complete(conn, hydrate(_json(rows[0][0]), conn)))

    def committed_after(self, row: int | None, limit: int = 200) -> tuple[int, list[Record]]:
        """What the writers committed since a reader last looked (a console counting the calls every gateway
        on a shared store records): the records after row `row` in commit order, oldest first, at most
        `limit`, and the row to ask after next; with None, none and the newest row now. For their figures:
        the payloads' shared parts stay references and the findings are not read."""
        d = self.dialect
        if row is None:
            return int(self._rows(f"SELECT coalesce(max({d.row}), 0) FROM records")[0][0]), []
        rows = self._rows(
            f"SELECT {d.row}, data FROM records WHERE {d.row} > {d.p} ORDER BY {d.row} LIMIT {d.p}",
            (row, limit),
        )
        records = [Record.model_validate_json(_json(data)) for _, data in rows]
        return (int(rows[-1][0]) if rows else row), records

    def _scan(self, flt: Filter, cols: str) -> Iterator[Sequence[Any]]:
        """Every matching row, oldest first."""
        c = compile_filter(flt, self.dialect, drive=False)
        yield from self._stream(
            f"SELECT {cols} FROM records WHERE {c.where} ORDER BY started_at, {c.seq}", c.params
        )

    def iter_records(self, flt: Filter = EVERYTHING) -> Iterator[dict[str, Any]]:
        """Every matching record as a dict, oldest first, in constant memory."""
        conn = self.reader()
        for data, notes, prompt_id in self._scan(flt, "data, notes, prompt_id"):
            doc = hydrate(_json(data), conn)
            yield insight.complete(conn, doc) if insight.learnt(notes, prompt_id) else doc

    def summaries(self, flt: Filter = EVERYTHING) -> Iterator[Summary]:
        for row in self._scan(flt, summary_columns(self.dialect)):
            yield to_summary(row)

    def totals(self, since: float) -> Totals:
        """A full scan of the cost column: call it off the event loop."""
        cost, cost_since, n = self._rows(
            "SELECT coalesce(sum(cost), 0), "
            f"coalesce(sum(CASE WHEN started_at >= {self.dialect.p} THEN cost END), 0), count(*) FROM records",
            (since,),
        )[0]
        return Totals(float(cost), float(cost_since), since, int(n), self.stats.written, self.stats.lost)

    def prune(self, older_than_s: float) -> int:
        """Delete the records started more than `older_than_s` ago, their roll-ups and findings, and the shared
        parts no remaining record names; returns how many records."""
        cutoff = time.time() - older_than_s
        d = self.dialect
        with self._maintenance() as conn:
            for sql in d.prune_text():
                conn.execute(sql, (cutoff,))
            n: int = conn.execute(f"DELETE FROM records WHERE started_at < {d.p}", (cutoff,)).rowcount
            ledger.prune(conn, cutoff)
            insight.prune(conn, cutoff)
            refs, params = d.blob_refs()
            conn.execute(f"DELETE FROM blobs WHERE hash NOT IN ({refs})", params)
        return n

    # -- the ledger (proxy/store/ledger.py) -----------------------------------------------------------------
    def sessions(self, limit: int = 50, since: float | None = None) -> list[SessionTotals]:
        return ledger.sessions(self.reader(), limit, since)

    def session(self, session_id: str) -> SessionTotals | None:
        return ledger.session(self.reader(), session_id)

    def agents(self, session_id: str) -> list[AgentTotals]:
        return ledger.agents(self.reader(), session_id)

    def spend_today(self) -> float:
        with self._guard():
            return ledger.spend_on(self.reader(), ledger.day_of(time.time()))

    def session_spend(self, session_id: str) -> float:
        with self._guard():
            s = ledger.session(self.reader(), session_id)
        return s.cost if s is not None else 0.0

    # -- findings, turns, Claude Code's view (proxy/store/insight.py) ----------------------------------------
    def findings(self, record_ids: Sequence[str]) -> dict[str, list[Note]]:
        return insight.findings(self.reader(), record_ids)

    def prompts(self, prompt_ids: Sequence[str]) -> dict[str, str | None]:
        return insight.prompts(self.reader(), prompt_ids)

    def turns(self, session_id: str) -> list[insight.Turn]:
        return insight.turns(self.reader(), session_id)

    def latest_turns(self, session_ids: Sequence[str], per: int) -> dict[str, list[insight.Turn]]:
        return insight.latest_turns(self.reader(), session_ids, per)

    def session_views(self, session_ids: Sequence[str]) -> dict[str, insight.SessionView]:
        return insight.session_views(self.reader(), session_ids)

    def session_view(self, session_id: str) -> insight.SessionView:
        return insight.session_view(self.reader(), session_id)
