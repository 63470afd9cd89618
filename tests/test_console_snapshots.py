"""Snapshot tests of the main screens, on a fixed store (fixed times, UTC) so the pictures are stable."""

import time

import pytest

from console.app import GatewatchApp
from proxy import config as cfg
from proxy.record import Attempt, Usage
from proxy.store import Store
from tests.test_store import make


@pytest.fixture
def fixed_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    store = Store(tmp_path / "snap.db").start()
    for i in range(30):
        store.submit(
            make(
                i,
                status=429 if i % 7 == 3 else 200,
                error_type="rate_limit_error" if i % 7 == 3 else None,
                error_message="RESOURCE_EXHAUSTED: Quota exceeded" if i % 7 == 3 else None,
                request_mode="stream" if i % 2 else "oneshot",
                usage=Usage(
                    input_tokens=1000 + i,
                    output_tokens=20 + i,
                    cost=0.0004 + i / 1e5,
                    time_to_first_token=100 + i,
                ),
                tried_targets=[
                    Attempt(
                        target="vertex-flash",
                        provider="vertex",
                        model="gemini-2.5-flash",
                        status=200,
                        latency_ms=90 + i,
                    )
                ],
            )
        )
    store.close()
    app = GatewatchApp(
        cfg.Config(), Store(tmp_path / "snap.db"), config_error="snapshot: no gateway in this picture"
    )
    yield app
    monkeypatch.delenv("TZ")
    time.tzset()


async def settled(pilot) -> None:
    """The history read and the panes painted: a picture of the screen's state, not of the start-up race."""
    from console.history import HistoryTable

    app = pilot.app
    for _ in range(200):
        if app.main.ready and app.query_one(HistoryTable).row_count == 30:
            break
        await pilot.pause(0.05)
    await pilot.pause(0.6)  # one pane refresh after it
    await pilot.wait_for_scheduled_animations()


@pytest.mark.parametrize("size", [(80, 24), (120, 32), (200, 50)], ids=["80x24", "120x32", "200x50"])
def test_main_screen(snap_compare, fixed_app, size):
    assert snap_compare(fixed_app, terminal_size=size, run_before=settled)


def test_search(snap_compare, fixed_app):
    assert snap_compare(
        fixed_app, terminal_size=(120, 36), press=["slash", *"status:4xx", "enter"], run_before=settled
    )


def test_detail_screen(snap_compare, fixed_app):
    async def open_first(pilot):
        await settled(pilot)
        pilot.app.query_one("#history").focus()
        await pilot.press("enter")
        await pilot.pause(0.5)
        from textual.widgets import TabbedContent

        pilot.app.screen.query_one(TabbedContent).active = "tab-timing"
        await pilot.pause(0.2)

    assert snap_compare(fixed_app, terminal_size=(120, 36), run_before=open_first)


def test_help_screen(snap_compare, fixed_app):
    assert snap_compare(fixed_app, terminal_size=(120, 36), press=["question_mark"], run_before=settled)


def test_help_screen_at_80x24(snap_compare, fixed_app):
    assert snap_compare(fixed_app, terminal_size=(80, 24), press=["question_mark"], run_before=settled)


def test_paused_at_80x24(snap_compare, fixed_app):
    assert snap_compare(fixed_app, terminal_size=(80, 24), press=["up", "up"], run_before=settled)
