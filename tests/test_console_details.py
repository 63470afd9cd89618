"""The smaller points of a day's use: the palette, the detail's tabs and footer, failed rows, copying, quitting."""

import asyncio
import os
import stat

from textual.widgets import Static

from console.app import GatewatchApp
from console.detail import DetailScreen, timing_table
from console.history import layout, row_cells
from proxy import config as cfg
from proxy.record import Attempt
from proxy.simulator import Reply
from proxy.store import Store
from tests.test_console import call, make_app, plain, wait_for
from tests.test_store import make

FAILED = make(
    7,
    status=529,
    response_model=None,
    error_type="overloaded_error",
    error_message="UNAVAILABLE: The model is overloaded",
    preview="what does the router do?",
    tried_targets=[Attempt(target="vertex-flash", provider="vertex", model="gemini-2.5-flash", status=529)],
)


def bare_app(tmp_path) -> GatewatchApp:
    return GatewatchApp(cfg.Config(), Store(tmp_path / "d.db"), config_error="no gateway here")


def test_a_failed_row_in_the_history_shows_the_prompt_not_the_error(tmp_path):
    store = Store(tmp_path / "d.db").start()
    store.submit(FAILED)
    store.close()
    row = Store(tmp_path / "d.db").page()[0]
    cells = [plain(c) if not isinstance(c, str) else c for c in row_cells(row, layout(200))]
    text = " ".join(cells)
    assert "what does the router do?" in text
    assert "overloaded" not in text and "2.5-flash" not in text  # nothing answered
    assert "529" in text
    table = plain(timing_table(FAILED))
    assert "nothing answered (tried: vertex-flash)" in table


async def test_the_palette_lists_each_command_once(tmp_path):
    app = bare_app(tmp_path)
    async with app.run_test(size=(120, 32)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles)), titles
        assert "Keys" in titles and "Help" in titles


async def test_the_detail_has_headed_responses_notes_and_only_keys_that_work_there(tmp_path):
    rec = make(3, notes=["signature injected", "empty answer, retried"], cc_version="2.0.31")
    rec.response = {"content": [{"type": "text", "text": "hi"}]}
    rec.upstream_response = [{"candidates": []}, {"candidates": []}]
    app = bare_app(tmp_path)
    async with app.run_test(size=(120, 32)) as pilot:
        await app.push_screen(DetailScreen(rec, "http://127.0.0.1:8000"))
        await pilot.pause()
        screen = app.screen
        headings = [plain(s.content) for s in screen.query(".heading").results(Static)]
        assert headings[0].startswith("Anthropic response: what the client received")
        assert "the 2 stream chunks vertex-flash (vertex) sent" in headings[1]
        timing = plain(screen.query_one("#timing", Static).content)
        assert "signature injected" in timing and "empty answer, retried" in timing and "2.0.31" in timing
        offered = {b.binding.action for b in screen.active_bindings.values() if b.enabled}
        assert {"copy_json", "copy_curl", "app.pop_screen"} <= offered
        assert not offered & {"search", "export", "reload", "clear_search", "open"}, offered
        await pilot.press("e", "slash")  # the main screen's keys do nothing here
        assert app.screen is screen and app.main.last_export is None


async def test_copied_is_said_only_when_a_clipboard_took_it(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    app = bare_app(tmp_path)
    notes: list[str] = []
    async with app.run_test(size=(120, 32)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)
        screen = DetailScreen(make(1), "http://127.0.0.1:8000")
        await app.push_screen(screen)
        screen.notify = app.notify
        await pilot.press("c")  # no clipboard tool: sent to the terminal, which may drop it
        await wait_for(pilot, lambda: len(notes) == 1)
        assert notes[0].startswith("Sent the call as JSON to the terminal") and "Copied" not in notes[0]
        got = tmp_path / "clipboard.txt"
        tool = bin_dir / "xclip"
        tool.write_text(f"#!/bin/sh\nexec /bin/cat > {got}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
        await pilot.press("u")  # a clipboard tool took it: copied
        await wait_for(pilot, lambda: len(notes) == 2)
        assert notes[1] == "Copied the request as curl (with xclip)"
        assert got.read_text().startswith("curl -sS http://127.0.0.1:8000")
        assert os.environ["PATH"] == str(bin_dir)


async def test_q_with_a_call_in_flight_says_at_once_that_it_drains(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        fake.script(Reply.text("one two three four", chunks=4, chunk_delay=0.4))
        task = asyncio.create_task(call(app, "slow"))
        await wait_for(pilot, lambda: app.host.in_flight == 1)
        await pilot.press("q")
        banner = plain(app.query_one("#banner", Static).content)
        assert "stopping: 1 call in flight to finish" in banner and "draining" in banner
        assert app.is_running  # still drawing while it drains: the key's handler returned at once
        await pilot.pause(0.3)
        assert app.is_running and app.stopping
        reply = await task
    assert reply.content[0].text == "one two three four"


def test_history_cells_at_80_columns_are_cut_with_an_ellipsis_never_mid_word_unmarked_or_at_a_bracket(
    tmp_path,
):
    from rich.cells import cell_len

    tried = [
        Attempt(target="studio", provider="gemini", model="gemini-3.8-flash", status=529),
        Attempt(target="vertex-flash", provider="vertex", model="gemini-3.8-flash", status=200),
    ]
    store = Store(tmp_path / "d.db").start()
    store.submit(make(1, request_model="gemini-3.8-flash", preview="[tool result (output of Bash) 12 lines]"))
    store.submit(
        make(2, request_model="claude-opus-5-5", tried_targets=tried, preview="fix the failing test in x")
    )
    store.close()
    columns = layout(80)
    widths = {c.key: w for c, w in columns}
    rows = {r.id: r for r in Store(tmp_path / "d.db").page()}
    seen = {}
    for rid, r in rows.items():
        cells = {
            c.key: (plain(x) if not isinstance(x, str) else x).rstrip("\n")
            for (c, _), x in zip(columns, row_cells(r, columns), strict=True)
        }
        for key in ("route", "prompt"):
            assert cell_len(cells[key]) <= widths[key], (key, cells[key], widths[key])
        seen[rid] = cells
    one, two = seen["req_000001"], seen["req_000002"]
    assert one["route"] == "3.8-flash→vertex-fla…"  # was `3.8-flash→vertex-flas`, cut unmarked
    assert one["prompt"].endswith("…") and not one["prompt"].rstrip("…").endswith(("(", " "))
    assert two["route"].endswith(" (+1)") and "…" in two["route"]  # the retries whole, the names cut
    assert two["prompt"] == "fix the failing test…"


async def test_at_80_columns_the_detail_title_names_its_target_whole_and_the_footer_cuts_no_key(tmp_path):
    from textual.widgets._footer import FooterKey

    from console.footer import Footer

    rec = make(3, id="req_a5dcfa7185774c9e9c745100", request_model="claude-haiku-5-5", target="studio-lite")
    app = bare_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(DetailScreen(rec, "http://127.0.0.1:8000"))
        await pilot.pause()
        screen = app.screen
        # the header's room (80 less its icon and clock) holds "title — sub-title" whole: no header ellipsis
        assert screen.sub_title == "haiku-5-5 → studio-lite", screen.sub_title
        assert len(f"{screen.title} — {screen.sub_title}") <= 80 - 18
        assert screen.title == "call req_a5dcfa7185774c9e9c745100"
        footer = screen.query_one(Footer)
        await wait_for(pilot, lambda: len(footer.query_children(FooterKey)) > 0)
        await pilot.pause()
        keys = list(footer.query_children(FooterKey))
        shown = [k for k in keys if k.display]
        assert all(k.region.right <= footer.region.right for k in shown), [
            (k.description, k.region) for k in shown
        ]
        assert {"Help", "Quit", "Back"} <= {k.description for k in shown}
        assert len(shown) < len(keys)  # one was left out rather than cut ("? Hel")
        await pilot.resize_terminal(160, 30)
        await pilot.pause()
        assert all(k.display for k in footer.query_children(FooterKey))  # room again: every key
        assert screen.sub_title == "claude-haiku-5-5 → studio-lite"


def test_a_cut_never_leaves_an_opening_bracket_or_a_separator_before_its_mark():
    from console import fmt

    assert fmt.cut("[tool result (output of Bash)", 15) == "[tool result…"
    assert fmt.cut("[tool result (output of Bash)", 14) == "[tool result…"
    assert fmt.cut("vertex-flash (+1)", 14) == "vertex-flash…"
    assert fmt.cut("a→b→c→d→e→f", 4) == "a→b…"
    assert fmt.cut("short", 5) == "short" and fmt.cut("longer", 1) == "…"
    assert fmt.cut("日本語のテキスト", 7) == "日本語…"  # wide characters counted as the cells they take
