"""The history table: one row a call, newest first, paged from SQLite (never all rows in memory)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from proxy.store import Store

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


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:.1f}s" if v >= 1000 else f"{v:.0f}ms"


def row_cells(r: sqlite3.Row) -> list:
    status = r["status"]
    err = r["error_type"]
    kind = r["kind"]
    style = "red" if (status or 0) >= 400 or err else ("green" if status == 200 else "yellow")
    st = Text(str(status or "…"), style=style)
    if r["cancelled"]:
        st = Text("✕", style="yellow")
    model = r["request_model"] or "?"
    target = f"{r['target']}" if r["target"] else "–"
    if r["attempts"] and r["attempts"] > 1:
        target += f" (+{r['attempts'] - 1})"
    route = Text(model, style="bold")
    route.append(" → ", style="dim")
    route.append(target)
    answered = (r["response_model"] or "").removeprefix("gemini-")
    if answered and kind != "count_tokens":
        route.append(f" {answered}", style="dim italic")
    cost = "–" if kind == "count_tokens" else ("?" if r["cost"] is None else f"${r['cost']:.4f}")
    tools = (r["tools_used"] or "").strip().replace(" ", ",")
    preview = (r["preview"] or "").replace("\n", " ")
    if kind == "count_tokens":
        preview = "[count_tokens] " + preview
    if err:
        preview = f"[{err}] {r['error_message'] or ''}"
    return [
        time.strftime("%H:%M:%S", time.localtime(r["started_at"])),
        route,
        st,
        str(r["input_tokens"] or 0),
        str(r["output_tokens"] or 0),
        cost,
        _ms(r["latency_ms"]),
        _ms(r["ttft_ms"]),
        tools,
        Text(preview[:120], style="red" if err else ""),
    ]


class HistoryTable(DataTable):
    """Holds the rows loaded so far for the current filter; loads the next page when the cursor nears the end."""

    DEFAULT_CSS = "HistoryTable { height: 1fr; }"

    class Loaded(Message):
        """A page (or a refresh) was read from the store."""

        def __init__(self, total: int) -> None:
            super().__init__()
            self.total = total

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(self, store: Store, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.store = store
        self.filter = ""
        self.rows_loaded: list[sqlite3.Row] = []
        self.total = 0
        self.exhausted = False
        self._loading = False

    def on_mount(self) -> None:
        for name, width in COLUMNS:
            self.add_column(name, width=width, key=name)

    async def load(self, filter_text: str | None = None) -> None:
        """(Re)load the first page; keeps the cursor on the same call when it is still there."""
        if filter_text is not None:
            self.filter = filter_text
        keep = self.current_id()
        try:
            rows, total = await asyncio.to_thread(self._read_first)
        except Exception as exc:  # a filter error, a locked file: say so, keep what is shown
            self.post_message(self.Failed(str(exc)))
            return
        self.rows_loaded = rows
        self.total = total
        self.exhausted = len(rows) < PAGE
        self._rebuild(keep)
        self.post_message(self.Loaded(total))

    def _read_first(self) -> tuple[list[sqlite3.Row], int]:
        # a free-text count over a million records is the slow part of a search: stop at COUNT_CAP
        return self.store.page(self.filter, PAGE), self.store.count(self.filter, COUNT_CAP)

    async def refresh_new(self) -> None:
        """Bring in calls recorded since the last look, without losing the pages already loaded. A long call
        is recorded when it ends, after calls that started later: merge by id and re-sort, don't just prepend."""
        if not self.rows_loaded:
            await self.load()
            return
        rows, total = await asyncio.to_thread(self._read_first)
        known = {r["id"] for r in self.rows_loaded}
        fresh = [r for r in rows if r["id"] not in known]
        self.total = total
        if fresh:
            keep = self.current_id()
            self.rows_loaded = sorted(
                fresh + self.rows_loaded, key=lambda r: (r["started_at"], r["rowid"]), reverse=True
            )
            self._rebuild(keep)
        self.post_message(self.Loaded(self.total))

    async def load_more(self) -> None:
        if self.exhausted or self._loading or not self.rows_loaded:
            return
        self._loading = True
        try:
            last = self.rows_loaded[-1]
            rows = await asyncio.to_thread(
                self.store.page, self.filter, PAGE, (last["started_at"], last["rowid"])
            )
            self.exhausted = len(rows) < PAGE
            self.rows_loaded.extend(rows)
            for r in rows:
                self.add_row(*row_cells(r), key=r["id"])
        finally:
            self._loading = False

    def _rebuild(self, keep: str | None) -> None:
        self.clear()
        for r in self.rows_loaded:
            self.add_row(*row_cells(r), key=r["id"])
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

    async def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.row_count - 10:
            await self.load_more()
