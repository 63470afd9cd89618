"""Follow mode: the history shows the newest call at the bottom and keeps it in view as calls arrive, like
`tail -f`; moving up pauses following, End (or G) resumes it."""

import asyncio

from textual.widgets import Static

from console.history import HistoryTable
from tests.test_console import call, make_app, plain, wait_for


def newest_in_view(table: HistoryTable) -> bool:
    """The cursor is on the newest loaded call and that row is on screen."""
    if not table.rows_loaded or table.current_id() != table.rows_loaded[0].id:
        return False
    rows_in_view = table.scrollable_content_region.height - table.header_height
    top = round(table.scroll_y)
    return top <= table.cursor_row < top + rows_in_view


async def test_following_keeps_the_newest_of_50_calls_in_view_up_pauses_and_end_resumes(
    fake, sa_json, tmp_path
):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(HistoryTable)
        table.focus()
        status = app.query_one("#status-line", Static)
        assert table.following
        seen_out_of_view = []
        for i in range(50):
            await call(app, f"prompt {i:02d}", stream=i % 2 == 0)
            if i % 10 == 9:  # every few calls, once the history caught up: the newest is on screen
                await wait_for(pilot, lambda n=i: table.row_count == n + 1)
                await pilot.pause()
                if not newest_in_view(table):
                    seen_out_of_view.append(i)
        assert seen_out_of_view == []
        assert table.rows_loaded[0].preview == "prompt 49"
        assert table.row_count > table.scrollable_content_region.height  # the list is taller than the view
        assert "following" in plain(status.content)

        await pilot.press("up", "up")  # up: following pauses, and the status line says how to resume
        assert not table.following
        kept = table.current_id()
        assert kept == table.rows_loaded[2].id
        await wait_for(pilot, lambda: "paused — End to follow" in plain(status.content))
        for i in range(5):
            await call(app, f"later {i}", stream=False)
        await wait_for(pilot, lambda: table.row_count == 55)
        await pilot.pause()
        assert table.current_id() == kept  # the cursor stayed on the call being read
        assert not newest_in_view(table)

        await pilot.press("end")  # End: back to the newest, following again
        assert table.following and newest_in_view(table)
        await wait_for(pilot, lambda: "following" in plain(status.content))
        await call(app, "after end", stream=False)
        await wait_for(pilot, lambda: table.row_count == 56)
        await pilot.pause()
        assert table.rows_loaded[0].preview == "after end" and newest_in_view(table)

        await pilot.press("g")  # g: the oldest loaded call, paused; G: following again
        assert table.cursor_row == 0 and not table.following
        await pilot.press("G")
        assert table.following and newest_in_view(table)


async def test_moving_down_to_the_newest_row_follows_again(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(HistoryTable)
        table.focus()
        await asyncio.gather(*(call(app, f"p{i}", stream=False) for i in range(3)))
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("pageup")
        assert not table.following and table.cursor_row == 0
        await pilot.press("down", "down")
        assert table.following
