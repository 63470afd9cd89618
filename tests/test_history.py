"""The history table over the store seam: typed rows, reads as workers that fail softly, no stale rows."""

import threading

from textual.widgets import Input

from console.app import GatewatchApp
from console.history import HistoryTable
from proxy import config as cfg
from proxy.store import Store
from proxy.store.query import EVERYTHING
from tests.test_console import call, make_app, wait_for
from tests.test_store import make


async def test_a_history_read_that_raises_is_a_notification_and_the_gateway_keeps_serving(
    fake, sa_json, tmp_path
):
    app = make_app(fake, sa_json, tmp_path)
    notes: list[str] = []
    async with app.run_test(size=(140, 40)) as pilot:
        notify = app.notify

        def noted(message, **kw):
            notes.append(message)
            notify(message, **kw)

        app.notify = noted
        table = app.query_one(HistoryTable)
        await call(app, "first")
        await wait_for(pilot, lambda: table.row_count == 1)
        page = app.store.page
        failures = [RuntimeError("database disk image is malformed")]

        def broken_once(*args, **kw):
            if failures:
                raise failures.pop()
            return page(*args, **kw)

        app.store.page = broken_once
        await call(app, "second")  # its commit triggers a refresh, and the refresh's read raises
        await wait_for(pilot, lambda: any("malformed" in n for n in notes))
        assert app.is_running and table.row_count == 1  # what was shown stays
        reply = await call(app, "third")  # the gateway still answers…
        assert reply.content[0].text
        await wait_for(pilot, lambda: table.row_count == 3)  # …and the next refresh reads again
        assert [r.preview for r in table.rows_loaded] == ["third", "second", "first"]


async def test_a_filter_change_during_a_refresh_never_mixes_the_old_filters_rows(tmp_path):
    store = Store(tmp_path / "h.db").start()
    for i in range(6):
        store.submit(make(i, preview=f"{'apple' if i < 3 else 'banana'} {i}"))
    store.close()
    app = GatewatchApp(cfg.Config(), Store(tmp_path / "h.db"), config_error="no gateway here")
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 6)
        page = app.store.page
        entered, release = threading.Event(), threading.Event()

        def slow_for_the_old_filter(flt, *args, **kw):
            if flt == EVERYTHING:  # the refresh of the unfiltered list hangs until released
                entered.set()
                release.wait(10)
            return page(flt, *args, **kw)

        app.store.page = slow_for_the_old_filter
        table.refresh_new()
        await wait_for(pilot, entered.is_set)
        app.query_one("#search", Input).value = "banana"
        await wait_for(pilot, lambda: table.row_count == 3)
        release.set()  # the old read now returns its six rows…
        await pilot.pause(0.3)
        assert table.row_count == 3  # …and none of them is shown
        assert all(r.preview.startswith("banana") for r in table.rows_loaded)
        table.refresh_new()  # a refresh now reads the new filter and merges nothing foreign
        await pilot.pause(0.3)
        assert [r.preview for r in table.rows_loaded] == ["banana 5", "banana 4", "banana 3"]
