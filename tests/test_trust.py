"""Issue 22: what gatewatch says is true where a user runs it: the causes its errors name, the commands that
only read the history, the port a refused start leaves as it found it."""

from __future__ import annotations

import socket

import anthropic
import pytest

from console.app import GatewatchApp
from proxy import config as cfg
from proxy.simulator import Reply
from tests.test_cli import _filled, cli
from tests.test_store import make

README_TARGET = """
[[targets]]
name = "vertex-flash"
provider = "vertex"
model = "gemini-2.5-flash"
project_id = "${GCP_PROJECT_ID}"
service_account_json = "${VERTEX_SA_KEY}"
"""


def test_commands_that_read_the_history_need_the_store_not_the_google_key(tmp_path):
    """`stats`, `export`, `show` and `prune` with a config whose key variable is unset in this shell."""
    db = tmp_path / "calls.db"
    _filled(db, [make(i) for i in range(3)])
    conf = tmp_path / "gw.toml"
    conf.write_text(f'[store]\npath = "{db}"\n{README_TARGET}')
    for command in (["stats"], ["export", "--format", "jsonl"], ["show", "req_000001"]):
        r = cli(*command, "--config", str(conf), cwd=tmp_path)
        assert r.returncode == 0, (command, r.stderr)
        assert "project_id" not in r.stderr and "VERTEX_SA_KEY" not in r.stderr
    r = cli("prune", "--config", str(conf), "--older-than", "1d", cwd=tmp_path)
    assert r.returncode == 0 and "deleted 3 records" in r.stdout, r.stderr
    # the gateway itself does need the key: serve names the variable that is unset, not project_id
    r = cli("serve", "--config", str(conf), "--port", "0", cwd=tmp_path)
    assert r.returncode == 2
    assert "needs service_account_json" in r.stderr and "VERTEX_SA_KEY is not set" in r.stderr, r.stderr
    assert "needs project_id" not in r.stderr


def _error(raw: dict, env: dict | None = None) -> str:
    with pytest.raises(cfg.ConfigError) as exc:
        cfg.from_mapping(raw, "gw.toml", env or {})
    return str(exc.value)


def test_each_config_error_names_its_real_cause(tmp_path, sa_json):
    vertex = {"name": "v", "provider": "vertex", "model": "m"}
    # an unset ${VAR}: the variable, not the project it would have named
    msg = _error({"targets": [{**vertex, "service_account_json": "${VERTEX_SA_KEY}"}]})
    assert "service_account_json = ${VERTEX_SA_KEY}, and VERTEX_SA_KEY is not set" in msg, msg
    assert "project_id" not in msg
    # a key file that isn't there: the path, not the project
    missing = tmp_path / "keys" / "sa.json"
    msg = _error({"targets": [{**vertex, "service_account_json": str(missing)}]})
    assert f"no key file at {missing}" in msg and "project_id" not in msg, msg
    # a misspelt key: the key it looks like, as the filter language does
    msg = _error({"targets": [{**vertex, "service_account_json": sa_json, "max_token": 8192}]})
    assert "targets[0] (v).max_token: unknown key (did you mean max_tokens?)" in msg, msg
    msg = _error({"gateway": {"prot": 9000}})
    assert "gateway.prot: unknown key (did you mean port?)" in msg, msg
    # the secret itself never appears in a message, the variable's name does
    msg = _error({"targets": [{**vertex, "service_account_json": "${K}", "project_id": "${P}"}]}, {"P": ""})
    assert "K is not set" in msg


def test_a_serve_on_a_busy_port_says_so_and_leaks_nothing(tmp_path, fake_in_thread):
    from tests.conftest import API_KEY

    fake = fake_in_thread  # on a loop of its own: serve's key check is answered while this thread waits on it
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}
        r = cli("serve", "--port", str(port), "--db", str(tmp_path / "s.db"), env=env)
    assert r.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr
    assert "Unclosed" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_hint_for_a_gateway_without_targets_says_what_the_readme_says():
    """The key's own project is used (README, "Use it with Claude Code"): no GCP_PROJECT_ID is required."""
    from proxy.service import NO_TARGET

    assert "GCP_PROJECT_ID" not in NO_TARGET and "key's own project" in NO_TARGET


def _gateway_toml(path, fake, names: list[str], daily_usd: float) -> None:
    from tests.conftest import API_KEY

    targets = "".join(
        f'[[targets]]\nname = "{n}"\nprovider = "gemini"\nmodel = "gemini-2.5-flash"\n'
        f'api_key = "{API_KEY}"\napi_endpoint = "{fake.url}"\n'
        for n in names
    )
    path.write_text(f"[budget]\ndaily_usd = {daily_usd}\n{targets}")


async def test_a_viewer_says_at_once_that_its_gateway_is_gone_and_shows_the_one_that_comes_back(
    fake, tmp_path
):
    """At 80x24: within 5 s of `serve` stopping, the header's first line says the console is not live; a
    gateway back on that port under another config shows its own targets; the Sessions view shows the budget
    that gateway enforces, not the viewer's own config's (which has none)."""
    import asyncio

    from textual.widgets import Static

    from console.remote import Attached
    from console.sessions import SessionsScreen
    from proxy.store import Store
    from tests.serving import free_port, serve
    from tests.test_attach import stop
    from tests.test_console import plain, wait_for

    port = free_port()
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    _gateway_toml(first, fake, ["alpha"], 5)
    _gateway_toml(second, fake, ["beta", "gamma"], 7)

    async def start(conf):
        proc, _ = await serve(
            {}, tmp_path, "--config", str(conf), "--port", str(port), db="serve.db", cwd=tmp_path
        )
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"listening" in line, line
        return proc

    proc = await start(first)
    url = f"http://127.0.0.1:{port}"
    app = GatewatchApp(cfg.Config(), Store(tmp_path / "serve.db", create=False), host=Attached(url))
    try:
        async with app.run_test(size=(80, 24)) as pilot:

            def first_line() -> str:
                return plain(app.query_one("#banner", Static).content).split("\n")[0]

            await wait_for(pilot, lambda: app.host.connected)
            assert first_line().startswith(f"attached to {url}") and "1 target" in first_line()
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen))
            budget = plain(app.screen.query_one("#sessions-budget", Static).content)
            assert "no budget set" not in budget and "$5" in budget, budget
            await pilot.press("escape")
            await stop(proc)
            await wait_for(pilot, lambda: first_line().startswith("⚠ not live"), timeout=5)
            assert "not live" in app.sub_title
            # R (replay) says the gateway is gone before its confirm screen, not as a raw connection error
            from console.detail import DetailScreen

            app.on_detail_screen_replay_asked(DetailScreen.ReplayAsked(make(1)))
            await pilot.pause(0.1)
            assert type(app.screen).__name__ != "ReplayScreen"
            assert any("not live" in str(n.message) for n in app._notifications)
            proc = await start(second)
            await wait_for(pilot, lambda: first_line().startswith(f"attached to {url}"), timeout=10)
            await wait_for(pilot, lambda: "2 targets" in first_line(), timeout=5)
            assert [n for n, _, _ in app.host.target_list()] == ["beta", "gamma"]
            await pilot.press("q")
    finally:
        await stop(proc)


def test_the_preview_of_a_tool_result_whose_content_is_a_list_of_blocks_is_its_text():
    """Every `Agent` result is a list of blocks: the history showed `[tool result [{'type': 'text', …`."""
    from proxy.exchange.messages import last_user_text

    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Agent", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [
                        {"type": "text", "text": "Found 3 files."},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "x"},
                        },
                        {"type": "text", "text": "agentId: a1"},
                    ],
                }
            ],
        },
    ]
    assert last_user_text(messages) == "[tool result Found 3 files. [image] agentId: a1]"
    messages[-1]["content"][0]["content"] = "plain"
    assert last_user_text(messages) == "[tool result plain]"


def test_one_money_formatter_everywhere():
    """Four money formats stood side by side ($0.0000, $0.00, –, $0.000000) and $0.004 read $0.00: every place
    writes money through proxy.money.usd."""
    import pathlib
    import re

    from proxy.money import usd
    from proxy.reports.statusline import Caps, SessionFacts, line

    assert usd(0.004) == "$0.0040" and usd(0.00004) == "<$.0001" and usd(0) == "$0" and usd(None) == "?"
    facts = SessionFacts(0.004, 0, 1, 10, 1, 0, 0, 0, None, 0, 0.004)
    assert line(facts, Caps(session_usd=1.0)).startswith("gatewatch $0.0040 · budget $1.00 left")
    root = pathlib.Path(__file__).resolve().parent.parent
    hand_written = re.compile(r"\$\{[^}]*:\.\d f\}".replace(" ", ""))  # f"${x:.2f}" and the like
    offenders = [
        f"{p.relative_to(root)}:{n}"
        for d in ("proxy", "console")
        for p in sorted((root / d).rglob("*.py"))
        if p.name not in ("budget.py", "money.py")  # budget.py's refusal text is the budget helper's
        for n, text in enumerate(p.read_text().splitlines(), 1)
        if hand_written.search(text)
    ]
    assert offenders == []


async def test_at_80x24_the_header_shows_a_cooling_target_and_the_whole_paste_hint(fake, sa_json, tmp_path):
    """A real gateway on a port the system picks (five digits on Linux's ephemeral range), one target cooling
    after a failure: the panes are too small at 80x24 to show it, so the header's first line names it, and the
    paste hint is whole (on two lines a shell takes as one command) instead of cut with an ellipsis."""
    from textual.widgets import Static

    from proxy.store import Store
    from tests.conftest import target_for
    from tests.test_console import call, plain, wait_for

    config = cfg.from_mapping(
        {
            "gateway": {"port": 0},
            "balancer": {"failure_threshold": 1, "cooldown": 600},
            "targets": [
                target_for("gemini", fake, sa_json, name="flash-one", model="gemini-2.5-flash"),
                target_for("gemini", fake, sa_json, name="flash-two", model="gemini-2.5-flash-lite"),
            ],
        },
        "t",
        {},
    )
    app = GatewatchApp(config, Store(tmp_path / "s.db"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: bool(app.url))
        port = app.url.rsplit(":", 1)[1]
        fake.script(Reply.error(503, "UNAVAILABLE", "down"), Reply.text("from the second"))
        assert (await call(app, "hi")).content[0].text == "from the second"
        banner = app.query_one("#banner", Static)
        await wait_for(pilot, lambda: "flash-one cooling" in plain(banner.content))
        lines = plain(banner.content).rstrip("\n").split("\n")
        assert "◌ flash-one cooling" in lines[0] and len(lines[0]) <= 78
        assert banner.size.height == len(lines) == 3  # every line drawn
        hint = " ".join(ln.removesuffix(" \\") for ln in lines[1:])
        assert hint == (
            f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port} ANTHROPIC_AUTH_TOKEN=gatewatch "
            "ANTHROPIC_MODEL=gemini-2.5-flash claude"
        )
        assert all(len(ln) <= 78 for ln in lines)
        await pilot.press("q")


def test_the_cli_s_small_untruths(tmp_path):
    """export -o into a missing folder or onto a directory, prune --older-than 0d, --version, the console's
    --price-as of a model with no price, an apostrophe in a search."""
    from proxy.store import query

    db = tmp_path / "g.db"
    _filled(db, [make(i) for i in range(2)])
    for target in (tmp_path / "missing" / "out.json", tmp_path):
        r = cli("export", "--db", str(db), "-o", str(target), cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr and ".part" not in r.stderr, r.stderr
        assert f"cannot write {target}" in r.stderr
    r = cli("prune", "--db", str(db), "--older-than", "0d", cwd=tmp_path)
    assert r.returncode == 2 and "nothing was deleted" in r.stderr
    r = cli("stats", "--db", str(db), cwd=tmp_path)
    assert [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("gemini-2.5-flash")] == ["2"]
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("gatewatch ")
    r = cli("--db", str(db), "--price-as", "nonsense-model", cwd=tmp_path)
    assert r.returncode == 2 and "--price-as nonsense-model" in r.stderr
    assert query.parse("it's").words == ("it's",)
    assert query.parse('"two words" don\'t').words == ("two words", "don't")
    with pytest.raises(query.QueryError, match="unbalanced quotes"):
        query.parse('"open')


async def test_an_invalid_filter_says_its_rows_are_the_last_filter_s_and_sessions_has_its_own_help(tmp_path):
    from textual.widgets import Static

    from console.history import HistoryTable
    from console.sessions import SessionsScreen
    from proxy.store import Store
    from tests.test_console import plain, wait_for

    _filled(tmp_path / "g.db", [make(i) for i in range(3)])
    app = GatewatchApp(cfg.Config(), Store(tmp_path / "g.db"), config_error="no gateway in this test")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("slash", *"number 1 model:")
        status = app.query_one("#status-line", Static)
        await wait_for(pilot, lambda: "filter:" in plain(status.content))
        assert "the list below is still 'number 1 model'" in plain(status.content) and table.has_class(
            "stale"
        )
        await pilot.press(*"flash")
        await wait_for(pilot, lambda: not table.has_class("stale"))
        await pilot.press("escape")
        app.action_sessions()
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen))
        app.action_help()
        await wait_for(
            pilot, lambda: type(app.screen).__name__ == "HelpScreen" and app.screen.query("#help-keys")
        )
        assert not app.screen.query("#help-terms")  # the Sessions' keys, not the history's filter language
        keys = plain(app.screen.query_one("#help-keys", Static).content)
        assert "Filter history" in keys and "Export" not in keys


async def test_health_answers_503_when_down_and_metrics_have_no_created_series(fake, sa_json):
    import aiohttp

    from tests.conftest import run_gateway, target_for

    raw = {
        "balancer": {"failure_threshold": 1, "cooldown": 600},
        "targets": [target_for("gemini", fake, sa_json)],
    }
    async for gw in run_gateway(raw, fake):
        fake.script(Reply.text("fine"))
        await gw.client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        async with aiohttp.ClientSession() as http:
            async with http.get(gw.url + "/metrics") as r:
                text = await r.text()
            assert "kong_ai_llm_requests_total" in text and "_created" not in text
            fake.script(Reply.error(503, "UNAVAILABLE", "down"))
            with pytest.raises(anthropic.APIStatusError):
                await gw.client.messages.create(
                    model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                )
            async with http.get(gw.url + "/health") as r:
                assert (r.status, (await r.json())["status"]) == (503, "down")


def test_show_s_system_diff_is_the_billing_header_and_the_folded_messages_not_every_line():
    """Claude Code's system prompt arrives in Gemini's systemInstruction line for line: the diff of `show` lists
    what differs (the billing header left out, the role-system messages folded in), not ~110 shifted lines."""
    from proxy.reports.inspection import client_view, diff, upstream_view
    from proxy.translate import request as treq

    prompt = "\n".join(f"line {i} of the system prompt" for i in range(60))
    req = {
        "model": "claude-opus-5-5",
        "max_tokens": 1000,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=cli;"},
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": prompt},
        ],
        "messages": [
            {"role": "system", "content": "# Environment\n - cwd: /home/dev/project\n - platform: linux"},
            {"role": "user", "content": "hello"},
        ],
    }
    body = treq.translate(req, treq.Target("gemini-2.5-flash", 8192)).body
    changes = [c for c in diff(client_view(req), upstream_view(body)) if c.path.startswith("system")]
    assert len(changes) <= 3, [
        c.path for c in changes
    ]  # the billing header (and its blank line); the folding


async def test_the_demo_s_targets_are_checked_against_an_upstream_already_listening(tmp_path):
    """The demo's simulated Gemini listens before the hosted gateway checks its targets' credentials: no target
    starts as 'unchecked: … could not be reached' while the demo's calls go through it a moment later."""
    from console.demo import Demo
    from proxy.store import Store

    demo = Demo(rate=20, seed=3, limit=1)
    app = GatewatchApp(
        demo.config,
        Store(tmp_path / "demo.db", secrets=demo.config.secrets()),
        on_ready=demo.on_ready,
        before_start=demo.before_start,
    )
    async with app.run_test(size=(120, 36)) as pilot:
        from tests.test_console import wait_for

        await wait_for(pilot, lambda: bool(app.url))
        checks = {c.target: (c.state, c.detail) for c in app.host.service.checks}
        assert checks and all(state == "ok" for state, _ in checks.values()), checks
        await pilot.press("q")
