"""The call detail's Translation tab: the notes, Google's error beside the client's, the request diff; as a
snapshot (80x24 beside Claude Code, and 120x36), and what `t` and the tab hold."""

import time

import pytest
from textual.widgets import Static, TabbedContent

from console.app import GatewatchApp
from console.detail import DetailScreen
from proxy import config as cfg
from proxy.record import Attempt, Usage
from proxy.store import Store
from proxy.translate import request as treq
from proxy.translate.notes import Note
from tests.test_console import plain
from tests.test_store import make

TOO_LONG = "The input token count (1250000) exceeds the maximum number of tokens allowed (1048576)."
CLIENT_REQUEST = {
    "model": "claude-opus-5-5",
    "max_tokens": 32000,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.331.a1; cc_entrypoint=cli;"},
        {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {"role": "user", "content": "summarise the whole monorepo"},
        {"role": "system", "content": "# Environment\n - cwd: /home/dev/project"},
    ],
    "tools": [
        {
            "name": "Read",
            "description": "Read a file.",
            "input_schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "file_path": {"type": "string"},
                    "limit": {"type": "integer", "exclusiveMinimum": 0},
                },
                "required": ["file_path"],
                "additionalProperties": False,
            },
        }
    ],
    "thinking": {"type": "adaptive"},
    "output_config": {"effort": "medium"},
    "metadata": {"user_id": "demo"},
}


def failed_call():
    """A call as the gateway records it: translated by the real translator, refused by Google."""
    t = treq.translate(CLIENT_REQUEST, treq.Target("gemini-2.5-flash", 8192))
    google = {"error": {"code": 400, "message": TOO_LONG, "status": "INVALID_ARGUMENT"}}
    said = "prompt is too long: 1250000 tokens > 1048576 maximum"
    return make(
        7,
        status=400,
        error_type="invalid_request_error",
        error_message=said,
        usage=Usage(),
        client_request=CLIENT_REQUEST,
        upstream_request=t.body,
        upstream_response=google,
        response={"type": "error", "error": {"type": "invalid_request_error", "message": said}},
        notes=[
            *t.notes,
            Note("upstream-error", f"vertex-flash answered 400 INVALID_ARGUMENT: {TOO_LONG} (read as 400)"),
        ],
        tried_targets=[
            Attempt(
                target="vertex-flash", provider="vertex", model="gemini-2.5-flash", status=400, latency_ms=80
            )
        ],
    )


@pytest.fixture
def app_with_call(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    store = Store(tmp_path / "t.db").start()
    store.submit(failed_call())
    store.close()
    yield GatewatchApp(
        cfg.Config(), Store(tmp_path / "t.db"), config_error="snapshot: no gateway in this picture"
    )
    monkeypatch.delenv("TZ")
    time.tzset()


async def open_translation(pilot) -> None:
    from console.history import HistoryTable

    for _ in range(200):
        if pilot.app.main.ready and pilot.app.query_one(HistoryTable).row_count == 1:
            break
        await pilot.pause(0.05)
    pilot.app.query_one("#history").focus()
    await pilot.press("enter")
    await pilot.pause(0.5)
    await pilot.press("t")
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_the_translation_tab(snap_compare, app_with_call, size):
    assert snap_compare(app_with_call, terminal_size=size, run_before=open_translation)


async def test_t_opens_the_tab_holding_notes_error_pair_and_diff(app_with_call):
    async with app_with_call.run_test(size=(120, 36)) as pilot:
        await open_translation(pilot)
        screen = app_with_call.screen
        assert isinstance(screen, DetailScreen)
        assert screen.query_one("#tabs", TabbedContent).active == "tab-translation"
        shown = plain(screen.query_one("#translation", Static).content)
        for kind in (
            "field-dropped",
            "cap-applied",
            "schema-keyword-removed",
            "system-folded",
            "upstream-error",
        ):
            assert kind in shown
        assert "Why it failed" in shown and "INVALID_ARGUMENT" in shown and "prompt is too long" in shown
        assert "max_tokens" in shown and "32000" in shown and "8192" in shown
        # the raw tabs stay
        ids = {p.id for p in screen.query("TabPane")}
        assert {"tab-request", "tab-upstream", "tab-response", "tab-events", "tab-timing"} <= ids


async def test_page_down_scrolls_the_open_tab_while_the_tab_bar_keeps_focus(app_with_call):
    from textual.containers import VerticalScroll

    async with app_with_call.run_test(size=(80, 24)) as pilot:
        await open_translation(pilot)
        screen = app_with_call.screen
        tabs = screen.query_one("#tabs", TabbedContent)
        scroll = tabs.get_pane("tab-translation").query_one(VerticalScroll)
        assert scroll.max_scroll_y > 0 and scroll.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause(0.3)
        assert scroll.scroll_y > 0
        assert tabs.active == "tab-translation"
        await pilot.press("right")  # the tab bar still answers ←/→
        await pilot.pause(0.2)
        assert tabs.active != "tab-translation"


def test_show_at_80_columns_cuts_diff_paths_in_the_middle_so_different_rows_never_read_the_same(tmp_path):
    """Cut at their end, `tools.Read.schema.properties.limit.exclusiveMinimum` and `….offset.exclusiveMinimum`
    both read `tools.Read.schema.properties…`; cut in the middle, the end that differs stays. And one
    difference is `1 difference`."""
    from tests.test_cli import _filled, cli

    req = {**CLIENT_REQUEST, "tools": [dict(CLIENT_REQUEST["tools"][0])]}
    schema = req["tools"][0]["input_schema"] = dict(req["tools"][0]["input_schema"])
    schema["properties"] = {**schema["properties"], "offset": {"type": "integer", "exclusiveMinimum": 0}}
    t = treq.translate(req, treq.Target("gemini-2.5-flash", 8192))
    one_change = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    tiny = treq.translate(one_change, treq.Target("gemini-2.5-flash", 8192)).body
    db = tmp_path / "s.db"
    _filled(
        db,
        [
            make(1, client_request=req, upstream_request=t.body),
            make(2, client_request=one_change, upstream_request=tiny),
        ],
    )
    r = cli("show", "req_000001", "--db", str(db), env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    rows = lines[lines.index(next(x for x in lines if x.lstrip().startswith("where"))) + 1 :]
    where = [x[4:].split("  ")[0] for x in rows if x[1:2] in "-+~" and x[2:4] == "  "]
    assert len(where) > 5 and len(set(where)) == len(where), where
    assert max(len(x) for x in lines) <= 80
    cut = [w for w in where if "…" in w]
    assert any(w.endswith("limit.exclusiveMinimum") for w in where) or any("limit" in w for w in cut), where
    assert any("offset" in w for w in where), where
    two = cli("show", "req_000002", "--db", str(db), env={"COLUMNS": "80"}).stdout
    n = len([x for x in two.splitlines() if x[1:2] in "-+~" and x[2:4] == "  "])
    assert f"({n} difference{'' if n == 1 else 's'})" in two, two
    assert "(1 differences)" not in two


def test_distinct_cuts_keep_what_differs_in_view_at_any_width():
    from console.translation import distinct_cuts

    paths = [
        "tools.Read.schema.properties.limit.exclusiveMinimum",
        "tools.Read.schema.properties.offset.exclusiveMinimum",
        "tools.Bash.schema.additionalProperties",
        "tools.Read.schema.additionalProperties",
        "generationConfig.thinkingConfig.thinkingLevel",
    ]
    for width in range(8, 60):
        cuts = distinct_cuts(paths, width)
        assert len(set(cuts)) == len(cuts), (width, cuts)
        assert all(len(c) <= width for c in cuts), (width, cuts)
    assert distinct_cuts(paths, 30)[:2] == [
        "tools.R…limit.exclusiveMinimum",
        "tools.…offset.exclusiveMinimum",
    ]
