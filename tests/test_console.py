"""The console, driven by Pilot against real traffic through the in-process gateway and the strict fake."""

import asyncio
import io
import json
import os
import socket
import subprocess
import sys

import anthropic
import pytest
from rich.console import Console
from textual.widgets import Input, Static, TabbedContent

from console.app import GatewatchApp, HelpScreen
from console.detail import DetailScreen, as_curl
from console.history import HistoryTable
from console.panes import Pane
from proxy import config as cfg
from proxy.simulator import Reply
from proxy.store import Store
from proxy.store.query import parse
from tests.conftest import API_KEY, target_for


def plain(renderable, width: int = 200) -> str:
    c = Console(width=width, record=True, file=io.StringIO())
    c.print(renderable)
    return c.export_text()


def pane_text(app, pane_id: str) -> str:
    return plain(app.query_one(f"#{pane_id}", Pane).query_one(".body", Static).content)


async def wait_for(pilot, cond, timeout: float = 10.0):
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


def make_app(fake, sa_json, tmp_path, port: int = 0) -> GatewatchApp:
    config = cfg.from_mapping(
        {
            "gateway": {"port": port},
            "targets": [
                target_for("gemini", fake, sa_json),
                target_for("gemini", fake, sa_json, name="pro", model="gemini-2.5-pro"),
            ],
        },
        "test",
    )
    store = Store(tmp_path / "c.db", secrets=config.secrets())
    return GatewatchApp(config, store, export_dir=str(tmp_path))


async def call(app, prompt: str, model: str = "claude-opus-5-5", stream: bool = True):
    client = anthropic.AsyncAnthropic(base_url=app.url, api_key="sk-ant-console-test", max_retries=0)
    try:
        if stream:
            async with client.messages.stream(
                model=model, max_tokens=50, messages=[{"role": "user", "content": prompt}]
            ) as s:
                return await s.get_final_message()
        return await client.messages.create(
            model=model, max_tokens=50, messages=[{"role": "user", "content": prompt}]
        )
    finally:
        await client.close()


async def test_a_call_appears_in_history_and_in_the_panes(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        assert app.url.startswith("http://127.0.0.1:")
        banner = plain(app.query_one("#banner", Static).content)
        assert (
            f"ANTHROPIC_BASE_URL={app.url} ANTHROPIC_AUTH_TOKEN=gatewatch ANTHROPIC_MODEL=gemini-2.5-flash claude"
            in banner
        )
        fake.script(Reply.text("alpha beta gamma", prompt_tokens=321))
        await call(app, "first prompt about apples")
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        row = table.rows_loaded[0]
        assert row.preview == "first prompt about apples" and row.status == 200
        await wait_for(pilot, lambda: "321" in pane_text(app, "pane-tokens"))
        targets = pane_text(app, "pane-targets").splitlines()
        assert [line.split()[:4] for line in targets if "studio" in line.split()] == [
            ["●", "studio", "1", "0"]
        ]
        assert "$0.0001" in pane_text(app, "pane-cost")
        assert "ttft" in pane_text(app, "pane-latency")
        assert app.main.stats.tokens["input"] == 321 and app.main.stats.tokens["output"] == 3


async def test_in_flight_calls_show_while_streaming(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        fake.script(Reply.text("slow " * 10, chunks=10, chunk_delay=0.15))
        task = asyncio.create_task(call(app, "slow one"))
        await wait_for(pilot, lambda: "claude-opus-5-5" in pane_text(app, "pane-inflight"))
        assert "stream" in pane_text(app, "pane-inflight")
        await task
        await wait_for(pilot, lambda: "no calls in flight" in pane_text(app, "pane-inflight"))


async def test_search_narrows_the_list_and_escape_clears_it(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await call(app, "talk about bananas", stream=False)
        await call(app, "talk about cherries", model="gemini-2.5-pro")
        await call(app, "more bananas please")
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("slash")
        assert app.focused is app.query_one("#search", Input)
        await pilot.press(*"bananas")
        await wait_for(pilot, lambda: table.row_count == 2)
        assert {r.preview for r in table.rows_loaded} == {"talk about bananas", "more bananas please"}
        app.query_one("#search", Input).value = "model:pro"
        await wait_for(pilot, lambda: table.row_count == 1)
        assert table.rows_loaded[0].target == "pro"
        await pilot.press("enter")
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 3)


async def test_a_bad_filter_says_why_and_keeps_the_list(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await call(app, "one", stream=False)
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        app.query_one("#search", Input).value = "since:someday"
        await pilot.pause(0.2)
        assert "since/until" in plain(app.query_one("#status-line", Static).content)
        assert table.row_count == 1


async def test_enter_opens_the_detail_with_the_right_json_in_each_tab(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        fake.script(Reply.text("detail answer"))
        await call(app, "show me the detail")
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        screen = app.screen
        req = screen.query_one("#request-json", Static).content.code
        assert json.loads(req)["messages"][0]["content"] == "show me the detail"
        upstream = json.loads(screen.query_one("#upstream-json", Static).content.code)
        assert upstream["contents"][0]["parts"][0]["text"] == "show me the detail"
        resp = json.loads(screen.query_one("#response-json", Static).content.code)
        assert resp["content"][0]["text"] == "detail answer"
        events = json.loads(screen.query_one("#events-json", Static).content.code)
        assert events[0]["event"] == "message_start" and events[-1]["event"] == "message_stop"
        headers = screen.query_one("#headers-json", Static).content.code
        sent = json.loads(headers)["request"]
        # this SDK sends its key as a bearer token; either header is redacted
        assert sent.get("x-api-key", sent.get("authorization")) == "REDACTED", headers
        assert "sk-ant-console-test" not in headers
        assert "time to first token" in plain(screen.query_one("#timing", Static).content)
        tabs = screen.query_one(TabbedContent)
        await pilot.press("right")
        for tab in ("tab-upstream", "tab-response", "tab-events", "tab-timing", "tab-headers"):
            tabs.active = tab
            await pilot.pause()
        curl = as_curl(screen.record, app.url)
        assert curl.startswith("curl -sS " + app.url + "/v1/messages") and "$ANTHROPIC_API_KEY" in curl
        await pilot.press("c")
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


async def test_export_writes_the_current_filter_to_a_file(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await call(app, "export me one", stream=False)
        await call(app, "export me two", stream=False)
        await call(app, "not this", stream=False)
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        app.query_one("#search", Input).value = "export"
        await wait_for(pilot, lambda: table.row_count == 2)
        table.focus()
        await pilot.press("e")
        await wait_for(pilot, lambda: app.main.last_export is not None)
        path, n = app.main.last_export
        assert n == 2 and path.parent == tmp_path.resolve()
        data = json.loads(path.read_text())
        assert sorted(r["preview"] for r in data) == ["export me one", "export me two"]
        assert "sk-ant-console-test" not in path.read_text()


async def test_help_screen_and_every_binding_has_a_description(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    for b in GatewatchApp.BINDINGS + HistoryTable.BINDINGS + DetailScreen.BINDINGS + HelpScreen.BINDINGS:
        assert b.description and b.id, b
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "".join(plain(s.content) for s in app.screen.query(Static))  # keys, then filter terms
        assert "Export" in text and "tool:Bash" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_a_taken_port_is_explained_on_screen_not_a_crash(fake, sa_json, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        app = make_app(fake, sa_json, tmp_path, port=port)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            text = plain(app.query_one("#banner", Static).content)
            assert f"cannot listen on 127.0.0.1:{port}" in text and f"--port {port + 1}" in text


async def test_a_config_error_is_explained_on_screen(tmp_path):
    app = GatewatchApp(
        cfg.Config(), Store(tmp_path / "x.db"), config_error="gatewatch.toml: gateway.port: bad"
    )
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        text = plain(app.query_one("#banner", Static).content)
        assert "gateway.port: bad" in text and "Fix the file" in text


async def test_history_pages_from_sqlite_instead_of_loading_everything(tmp_path):
    from tests.test_store import make

    store = Store(tmp_path / "big.db").start()
    for i in range(1000):
        store.submit(make(i))
    store.close()
    app = GatewatchApp(cfg.Config(), Store(tmp_path / "big.db"), config_error="none")
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 100)
        assert table.total == 1000
        table.focus()
        assert table.current_id() == "req_000999"  # the newest, at the bottom
        await pilot.press("g")  # the cursor reaches the oldest loaded row (the top): the next page is read
        await wait_for(pilot, lambda: table.row_count == 200)
        assert table.rows_loaded[100].id == "req_000899"
        assert table.current_id() == "req_000900"  # the cursor stays on the row it was on
        assert not table.following


def test_importing_proxy_leaves_textual_and_rich_out():
    code = "import sys, proxy.edge.server, proxy.store, proxy.reports.export; print(any(m.split('.')[0] in ('textual','rich') for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert out.stdout.strip() == "False", out.stderr


async def test_quitting_flushes_pending_records(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await call(app, "last words", stream=False)
        await pilot.press("q")
        await app.workers.wait_for_complete()
    assert Store(tmp_path / "c.db").count(parse("last")) == 1
    assert API_KEY.encode() not in (tmp_path / "c.db").read_bytes()


async def test_a_long_call_that_ends_after_newer_ones_still_appears(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        fake.script(Reply.text("slow " * 5, chunks=5, chunk_delay=0.3))
        slow = asyncio.create_task(call(app, "the long one"))
        await asyncio.sleep(0.2)
        await call(app, "a quick one", stream=False)
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        await slow
        await wait_for(pilot, lambda: table.row_count == 2)
        assert [r.preview for r in table.rows_loaded] == ["a quick one", "the long one"]  # by start time
        assert table.total == 2


async def test_cost_today_and_all_time_are_seeded_from_the_store(tmp_path):
    import time as _time

    from proxy.record import Usage
    from tests.test_store import make

    store = Store(tmp_path / "seed.db").start()
    store.submit(make(1, started_at=_time.time() - 60, usage=Usage(cost=0.25)))
    store.submit(make(2, started_at=_time.time() - 86400 * 40, usage=Usage(cost=1.0)))
    store.close()
    app = GatewatchApp(cfg.Config(), Store(tmp_path / "seed.db"), config_error="none")
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        assert app.main.stats.cost_today == pytest.approx(0.25) and app.main.stats.cost_all == pytest.approx(
            1.25
        )
        rows = {
            " ".join(line.split()[:-1]): line.split()[-1] for line in pane_text(app, "pane-cost").splitlines()
        }
        # since the console started: nothing yet; today and all time from the store
        assert rows["since start"] == "$0" and rows["today"] == "$0.25" and rows["all time"] == "$1.25"


async def test_the_gateway_answers_while_the_screen_is_blocked(fake_in_thread, tmp_path):
    import threading

    fake = fake_in_thread  # on a loop of its own: this test blocks its own
    app = make_app(fake, "", tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        fake.script(Reply.text("answered while the screen slept"))
        answers: list[str] = []

        def ask() -> None:
            client = anthropic.Anthropic(base_url=app.url, api_key="sk-ant-console-test", max_retries=0)
            reply = client.messages.create(
                model="claude-opus-5-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            )
            answers.append(reply.content[0].text)

        caller = threading.Thread(target=ask)
        caller.start()
        caller.join(timeout=5)  # blocks the screen's own loop (this test runs on it) for the whole call
        assert answers == ["answered while the screen slept"]
        await wait_for(pilot, lambda: app.query_one(HistoryTable).row_count == 1)


async def test_quitting_while_a_stream_is_in_flight_says_so_and_lets_it_finish(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    notices: list[str] = []
    async with app.run_test(size=(140, 40)) as pilot:
        fake.script(Reply.text("one two three four five six", chunks=6, chunk_delay=0.25))
        task = asyncio.create_task(call(app, "a slow answer"))
        await wait_for(pilot, lambda: app.host.in_flight == 1)
        render = app.main.render_stopping

        def seen() -> None:
            render()
            notices.append(plain(app.query_one("#banner", Static).content))

        app.main.render_stopping = seen
        await pilot.press("q")
        reply = await task
        await (
            app.workers.wait_for_complete()
        )  # q drains in a worker: the flush ends with it, not with the key
    assert reply.content[0].text == "one two three four five six"  # the client got the whole answer
    assert any("stopping: 1 call in flight to finish" in n for n in notices), notices
    assert Store(tmp_path / "c.db").count(parse("slow")) == 1  # and its record was written
