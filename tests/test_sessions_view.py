"""The console's Sessions view: a key away from the history, the session as a tree of its agents with context
meters and the compaction marked, Enter filters the history to the node, live as calls are committed; and
its pictures at 80x24 and 200x50."""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable, Input

from console.app import GatewatchApp
from console.sessions import SessionsScreen, meter, tree
from proxy import config as cfg
from proxy.record.events import BudgetCrossed
from proxy.store import Store
from tests import cc_session as cs
from tests import session_records

OTHER = "0a1b2c3d-0000-4000-8000-000000000000"


def fill(path) -> None:
    store = Store(path).start()
    for r in session_records.records(OTHER, session_records.T0 - 3600)[:2]:
        store.submit(r)
    recs = session_records.with_prefixes(session_records.records())
    for r in recs:
        store.submit(r)
    store.submit_telemetry(session_records.telemetry(recs))  # Claude Code's view: two turns
    store.close()


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def make_app(tmp_path, budget: dict | None = None) -> GatewatchApp:
    fill(tmp_path / "s.db")
    config = cfg.from_mapping({"budget": budget or {}}, "test")
    return GatewatchApp(config, Store(tmp_path / "s.db"), config_error="snapshot: no gateway in this picture")


def labels(table: DataTable) -> list[str]:
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_s_opens_the_sessions_tree_and_enter_filters_the_history_to_a_sub_agent(tmp_path, utc):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("s")
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        table = screen.query_one(DataTable)
        rows = labels(table)
        assert rows[0].startswith("▾ 7b1e0c44 +2 agents")  # the newest session first
        assert rows[1].strip().startswith("● main ↻1")  # the compaction, marked
        assert rows[2].strip().startswith(f"└ {cs.AGENT_A[:8]} {cs.PROMPT_A[:10]}")
        assert rows[3].strip().startswith(f"└ {cs.AGENT_B[:8]}")
        # the turns, oldest first: every call each prompt caused (sub-agents too), the break on the second
        assert (
            rows[4].strip() == f"◆ {session_records.PROMPT_1}"
            and rows[5].strip() == f"◆ {session_records.PROMPT_2}"
        )
        first, second = table.get_row_at(4), table.get_row_at(5)
        assert (first[1], str(first[4])) == ("7", "–") and (second[1], str(second[4])) == ("1", "⚠1")
        assert rows[6].startswith("▾ 0a1b2c3d")
        session = table.get_row_at(0)
        assert (
            str(session[3]) == "62%" and str(session[4]) == "⚠1"
        )  # 224k of 360k prompt tokens from the cache
        main = table.get_row_at(1)
        assert main[1] == "5" and str(main[5]).endswith("2%")  # 24k of 1,048,576
        line = str(screen.query_one("#sessions-insight").render())
        assert "Claude Code's estimate $" in line and "billed by Google $" in line
        assert "cache-break ×1" in line
        table.move_cursor(row=2)
        await pilot.press("enter")
        await pilot.pause(0.5)
        assert not isinstance(app.screen, SessionsScreen)
        assert app.query_one("#search", Input).value == f"session:{cs.SESSION} agent:{cs.AGENT_A}"
        history = app.query_one("#history", DataTable)
        assert history.row_count == 2


async def test_the_view_is_live_and_the_budget_shows_its_bars_and_notices(tmp_path, utc):
    app = make_app(tmp_path, {"session_usd": 0.05, "daily_usd": 1.0})
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("s")
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        bars = str(screen.query_one("#sessions-budget").render())
        assert "today" in bars and "/ $1.00" in bars and "/ $0.05" in bars
        loads = screen.loads
        extra = session_records.records(cs.SESSION, session_records.T0 + 1000)[7]
        app.store.submit(extra.model_copy(update={"id": "req_live"}))
        for _ in range(30):
            await pilot.pause(0.2)
            if screen.loads > loads and screen.query_one(DataTable).get_row_at(1)[1] == "6":
                break
        assert screen.query_one(DataTable).get_row_at(1)[1] == "6"  # main: one more call, live
        app.host.bus.emit(BudgetCrossed("session", cs.SESSION, 0.045, 0.05, "warning"))
        await pilot.pause(0.3)
        notes = [n.message for n in app._notifications]
        assert any("session 7b1e0c44 $0.04 is 90% of its cap $0.05" in m for m in notes)


def test_the_meter_and_the_tree_shape():
    assert str(meter(524_288, 1_048_576)) == "▰▰▰▰▱▱▱▱  50%"
    assert str(meter(0, 1_048_576)) == "–"
    from proxy.store import AgentTotals

    main = AgentTotals("s", "", 0, 0)
    a = AgentTotals("s", "a", 1, 1, parent_agent="")
    b = AgentTotals("s", "b", 2, 2, parent_agent="a")  # spawned by a sub-agent
    c = AgentTotals("s", "c", 3, 3, parent_agent=None)  # parent unknown: under main
    shape = [(d, x.agent_id) for d, x in tree(None, [main, a, b, c])]  # type: ignore[arg-type]
    assert shape == [(1, ""), (2, "a"), (3, "b"), (2, "c")]


def _open_sessions(pilot_delay: float = 0.5):
    async def run(pilot):
        await pilot.pause(0.3)
        await pilot.press("s")
        await pilot.pause(pilot_delay)

    return run


def test_sessions_view_80x24(snap_compare, tmp_path, utc):
    app = make_app(tmp_path, {"session_usd": 1.0, "daily_usd": 20.0})
    assert snap_compare(app, terminal_size=(80, 24), run_before=_open_sessions())


def test_sessions_view_200x50(snap_compare, tmp_path, utc):
    app = make_app(tmp_path, {"session_usd": 1.0, "daily_usd": 20.0})
    assert snap_compare(app, terminal_size=(200, 50), run_before=_open_sessions())


def _written(store, n: int) -> None:
    end = time.monotonic() + 30
    while store.stats.written < n:
        assert time.monotonic() < end, "the writer did not commit"
        time.sleep(0.01)


@pytest.mark.parametrize("one_batch", [True, False])
def test_a_batch_joins_and_rolls_up_as_records_one_at_a_time(tmp_path, one_batch):
    """The writer reads the telemetry that came first for a whole batch at once and sums a session's findings
    over the batch: the same joins, turns and session figures as records committed one per batch."""
    recs = session_records.with_prefixes(session_records.records())
    events = session_records.telemetry(recs)
    store = Store(tmp_path / "one.db").start()
    store.submit_telemetry(events)  # before any record: each record is joined as it is written
    time.sleep(0.3)
    for i, r in enumerate(recs):
        store.submit(r)
        if not one_batch:
            _written(store, i + 1)
    _written(store, len(recs))
    got = (store.session_view(cs.SESSION), store.turns(cs.SESSION))
    joined = {r.id: store.get(r.id).prompt_id for r in recs}
    store.close()

    ref = Store(tmp_path / "ref.db").start()
    for i, r in enumerate(recs):  # telemetry after the records: the other way to join
        ref.submit(r)
        _written(ref, i + 1)
    ref.submit_telemetry(events)
    ref.close()
    ref = Store(tmp_path / "ref.db")
    want = (ref.session_view(cs.SESSION), ref.turns(cs.SESSION))
    assert all(joined.values()) and joined == {r.id: ref.get(r.id).prompt_id for r in recs}
    view, turns = got
    assert view.found > 0 and view.findings == want[0].findings  # the compaction's cache break
    assert (view.found, view.input_tokens, view.cache_read_tokens) == (
        want[0].found,
        want[0].input_tokens,
        want[0].cache_read_tokens,
    )
    for a, b in ((view.saved, want[0].saved), (view.missed, want[0].missed), (view.cc_cost, want[0].cc_cost)):
        assert a == pytest.approx(b, rel=1e-12)
    assert [(t.prompt_id, t.calls, t.findings) for t in turns] == [
        (t.prompt_id, t.calls, t.findings) for t in want[1]
    ]
