"""A layout for every terminal: at 80x24 the essential figures fit on two lines and no figure is cut to "…";
wider terminals add the panes and more history columns."""

import asyncio

import pytest
from textual.widgets import Static

from console import fmt
from console.history import HistoryTable, layout
from console.panes import Pane
from proxy.simulator import Reply
from tests.test_console import call, make_app, plain, wait_for


def screen_lines(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def inflate(stats) -> None:
    """Figures as a long day makes them: wide numbers are where a layout cuts."""
    stats.calls, stats.errors = 12_345, 678
    stats.cost_today, stats.cost_all, stats.cost_session = 1234.56, 98_765.4, 321.09
    stats.tokens.update(input=123_456_789, output=9_876_543, cached=5_555_555, thinking=44_444)
    stats.latencies.clear()
    stats.latencies.extend([125_000.0, 250.0, 199_999.0])
    stats.ttfts.clear()
    stats.ttfts.extend([12_345.0, 800.0, 99_000.0])


@pytest.mark.parametrize("size", [(80, 24), (120, 32), (200, 50)])
async def test_no_figure_is_cut_to_an_ellipsis(fake, sa_json, tmp_path, size):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=size) as pilot:
        for i in range(3):
            await call(app, f"prompt {i}", stream=i % 2 == 0)
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        inflate(app.main.stats)
        app.main._dirty = True
        await pilot.pause(0.7)
        banner = app.query_one("#banner")
        lines = screen_lines(app)
        body = [line for y, line in enumerate(lines) if not banner.region.y <= y < banner.region.bottom]
        cut = [line for line in body if "…" in line]
        assert cut == [], "\n".join(lines)
        if size[0] < 120:  # the figures instead of the panes, every one of them
            summary = plain(app.query_one("#summary", Static).content, width=size[0] - 2)
            assert len(summary.strip().splitlines()) <= 2, summary
            for label in ("calls", "errors", "today", "p50", "ttft", "tokens", "in flight"):
                assert label in summary, summary
            assert "12,345 calls" in summary and "$1235 today" in summary and "125s p50" in summary
            assert not app.query_one("#panes").display or app.query_one("#panes").region.height == 0
        else:
            cost = plain(app.query_one("#pane-cost", Pane).query_one(".body", Static).content)
            assert "since start" in cost and "today" in cost and "session" not in cost
        for row in table.rows_loaded:  # the history keeps time, model → target, status, cost, latency, prompt
            assert row.preview in "\n".join(lines) or size[0] < 120


def test_the_history_columns_grow_with_the_width():
    keys = {w: [c.key for c, _ in layout(w)] for w in (80, 120, 200)}
    assert keys[80] == ["time", "route", "st", "cost", "latency", "prompt"]
    assert keys[120] == ["time", "route", "st", "in", "out", "cost", "latency", "ttft", "prompt"]
    assert keys[200] == ["time", "route", "st", "in", "out", "cost", "latency", "ttft", "tools", "prompt"]
    for w in (80, 120, 200):  # every column within the width
        assert sum(width + 2 for _, width in layout(w)) + 2 <= w


@pytest.mark.parametrize(
    "value, shown",
    [
        (None, "?"),
        (0, "$0"),
        (0.00004, "<$.0001"),  # never $0.0000, which reads as free
        (0.00012, "$0.0001"),
        (0.004, "$0.0040"),  # never $0.00
        (0.1234, "$0.12"),
        (12.345, "$12.35"),
        (1234.5, "$1234"),
    ],
)
def test_money_fits_seven_characters(value, shown):
    assert fmt.usd(value) == shown and len(shown) <= 7
    assert len(fmt.usd(123_456.0)) <= 7


async def test_an_empty_latency_sparkline_is_not_drawn(tmp_path):
    from console.app import GatewatchApp
    from proxy import config as cfg
    from proxy.store import Store

    app = GatewatchApp(cfg.Config(), Store(tmp_path / "e.db"), config_error="no gateway here")
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause(0.3)
        from textual.widgets import Sparkline

        spark = app.query_one("#pane-latency", Pane).query_one(Sparkline)
        assert not spark.display  # no calls: no bar (a flat series would draw as a solid block)
        app.main.stats.latencies.append(300.0)
        app.main._dirty = True
        await pilot.pause(0.7)
        assert spark.display


async def test_one_resize_redraws_the_header_and_the_panes_for_the_new_width(
    fake, sa_json, tmp_path, monkeypatch
):
    """Issue 22: the banner lagged one resize behind (drawn for the width before). With the screen's periodic
    refresh out of the way, the resize alone must draw the header and the width's panes for the new width."""
    from console import main_screen

    monkeypatch.setattr(main_screen, "REFRESH_S", 3600.0)  # only the resize redraws
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.ready and bool(app.url))
        banner = app.query_one("#banner", Static)
        inflight = app.query_one("#pane-inflight", Pane)

        def header() -> list[str]:
            return plain(banner.content, width=400).rstrip("\n").split("\n")

        assert "paste:" in header()[0]  # wide: the paste line beside the URL
        await pilot.resize_terminal(80, 24)
        lines = header()
        assert "paste:" not in lines[0] and "2 targets" in lines[0], lines
        assert all(len(line) <= 78 for line in lines), lines  # the banner's padding leaves 78
        assert banner.size.height == len(lines) == 3  # the hint cut in two, every line drawn
        on_screen = screen_lines(app)[banner.region.y : banner.region.bottom]
        assert [s.strip() for s in on_screen] == [line.strip() for line in lines]
        await pilot.resize_terminal(130, 40)
        assert len(header()) == 2 and all(len(line) <= 128 for line in header()), header()
        assert plain(inflight.query_one(".body", Static).content).strip() == "none"  # compact below 160
        await pilot.resize_terminal(200, 40)
        assert "paste:" in header()[0] and header()[1].startswith("targets ● studio")
        assert plain(inflight.query_one(".body", Static).content).strip() == "no calls in flight"
        await pilot.press("q")


async def test_an_idle_tick_draws_nothing_again(fake, sa_json, tmp_path, monkeypatch):
    """An idle console (issue 22: ~4 % of a core attached to an idle serve) redrew its in-flight pane every
    tick, and each update laid the screen out again. A pane is updated only when what it shows changed."""
    from console import main_screen

    monkeypatch.setattr(main_screen, "REFRESH_S", 3600.0)  # the ticks are the test's
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.ready)
        body = app.query_one("#pane-inflight", Pane).query_one(".body", Static)
        updates: list[object] = []
        real = body.update
        monkeypatch.setattr(
            body, "update", lambda content="", **kw: updates.append(content) or real(content, **kw)
        )
        for _ in range(5):
            app.main._tick()
        assert updates == []  # nothing changed: nothing drawn
        fake.script(Reply.text("slow", chunks=3, chunk_delay=0.5))
        task = asyncio.create_task(call(app, "in flight"))

        def ticked() -> bool:
            app.main._tick()
            return bool(app.main.in_flight)

        await wait_for(pilot, ticked)  # the call's start taken from the feed
        assert updates and "● claude-opus-5-5" in plain(updates[-1])  # a change is drawn
        await task
        await pilot.press("q")


def _history_app(tmp_path, n: int):
    """A console (no gateway) over a store of `n` calls whose cells take every shape a row has: failed and
    cancelled, styled and right-aligned, wide characters, brackets rich could read as markup, long prompts."""
    from console.app import GatewatchApp
    from proxy import config as cfg
    from proxy.store import Store
    from tests.test_store import make

    store = Store(tmp_path / "h.db").start()
    for i in range(n):
        store.submit(
            make(
                i,
                status=(500 if i % 5 == 2 else 200),
                error_type="api_error" if i % 5 == 2 else None,
                cancelled=i % 7 == 4,
                preview=["plain", "長い日本語のプロンプト" * 6, "[bold]not markup[/bold]", "x" * 300, ""][
                    i % 5
                ],
                tools_used=[["Bash"], [], ["db[q]", "x[/b]"]][i % 3],
            )
        )
    store.close()
    return GatewatchApp(cfg.Config(), Store(tmp_path / "h.db"), config_error="no gateway here"), store


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_the_history_draws_each_cell_as_datatable_does(tmp_path, size):
    """The history draws its cells itself (issue 26: DataTable drew the whole visible table again at every
    refresh). Each cell, in every look a row takes (stripe, cursor, mouse over it, focused or not), must be
    the same segments, styles and meta as DataTable's own drawing of it."""
    from textual.widgets import DataTable

    app, _ = _history_app(tmp_path, 30)
    async with app.run_test(size=size) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 30)
        compared = 0
        for focused in (True, False):
            if focused:
                table.focus()
            else:
                app.query_one("#search").focus()
            await pilot.pause()
            table._pseudo_class_state = table.get_pseudo_class_state()
            for row in range(table.row_count):
                style = table._get_row_style(row, table.rich_style)
                for col, column in enumerate(table.ordered_columns):
                    width = column.get_render_width(table)
                    for cursor, hover in ((False, False), (True, False), (False, True), (True, True)):
                        ours = table._render_cell(row, col, style, width, cursor, hover)
                        theirs = DataTable._render_cell(table, row, col, style, width, cursor, hover)
                        assert ours == theirs, (row, col, cursor, hover, focused)
                        assert ours[0][0].style.meta == {"row": row, "column": col}
                        compared += 1
        assert compared == 2 * 30 * len(table.ordered_columns) * 4
        if size[0] >= 150:  # the tools column: names shown as they are, never read as markup
            tools = [c.key for c in table.ordered_columns].index("tools")
            drawn = "".join(s.text for s in table._render_cell(2, tools, table.rich_style, 16)[0])
            assert "db[q],x[/b]" in drawn


async def test_a_history_refresh_draws_only_the_new_rows(tmp_path):
    """Ten calls more: the ten new rows' cells are drawn, not the whole visible table again."""
    from tests.test_store import make

    app, _ = _history_app(tmp_path, 40)
    async with app.run_test(size=(200, 50)) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 40)
        await pilot.pause()
        before = set(table._texts)
        assert len(before) >= 30 * len(table.ordered_columns)  # the visible rows were drawn
        for i in range(40, 50):
            app.main.store.submit(make(i))

        async def refreshed() -> bool:
            await table.refresh_new().wait()
            return table.row_count == 50

        for _ in range(100):  # the writer commits in its own time
            if await refreshed():
                break
            await pilot.pause(0.05)
        await pilot.pause()
        drawn = set(table._texts) - before
        assert {key[0].value for key in drawn} == {f"req_{i:06d}" for i in range(40, 50)}
        assert len(drawn) == 10 * len(table.ordered_columns)
        assert before <= set(table._texts)  # nothing drawn before was dropped and drawn again
        assert table.cursor_row == 49


async def test_new_figures_repaint_the_panes_without_laying_the_screen_out(
    fake, sa_json, tmp_path, monkeypatch
):
    """A pane's size is the pane's, not its text's: new figures repaint its body alone (issue 26: under traffic
    every pane update laid the whole screen out again, most of the screen thread's time on the hosted gateway's
    CPU)."""
    from console import main_screen

    monkeypatch.setattr(main_screen, "REFRESH_S", 3600.0)  # the ticks are the test's
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.ready)
        app.main._tick()
        await pilot.pause()
        layouts: list[int] = []
        real = app.main._refresh_layout
        monkeypatch.setattr(app.main, "_refresh_layout", lambda *a, **kw: layouts.append(1) or real(*a, **kw))
        body = app.query_one("#pane-tokens", Pane).query_one(".body", Static)
        shown = []
        for i in range(5):
            app.main.stats.tokens["input"] += 1_000 * (i + 1)
            app.main.stats.cost_session += 0.5
            app.main._dirty = True
            app.main._tick()
            await pilot.pause()
            shown.append(plain(body.render()))
        assert len(set(shown)) == 5  # each tick drew new figures
        assert layouts == []


async def test_the_history_s_scrollbar_comes_when_its_rows_outgrow_it(tmp_path):
    """Rows added grow the table without laying the screen out, except when a scrollbar must come: then it does,
    and the newest row is still in view."""
    from tests.test_store import make

    app, _ = _history_app(tmp_path, 5)
    async with app.run_test(size=(200, 50)) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 5)
        await pilot.pause()
        assert not table.show_vertical_scrollbar
        for i in range(5, 80):
            app.main.store.submit(make(i))
        for _ in range(100):
            await table.refresh_new().wait()
            if table.row_count == 80:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        assert table.show_vertical_scrollbar
        assert table.vertical_scrollbar.window_virtual_size == table.virtual_size.height
        assert table.cursor_row == 79
        assert table.scroll_y == table.max_scroll_y > 0  # the newest row in view
