"""The history table: one row a call, oldest at the top and newest at the bottom, as `tail -f` shows a log;
paged from the store (never all rows in memory).

Follow mode: while the cursor is on the newest row (or after End/G), calls that arrive scroll in and the cursor
stays on the newest; moving up pauses following, and End/G resumes it. Reaching the top reads the next older page.

The columns fit the table's width: time, model → target, status, cost, latency and prompt always; tokens and
ttft from ~110 columns; the tools from ~150; the answering model beside the target when there is room.

Reads run as workers that fail softly: a read that raises becomes a `Failed` message (the app shows a
notification) and the table keeps what it showed. The first page (a load or a refresh) and the next page are
each one exclusive worker group; a generation number, bumped by every `load`, keeps a read made for an older
filter out of the list.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.strip import Strip
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from proxy.store import RecordStore, Summary
from proxy.store.query import EVERYTHING, Filter

from . import fmt

PAGE = 100
COUNT_CAP = 10_000
NEAR_TOP = 10
"""the cursor this close to the oldest loaded row reads the next older page"""


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    """cells of content (0: takes what is left)"""
    from_width: int = 0
    """the table width from which the column is shown"""


COLUMNS: tuple[Column, ...] = (
    Column("time", "time", 8),
    Column("route", "model → target", 0),
    Column("st", "st", 3),
    Column("in", "in", 5, from_width=110),
    Column("out", "out", 5, from_width=110),
    Column("cost", "cost", 7),
    Column("latency", "lat", 5),
    Column("ttft", "ttft", 5, from_width=110),
    Column("tools", "tools", 14, from_width=150),
    Column("prompt", "prompt", 0),
)
PAD = 2  # a DataTable cell's padding, both sides
# drawn cells kept across row additions (a 200x50 table shows ~500, and the cursor's row is drawn twice)
CELLS_KEPT = 4096
LINES_KEPT = 1024  # drawn lines kept (a tall terminal shows ~100)
NULL = Style.null()
K = TypeVar("K")
V = TypeVar("V")
SCROLLBAR = 2
ROUTE_MAX = 46


def layout(width: int) -> list[tuple[Column, int]]:
    """The columns shown at this table width, each with its content width: the fixed ones as they are, the
    route and the prompt sharing what is left (the prompt at least as wide as the route)."""
    shown = [c for c in COLUMNS if width >= c.from_width]
    fixed = sum(c.width + PAD for c in shown if c.width) + 2 * PAD + SCROLLBAR
    left = max(width - fixed, 30)
    route = max(16, min(ROUTE_MAX, left // 2))
    prompt = max(12, left - route)
    return [(c, c.width or (route if c.key == "route" else prompt)) for c in shown]


def _keep(kept: dict[K, V], key: K, value: V, most: int) -> None:
    """`kept[key] = value`, the older half dropped when it holds `most` (dropping them all would draw the whole
    visible table again at once: the pause these caches are for)."""
    if len(kept) >= most:
        for old in list(islice(kept, most // 2)):
            del kept[old]
    kept[key] = value


class _When(str):
    """The time cell, carrying the row's place in the list so the table can be re-sorted (oldest first)."""

    order: tuple[float, int]

    def __new__(cls, r: Summary) -> _When:
        cell = super().__new__(cls, time.strftime("%H:%M:%S", time.localtime(r.started_at)))
        cell.order = (r.started_at, r.seq)
        return cell


def _route(r: Summary, width: int) -> Text:
    """model → target, shortened to fit (console/fmt.py's `route`): the answering model only where it fits."""
    target = r.target or "–"
    retries = f" (+{r.attempts - 1})" if r.attempts > 1 else ""
    model = r.request_model or "?"
    answered = (r.response_model or "").removeprefix("gemini-")
    if r.failed or r.kind == "count_tokens":
        answered = ""  # nothing answered a failed call; a count is no answer
    if len(f"{model} → {target}{retries} {answered}") > width:
        answered = ""
    model, arrow, target = fmt.route(model, target, width, retries)
    route = Text(model, style="bold")
    route.append(arrow, style="dim")
    route.append(target)
    if answered:
        route.append(f" {answered}", style="dim italic")
    return route


def row_cells(r: Summary, columns: list[tuple[Column, int]]) -> list[str | Text]:
    cells: dict[str, str | Text] = {}
    for col, width in columns:
        key = col.key
        if key == "time":
            cells[key] = _When(r)
        elif key == "route":
            cells[key] = _route(r, width)
        elif key == "st":
            style = "red" if r.failed else ("green" if r.status == 200 else "yellow")
            cells[key] = Text("✕", style="yellow") if r.cancelled else Text(str(r.status or "…"), style=style)
        elif key == "in":
            cells[key] = Text(fmt.count(r.input_tokens), justify="right")
        elif key == "out":
            cells[key] = Text(fmt.count(r.output_tokens), justify="right")
        elif key == "cost":
            cost = fmt.NONE if r.kind == "count_tokens" else fmt.usd(r.cost)
            cells[key] = Text(cost, justify="right")
        elif key == "latency":
            cells[key] = Text(fmt.duration(r.latency_ms), justify="right")
        elif key == "ttft":
            cells[key] = Text(fmt.duration(r.ttft_ms), justify="right")
        elif key == "tools":
            cells[key] = Text(",".join(r.tools_used))  # as named: a string cell would be read as rich markup
        elif key == "prompt":
            # the prompt, always: a failed call shows what was asked (its status is red, the error in its detail)
            preview = r.preview.replace("\n", " ")
            if r.kind == "count_tokens":
                preview = "[count_tokens] " + preview
            cells[key] = Text(fmt.cut(preview[:400], width), style="red" if r.failed else "")
    return [cells[col.key] for col, _ in columns]


class HistoryTable(DataTable[str | Text]):
    """The rows loaded so far for the current filter; reads the next page when the cursor nears the top."""

    DEFAULT_CSS = "HistoryTable { height: 1fr; }"
    BINDINGS = [
        Binding("home,g", "oldest", "Top", key_display="g", id="history.oldest"),
        Binding("end,G", "follow", "Follow", key_display="G", id="history.follow"),
        Binding("pageup", "page_up", "Page up", key_display="PgUp", id="history.page_up"),
        Binding("pagedown", "page_down", "Page down", id="history.page_down", show=False),
    ]

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

    class FollowChanged(Message):
        """Following the newest call started or paused."""

        def __init__(self, following: bool) -> None:
            super().__init__()
            self.following = following

    virtual_size = Reactive(Size(0, 0), layout=False)
    """Every row added grows it, and a widget's would lay the whole screen out again (the row's cells drawn,
    then the whole screen composed and written): `watch_virtual_size` asks for that only when a scrollbar comes
    or goes; otherwise the scrollbar is set and the table repainted."""

    def __init__(self, store: RecordStore, **kw: Any) -> None:
        # made first, as DataTable's own set-up clears its caches
        self._texts: dict[tuple[object, ...], list[Segment]] = {}
        """each cell's text, drawn once (see `_render_cell`)"""
        self._cells: dict[tuple[object, ...], list[list[Segment]]] = {}
        """cells drawn with their row's styles"""
        self._lines: dict[tuple[object, ...], Strip] = {}
        """the table's drawn lines, kept while the rows they show and their look stay (see `_render_line`)"""
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.store = store
        self.filter: Filter = EVERYTHING
        self.rows_loaded: list[Summary] = []
        """newest first"""
        self.total = 0
        self.exhausted = False
        self.following = True
        """new calls move the cursor to the newest row and keep it in view"""
        self._generation = 0
        """bumped by every load: the filter (or reload) a read was made for"""
        self._shown = -1
        """the generation `rows_loaded` belongs to"""
        self._layout: list[tuple[Column, int]] = []

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """A cell as DataTable draws it, at a fraction of the cost (issue 26: the screen thread shares the hosted
        gateway's CPU, and at each history refresh it drew the whole visible table, ~0.1 ms a cell).

        DataTable draws every visible cell again after any row is added (its caches are keyed by a count of
        changes), each through rich's padding and style layers. A call's row never changes once added, so:
        its cells' text is drawn once (`_texts`), and a cell is that text between its padding with the row's
        styles (stripe, cursor, and the row index the mouse handlers read from the meta) laid over it, kept
        while they stay the same (`_cells`). `tests/test_console_layout.py` holds it to DataTable's own."""
        if row_index < 0 or column_index < 0 or self.fixed_rows or self.fixed_columns:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or self.rows[row_key].height != 1:  # a tall row wraps: DataTable's own way
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            row_key,
            column_key,
            row_index,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        lines = self._cells.get(key)
        if lines is not None:
            return lines
        pad = self.cell_padding
        text_key = (row_key, column_key, width)
        text = self._texts.get(text_key)
        if text is None:
            _, cells = self._get_row_renderables(row_index)
            options = self.app.console_options.update(width=width - 2 * pad, height=1, no_wrap=True)
            drawn = self.app.console.render_lines(cells[column_index], options, style=NULL, pad=True)
            text = drawn[0] if drawn else [Segment(" " * (width - 2 * pad), NULL)]
            _keep(self._texts, text_key, text, CELLS_KEPT)
        component, post = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component
        blank = [Segment(" " * pad, NULL)] if pad else []
        lines = [list(Segment.apply_style([*blank, *text, *blank], pre, post))]
        _keep(self._cells, key, lines, CELLS_KEPT)
        return lines

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """A line of the table drawn again only when the row it shows, its place or its look changed.

        DataTable draws every visible line again after any change (a row added, the cursor moved): at each
        history refresh the whole visible table, though only the new rows' lines differ. A line is the same
        while its row, place, width, the base style, and whether the cursor or the mouse is on it are."""
        if self.cursor_type != "row":
            return super()._render_line(y, x1, x2, base_style)
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        row = self._row_locations.get(row_key)
        row = -1 if row is None else row  # the header
        key = (
            y,
            x1,
            x2,
            self.size.width,
            row_key,
            line_no,
            row,
            self.show_cursor and self.cursor_coordinate.row == row,
            self.hover_coordinate.row == row,
            base_style,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        strip = self._lines.get(key)
        if strip is None:
            strip = super()._render_line(y, x1, x2, base_style)
            _keep(self._lines, key, strip, LINES_KEPT)
        return strip

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._texts.clear()
        self._cells.clear()
        self._lines.clear()

    def on_mount(self) -> None:
        self._set_columns(self.size.width or 120)

    def on_resize(self, event: events.Resize) -> None:
        wanted = layout(event.size.width)
        if wanted != self._layout:
            keep = self.current_id()
            self._set_columns(event.size.width)
            self._rebuild(keep)
        elif self.following:  # fewer rows in view (a taller pane above): the newest stays in view
            self.call_after_refresh(self._restore, None)

    def _set_columns(self, width: int) -> None:
        self.clear(columns=True)
        self._layout = layout(width)
        for col, w in self._layout:
            self.add_column(col.label, width=w, key=col.key)

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
        recorded when it ends, after calls that started later: merge by id and re-sort, don't just append."""
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
        # the filter changed (or a reload began) while this read ran, or the app closed: its rows are not
        # the list's any more
        if gen != self._generation or flt != self.filter or not self.is_attached:
            return
        keep = None if self.following else self.current_id()
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
        if gen != self._generation or self._shown != gen or flt != self.filter or not self.is_attached:
            return
        self.exhausted = len(rows) < PAGE
        known = {r.id for r in self.rows_loaded}  # a refresh may have merged some of them meanwhile
        older = [r for r in rows if r.id not in known]
        if not older:
            return
        keep, top = self.current_id(), self.scroll_y
        self.rows_loaded.extend(older)
        for r in older:
            self.add_row(*row_cells(r, self._layout), key=r.id)
        self.sort("time", key=lambda cell: cell.order)
        self._restore(keep)
        self.scroll_to(y=top + len(older), animate=False, immediate=True)  # the rows in view stay in view

    # -- display -------------------------------------------------------------------------------------------
    def _rebuild(self, keep: str | None) -> None:
        self.clear()
        for r in reversed(self.rows_loaded):
            self.add_row(*row_cells(r, self._layout), key=r.id)
        self._restore(keep)

    def _merge(self, fresh: list[Summary], keep: str | None) -> None:
        """Add new rows and re-sort, instead of clearing the table: a clear drops every render cache of the
        table at once, as cyclic garbage whose collection (100+ ms every few seconds at 200x50, GIL held)
        stalls the gateway thread beside it."""
        with self.app.batch_update():  # the rows, the cursor and the scroll drawn in one frame
            for r in fresh:
                self.add_row(*row_cells(r, self._layout), key=r.id)
            self._settle()
            self.sort("time", key=lambda cell: cell.order)
            self._restore(keep)

    def _settle(self) -> None:
        """Size the table for the rows just added now, not when the app is next idle (which DataTable waits
        for): a frame of its own, the whole visible table drawn again, for each refresh."""
        if self._require_update_dimensions:
            self._require_update_dimensions = False
            new_rows = self._new_rows.copy()
            self._new_rows.clear()
            self._update_dimensions(new_rows)

    def _restore(self, keep: str | None) -> None:
        """The cursor back on `keep`; on the newest row (scrolled into view) when following or `keep` is gone."""
        if keep is not None and not self.following:
            try:
                self.move_cursor(row=self.get_row_index(keep), scroll=False)
                return
            except Exception:  # the row is not in this list
                pass
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, scroll=False)
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def watch_virtual_size(self, size: Size) -> None:
        bars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
        self._scroll_update(size)
        if (self.show_vertical_scrollbar, self.show_horizontal_scrollbar) != bars:
            self.refresh(layout=True)
        else:
            self.refresh()

    def watch_show_vertical_scrollbar(self, show: bool) -> None:
        """A scroll made before the scrollbar was shown (the first page, scrolled to the newest) would leave its
        thumb at the top while the view is at the bottom: put the thumb where the view is."""
        if show:
            self.vertical_scrollbar.position = self.scroll_y

    def current_id(self) -> str | None:
        if not self.rows_loaded or self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    # -- following -----------------------------------------------------------------------------------------
    def _set_following(self, following: bool) -> None:
        if following != self.following:
            self.following = following
            self.post_message(self.FollowChanged(following))

    def _moved(self) -> None:
        """After the user moved the cursor: following exactly when it is on the newest row."""
        self._set_following(self.row_count == 0 or self.cursor_row >= self.row_count - 1)

    def action_follow(self) -> None:
        self._set_following(True)
        self._restore(None)

    def action_oldest(self) -> None:
        self.move_cursor(row=0)
        self._moved()

    def action_cursor_up(self) -> None:
        super().action_cursor_up()
        self._moved()

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._moved()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._moved()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._moved()

    def action_scroll_top(self) -> None:
        self.action_oldest()

    def action_scroll_bottom(self) -> None:
        self.action_follow()

    def on_click(self, event: events.Click) -> None:
        self.call_after_refresh(self._moved)  # DataTable moves the cursor after this handler

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._set_following(False)  # the view moves away from the newest rows: stop pulling it back

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A read that raised past its own handling (a table update, say) is a notice too, never a crash."""
        if event.state == WorkerState.ERROR:
            self.post_message(self.Failed(f"history: {event.worker.error!r}"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row < NEAR_TOP and not self.following:  # the user went up to the oldest rows
            self.load_more()
