"""No timer, worker or refresh of the screen can end the app (and the gateway inside it): each failure is
forced here, and the app keeps running and the gateway keeps answering."""

from console.history import HistoryTable
from proxy.store import Store
from tests.test_console import call, make_app, wait_for
from tests.test_store import make


def noting(app) -> list[str]:
    notes: list[str] = []
    notify = app.notify

    def noted(message, **kw):
        notes.append(message)
        notify(message, **kw)

    app.notify = noted
    return notes


async def test_a_pane_timer_that_finds_no_pane_is_contained(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause(0.2)
        await app.query_one("#pane-inflight").remove()  # as while the screen is torn down
        await wait_for(pilot, lambda: any("NoMatches" in f and "pane-inflight" in f for f in app.faults))
        assert app.is_running
        reply = await call(app, "still answering", stream=False)
        assert reply.content[0].text


async def test_a_timer_callback_that_raises_is_a_notice_not_the_end(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        notes = noting(app)

        def broken() -> None:
            raise RuntimeError("a tick broke")

        app.main._take_feed = broken
        await wait_for(pilot, lambda: any("a tick broke" in n for n in notes))
        await pilot.pause(1.2)  # the timer keeps firing: the notice is not repeated every tick
        assert sum("a tick broke" in n for n in notes) == 1
        assert app.is_running
        await call(app, "after the broken timer", stream=False)
        assert app.is_running


async def test_a_failing_worker_is_contained(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause(0.2)
        notes = noting(app)

        async def fails() -> None:
            raise ValueError("a worker went wrong")

        app.run_worker(fails(), exit_on_error=True)  # Textual's default: such a worker would end the app
        await wait_for(pilot, lambda: any("a worker went wrong" in n for n in notes))
        assert app.is_running
        await call(app, "after the worker", stream=False)
        assert app.is_running


async def test_a_failing_next_page_read_is_a_notice(tmp_path):
    from console.app import GatewatchApp
    from proxy import config as cfg

    store = Store(tmp_path / "m.db").start()
    for i in range(150):
        store.submit(make(i))
    store.close()
    app = GatewatchApp(cfg.Config(), Store(tmp_path / "m.db"), config_error="no gateway here")
    async with app.run_test(size=(140, 40)) as pilot:
        notes = noting(app)
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 100)
        page = app.store.page

        def broken_after(flt, limit=100, after=None, offset=0):
            if after is not None:
                raise RuntimeError("disk I/O error")
            return page(flt, limit, after, offset)

        app.store.page = broken_after
        table.focus()
        await pilot.press("g")  # the top: the next page is read, and the read raises
        await wait_for(pilot, lambda: any("disk I/O error" in n for n in notes))
        assert app.is_running and table.row_count == 100


async def test_a_refresh_whose_table_update_raises_is_a_notice(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        notes = noting(app)
        table = app.query_one(HistoryTable)
        await call(app, "one", stream=False)
        await wait_for(pilot, lambda: table.row_count == 1)

        def broken_merge(fresh, keep):
            raise KeyError("row key")

        table._merge = broken_merge
        await call(app, "two", stream=False)  # its refresh raises past the read's own handling
        await wait_for(pilot, lambda: any("row key" in n for n in notes))
        assert app.is_running
        reply = await call(app, "three", stream=False)
        assert reply.content[0].text
