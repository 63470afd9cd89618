"""The history table: one row a call, newest first, paged from the store (never all rows in memory).

Reads run as workers that fail softly: a read that raises becomes a `Failed` message (the app shows a
notification) and the table keeps what it showed. The first page (a load or a refresh) and the next page are
each one exclusive worker group; a generation number, bumped by every `load`, keeps a read made for an older
filter out of the list.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.text import Text
from textual import work
from textual.message import Message
from textual.widgets import DataTable
from textual.worker import Worker

from proxy.query import EVERYTHING, Filter
from proxy.store import RecordStore, Summary

from . import fmt

PAGE = 100
COUNT_CAP = 10_000
COLUMNS = [
    ("time", 8),
    ("model → target · answered by", 46),
    ("st", 4),
    ("in", 6),
    ("out", 6),
    ("cost", 8),
    ("latency", 8),
    ("ttft", 7),
    ("tools", 14),
    ("prompt", 50),
]


class _When(str):
    """The time cell, carrying the row's place in the list (newest first) so the table can be re-sorted."""

    order: tuple[float, int]

    def __new__(cls, r: Summary) -> _When:
        cell = super().__new__(cls, time.strftime("%H:%M:%S", time.localtime(r.started_at)))
        cell.order = (r.started_at, r.seq)
        return cell


def row_cells(r: Summary) -> list[str | Text]:
    err = r.error_type
    style = "red" if r.failed else ("green" if r.status == 200 else "yellow")
    st = Text(str(r.status or "…"), style=style)
    if r.cancelled:
        st = Text("✕", style="yellow")
    target = r.target or "–"
    if r.attempts > 1:
        target += f" (+{r.attempts - 1})"
    route = Text(r.request_model or "?", style="bold")
    route.append(" → ", style="dim")
    route.append(target)
    answered = (r.response_model or "").removeprefix("gemini-")
    if answered and r.kind != "count_tokens":
        route.append(f" {answered}", style="dim italic")
    cost = fmt.NONE if r.kind == "count_tokens" else fmt.usd(r.cost)
    preview = r.preview.replace("\n", " ")
    if r.kind == "count_tokens":
        preview = "[count_tokens] " + preview
    if err:
        preview = f"[{err}] {r.error_message or ''}"
    return [
        _When(r),
        route,
        st,
        str(r.input_tokens),
        str(r.output_tokens),
        cost,
        fmt.duration(r.latency_ms),
        fmt.duration(r.ttft_ms),
        ",".join(r.tools_used),
        Text(preview[:120], style="red" if err else ""),
    ]


class HistoryTable(DataTable[str | Text]):
    """The rows loaded so far for the current filter; reads the next page when the cursor nears the end."""

    DEFAULT_CSS = "HistoryTable { height: 1fr; }"

    class Loaded(Message):
        """A first page (a load or a refresh) was read from the store and shown."""

        def __init__(self, total: int) -> None:
            super().__init__()
            self.total = total

    class Failed(Message):
        """A read from the store raised; the table still shows what it showed."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(self, store: RecordStore, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.store = store
        self.filter: Filter = EVERYTHING
        self.rows_loaded: list[Summary] = []
        self.total = 0
        self.exhausted = False
        self._generation = 0
        """bumped by every load: the filter (or reload) a read was made for"""
        self._shown = -1
        """the generation `rows_loaded` belongs to"""

    def on_mount(self) -> None:
        for name, width in COLUMNS:
            self.add_column(name, width=width, key=name)

    # -- reads ---------------------------------------------------------------------------------------------
    def load(self, flt: Filter | None = None) -> Worker[None]:
        """(Re)load the first page for `flt` (default: the current filter), replacing the list; keeps the
        cursor on the same call when it is still there. Returns the worker (await `.wait()` to wait)."""
        if flt is not None:
            self.filter = flt
        self._generation += 1
        self.workers.cancel_group(self, "history-more")
        return self._read_first()

    def refresh_new(self) -> Worker[None]:
        """Bring in calls recorded since the last look, keeping the pages already loaded. A long call is
        recorded when it ends, after calls that started later: merge by id and re-sort, don't just prepend."""
        return self._read_first()

    @work(exclusive=True, exit_on_error=False, group="history")
    async def _read_first(self) -> None:
        gen, flt = self._generation, self.filter
        try:
            # a free-text count over a million records is the slow part of a search: stop at COUNT_CAP
            rows, total = await asyncio.to_thread(
                lambda: (self.store.page(flt, PAGE), self.store.count(flt, COUNT_CAP))
            )
        except Exception as exc:  # a locked file, a broken store: say so, keep what is shown
            self.post_message(self.Failed(f"could not read the history: {exc}"))
            return
        if gen != self._generation or not self.is_attached:  # the filter changed, or the app closed
            return
        keep = self.current_id()
        if self._shown == gen:
            known = {r.id for r in self.rows_loaded}
            fresh = [r for r in rows if r.id not in known]
            if fresh:
                self.rows_loaded = sorted(
                    fresh + self.rows_loaded, key=lambda r: (r.started_at, r.seq), reverse=True
                )
                self._merge(fresh, keep)
        else:
            self.rows_loaded = rows
            self.exhausted = len(rows) < PAGE
            self._shown = gen
            self._rebuild(keep)
        self.total = total
        self.post_message(self.Loaded(total))

    @work(exclusive=True, exit_on_error=False, group="history-more")
    async def load_more(self) -> None:
        if self.exhausted or not self.rows_loaded or self._shown != self._generation:
            return
        gen, flt, last = self._generation, self.filter, self.rows_loaded[-1]
        try:
            rows = await asyncio.to_thread(self.store.page, flt, PAGE, last)
        except Exception as exc:
            self.post_message(self.Failed(f"could not read more history: {exc}"))
            return
        if gen != self._generation or self._shown != gen or not self.is_attached:
            return
        self.exhausted = len(rows) < PAGE
        known = {r.id for r in self.rows_loaded}  # a refresh may have merged some of them meanwhile
        for r in rows:
            if r.id not in known:
                self.rows_loaded.append(r)
                self.add_row(*row_cells(r), key=r.id)

    # -- display -------------------------------------------------------------------------------------------
    def _rebuild(self, keep: str | None) -> None:
        self.clear()
        for r in self.rows_loaded:
            self.add_row(*row_cells(r), key=r.id)
        self._restore(keep)

    def _merge(self, fresh: list[Summary], keep: str | None) -> None:
        """Add new rows and re-sort, instead of clearing the table: a clear drops every render cache of the
        table at once, as cyclic garbage whose collection (100+ ms every few seconds at 200x50, GIL held)
        stalls the gateway thread beside it."""
        for r in fresh:
            self.add_row(*row_cells(r), key=r.id)
        self.sort("time", key=lambda cell: cell.order, reverse=True)
        self._restore(keep)

    def _restore(self, keep: str | None) -> None:
        if keep is not None:
            try:
                self.move_cursor(row=self.get_row_index(keep), scroll=False)
            except Exception:
                pass

    def current_id(self) -> str | None:
        if not self.rows_loaded or self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.row_count - 10:
            self.load_more()
