"""Filters that never lie, in the console: negated free text, errors under the box naming what is valid, globs."""

from textual.widgets import Input, Static

from console.app import GatewatchApp
from console.history import HistoryTable
from proxy import config as cfg
from proxy.store import Store, query
from tests.test_console import plain, wait_for
from tests.test_store import make


def seeded(tmp_path) -> GatewatchApp:
    store = Store(tmp_path / "f.db").start()
    for i in range(6):
        store.submit(
            make(
                i,
                preview=f"{'the router' if i < 2 else 'a cache'} question {i}",
                session_id=f"{'4f2a' if i % 2 else '9bc1'}-session-{i}",
                target="vertex-flash" if i < 3 else "studio-pro",
            )
        )
    store.close()
    return GatewatchApp(cfg.Config(), Store(tmp_path / "f.db"), config_error="no gateway here")


async def test_minus_word_leaves_out_what_word_finds(tmp_path):
    app = seeded(tmp_path)
    async with app.run_test(size=(120, 32)) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 6)
        box = app.query_one("#search", Input)
        box.value = "router"
        await wait_for(pilot, lambda: table.row_count == 2)
        assert all("router" in r.preview for r in table.rows_loaded)
        box.value = "-router"
        await wait_for(pilot, lambda: table.row_count == 4)
        assert not any("router" in r.preview for r in table.rows_loaded)
        assert table.total == 4


async def test_an_unknown_field_or_bad_value_is_explained_under_the_box_and_the_list_stays(tmp_path):
    app = seeded(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 6)
        box, line = app.query_one("#search", Input), app.query_one("#status-line", Static)
        for typed, says in [
            ("modle:flash", "did you mean model?"),
            ("kind:chat", "use messages or count"),
            ("provider:openai", "vertex, gemini"),
            ("since:yesterday", "neither a duration"),
            ("latency>fast", "not a number"),
        ]:
            box.value = typed
            await pilot.pause(0.2)
            shown = plain(line.content, width=78)
            assert says in shown, (typed, shown)
            assert line.region.y > box.region.y  # under the box
            assert table.row_count == 6
        box.value = "modle:flash"
        await pilot.pause(0.2)
        shown = " ".join(plain(line.content, width=78).split())
        for name in query.field_names():  # every valid field is named, and the line wraps to show them
            assert name in shown
        assert line.region.height >= 2


async def test_session_and_target_take_globs(tmp_path):
    app = seeded(tmp_path)
    async with app.run_test(size=(120, 32)) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 6)
        box = app.query_one("#search", Input)

        def ids() -> set[str]:
            return (
                {r.id[-1] for r in table.rows_loaded} if table.row_count == len(table.rows_loaded) else set()
            )

        box.value = "session:4f2a-*"
        await wait_for(pilot, lambda: ids() == {"1", "3", "5"})
        box.value = "session:9bc1"  # a prefix, as before
        await wait_for(pilot, lambda: ids() == {"0", "2", "4"})
        box.value = "target:*-pro"
        await wait_for(pilot, lambda: ids() == {"3", "4", "5"})
        box.value = "session:*-session-? -target:vertex*"
        await wait_for(pilot, lambda: ids() == {"3", "4", "5"} and table.filter.text.startswith("session"))
        box.value = "session:9bc1-* target:studio*"
        await wait_for(pilot, lambda: ids() == {"4"})
