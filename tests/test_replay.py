"""`gatewatch replay` as a user runs it: a real process, a real store, the strict fake behind two targets, the
original calls made by the anthropic SDK. Replays go through a running gateway's door, or one hosted for them."""

import asyncio
import os
import subprocess
import sys

import aiohttp
import anthropic
import pytest

from proxy import config as cfg
from proxy.edge.feed import REPLAY_PATH
from proxy.money import usd
from proxy.service import Service
from proxy.simulator import Reply
from proxy.store import Store
from tests import warmcli
from tests.conftest import API_KEY
from tests.serving import ROOT, free_port


def write_config(tmp_path, fake, port: int, *, token: str | None = None, payloads: bool = True) -> str:
    gateway = f"port = {port}\nlog_payloads = {'true' if payloads else 'false'}\n"
    if token:
        gateway += f'auth_token = "{token}"\n'
    text = f"""
[gateway]
{gateway}
[store]
path = "{tmp_path / "g.db"}"

[[targets]]
name = "flash"
provider = "gemini"
model = "gemini-2.5-flash"
api_key = "{API_KEY}"
api_endpoint = "{fake.url}"

[[targets]]
name = "pro"
provider = "gemini"
model = "gemini-2.5-pro"
api_key = "{API_KEY}"
api_endpoint = "{fake.url}"
"""
    path = tmp_path / "gatewatch.toml"
    path.write_text(text)
    return str(path)


async def cli(*args: str, cwd) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    env["PYTHONPATH"] = ROOT
    env["COLUMNS"] = "160"
    proc = await warmcli.create_subprocess_exec(
        sys.executable,
        "-m",
        "console.cli",
        *args,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def serving(config_path: str) -> Service:
    config = cfg.load(config_path)
    service = Service(config, Store(config.store.path or "", secrets=config.secrets()))
    await service.start()
    return service


async def original_calls(url: str, n: int = 1, token: str = "sk-ant-x", **create) -> list[str]:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=token, max_retries=0)
    ids = []
    try:
        for i in range(n):
            raw = await client.messages.with_raw_response.create(
                model="gemini-2.5-flash",
                max_tokens=200,
                messages=[{"role": "user", "content": f"question {i}: what is in README.md?"}],
                tools=[
                    {
                        "name": "Read",
                        "description": "read a file",
                        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
                    }
                ],
                **create,
            )
            ids.append(raw.headers["request-id"])
    finally:
        await client.close()
    return ids


async def committed(store: Store, rid: str):
    for _ in range(200):
        rec = await asyncio.to_thread(store.get, rid)
        if rec is not None:
            return rec
        await asyncio.sleep(0.05)
    raise AssertionError(f"{rid} never reached the store")


async def test_a_replay_through_the_running_gateway_records_a_linked_call_and_compares(fake, tmp_path):
    port = free_port()
    path = write_config(tmp_path, fake, port)
    service = await serving(path)
    try:
        fake.script(Reply.text("The README explains how to run gatewatch.\nIt has a demo."))
        (original,) = await original_calls(service.url, stream=True)
        before = len(fake.received)
        fake.script(Reply.call("Read", {"path": "README.md"}, text="Let me read it."))
        # an id prefix, without its req_: accepted while it is unambiguous
        code, out, err = await cli(
            "replay", original[4:14], "--target", "pro", "--yes", "--config", path, cwd=tmp_path
        )
        assert code == 0, err
        assert (
            f"through http://127.0.0.1:{port}" in err
            and "the original cost " in err
            and "spends money too" in err
        )
        # the replay went to the second target's model, through the strict fake
        assert len(fake.received) == before + 1 and fake.received[-1].model == "gemini-2.5-pro"
        assert fake.received[-1].action == "streamGenerateContent"  # streamed as the original was
        replays = [s for s in service.store.page() if s.replay_of == original]
        assert len(replays) == 1
        new = await committed(service.store, replays[0].id)
        assert new.target == "pro" and new.response_model == "gemini-2.5-pro" and new.tools_used == ["Read"]
        assert (
            new.client_request["messages"]
            == (await committed(service.store, original)).client_request["messages"]
        )
        # both side by side: who answered, stop reason, tool calls, tokens, cost, latency, first token; a diff
        for row in (
            "answered by",
            "flash/gemini-2.5-flash",
            "pro/gemini-2.5-pro",
            "stop reason",
            "end_turn",
            "tool_use",
            "tool calls",
            'Read {"path":"README.md"}',
            "input tokens",
            "output tokens",
            "cost",
            "latency",
            "first token",
        ):
            assert row in out, row
        assert "-The README explains how to run gatewatch." in out and "+Let me read it." in out
    finally:
        await service.stop()


async def test_with_no_gateway_running_the_replay_hosts_one_and_a_model_override_reaches_the_target(
    fake, tmp_path
):
    path = write_config(tmp_path, fake, free_port())
    service = await serving(path)
    fake.script(Reply.text("four"))
    (original,) = await original_calls(service.url)
    await service.stop()
    fake.script(Reply.text("4"))
    code, out, err = await cli(
        "replay",
        original,
        "--target",
        "flash",
        "--model",
        "gemini-2.5-flash-lite",
        "-y",
        "--config",
        path,
        cwd=tmp_path,
    )
    assert code == 0, err
    assert "hosted here http://127.0.0.1:" in err
    assert fake.received[-1].model == "gemini-2.5-flash-lite"
    store = Store(tmp_path / "g.db", create=False)
    (replay,) = [s for s in store.page() if s.replay_of == original]
    rec = store.get(replay.id)
    assert rec.response_model == "gemini-2.5-flash-lite" and rec.replay_of == original
    assert rec.usage.cost is not None and rec.usage.cost > 0  # priced at the model that answered
    assert "-four" in out and "+4" in out and "flash/gemini-2.5-flash-lite" in out


async def test_a_call_whose_payloads_were_not_kept_says_so_and_sends_nothing(fake, tmp_path):
    path = write_config(tmp_path, fake, free_port(), payloads=False)
    service = await serving(path)
    try:
        (original,) = await original_calls(service.url)
        await committed(service.store, original)
        before = len(fake.received)
        code, out, err = await cli(
            "replay", original, "--target", "pro", "--yes", "--config", path, cwd=tmp_path
        )
        assert code == 1 and "payloads were not kept" in err and "nothing was sent" in err
        assert len(fake.received) == before
    finally:
        await service.stop()


async def test_without_yes_on_a_pipe_it_shows_the_cost_and_sends_nothing(fake, tmp_path):
    path = write_config(tmp_path, fake, free_port())
    service = await serving(path)
    try:
        (original,) = await original_calls(service.url)
        rec = await committed(service.store, original)
        before = len(fake.received)
        code, out, err = await cli("replay", original, "--target", "pro", "--config", path, cwd=tmp_path)
        assert code == 1 and f"the original cost {usd(rec.usage.cost)}" in err and "pass --yes" in err
        assert len(fake.received) == before
        code, out, err = await cli(
            "replay", original, "--target", "nope", "--yes", "--config", path, cwd=tmp_path
        )
        assert code == 1 and "no such target" in err and "flash, pro" in err
        assert len(fake.received) == before
    finally:
        await service.stop()


async def test_a_filter_replay_of_20_calls_prints_a_table_per_call_and_the_summary(fake, tmp_path):
    path = write_config(tmp_path, fake, free_port())
    service = await serving(path)
    try:
        fake.script(*[Reply.text(f"answer {i}") for i in range(20)])
        originals = await original_calls(service.url, 20)
        for rid in originals:
            await committed(service.store, rid)
        # the replays: 3 call a tool where the original answered, 2 fail upstream, the rest answer in text
        replies = {i: Reply.call("Read", {"path": "x"}) for i in (2, 5, 11)}
        replies.update({i: Reply.error(400, "INVALID_ARGUMENT", "bad things") for i in (7, 13)})

        def responder(body):
            text = body["contents"][-1]["parts"][-1]["text"]
            i = int(text.split(":")[0].split()[-1])
            return replies.get(i) or Reply.text(f"answer {i}")

        fake.responder = responder
        code, out, err = await cli(
            "replay",
            "model:flash",
            "--target",
            "pro",
            "--limit",
            "20",
            "--concurrency",
            "5",
            "--yes",
            "--config",
            path,
            cwd=tmp_path,
        )
        assert code == 0, err
        assert "replay 20 calls on pro" in err
        assert out.count("→ replay req_") == 20  # a table per call
        assert "replayed 20 of 20 calls" in out
        for row in ("total cost", "total latency", "tool choice differed", "stop reason differed", "errors"):
            assert row in out
        line = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.count("│") >= 3}
        assert line["tool choice differed"].split("│")[3].strip() == "3"
        assert line["stop reason differed"].split("│")[3].strip() == "5"  # 3 tool_use, 2 errors (no stop)
        assert line["errors"].split("│")[3].strip() == "2"
        store = service.store
        replays = [s for s in store.page(limit=100) if s.replay_of]
        assert len(replays) == 20 and {s.replay_of for s in replays} == set(originals)
        assert {s.target for s in replays} == {"pro"}
        # the same filter again takes the clients' calls, not the replays it just made
        fake.responder = lambda body: Reply.text("again")
        code, out, err = await cli(
            "replay",
            "model:flash",
            "--target",
            "pro",
            "--limit",
            "40",
            "--yes",
            "--config",
            path,
            cwd=tmp_path,
        )
        assert code == 0, err
        assert "replay 20 calls on pro" in err
    finally:
        await service.stop()


async def test_the_replay_door_wants_the_token_and_a_client_header_forces_no_target(fake, tmp_path):
    path = write_config(tmp_path, fake, free_port(), token="gw-secret-token")
    service = await serving(path)
    try:
        body = {
            "model": "gemini-2.5-flash",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
        }
        async with aiohttp.ClientSession() as s:
            url = service.url + REPLAY_PATH + "?of=req_x&target=pro"
            async with s.post(url, json=body) as r:
                assert r.status == 401
            async with s.post(
                url, json=body, headers={"x-api-key": "gw-secret-token", "origin": "https://evil.example"}
            ) as r:
                assert r.status == 403
        before = len(fake.received)
        # on /v1/messages no header or query names a target: the model routes the call
        client = anthropic.AsyncAnthropic(
            base_url=service.url,
            api_key="gw-secret-token",
            max_retries=0,
            default_headers={"x-gatewatch-target": "pro"},
            default_query={"target": "pro"},
        )
        await client.messages.create(**body)
        await client.close()
        assert len(fake.received) == before + 1 and fake.received[-1].model == "gemini-2.5-flash"
        # with the token, the CLI replays (the config holds it)
        (original,) = await original_calls(service.url, token="gw-secret-token")
        code, out, err = await cli(
            "replay", original, "--target", "pro", "--yes", "--config", path, cwd=tmp_path
        )
        assert code == 0, err
        assert fake.received[-1].model == "gemini-2.5-pro"
        assert "gw-secret-token" not in out + err
    finally:
        await service.stop()


# -- the console: `R` in a call's detail, and the cost pane's what-if ------------------------------------------
async def test_r_in_the_detail_confirms_then_replays_and_shows_the_comparison(fake, sa_json, tmp_path):
    from console.detail import DetailScreen
    from console.replay_view import ReplayScreen
    from tests.test_console import call, make_app, plain, wait_for

    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: bool(app.url))
        fake.script(Reply.text("alpha"))
        await call(app, "which letter comes first?", model="gemini-2.5-flash", stream=False)
        await wait_for(pilot, lambda: app.store.count() == 1)
        sent = len(fake.received)
        (original,) = app.store.page()
        app.main.open_record(original.id)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen))
        screen = app.screen
        intro = plain(screen.query_one("#replay-intro").content)
        assert "The original cost $" in intro and "spends money" in intro
        before = len(fake.received)
        assert before == sent  # nothing sent before the confirmation
        fake.script(Reply.text("beta"))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.result is not None, timeout=20)
        assert fake.received[-1].model == "gemini-2.5-pro" and len(fake.received) == before + 1
        new = screen.result.replay
        assert new.replay_of == original.id and new.target == "pro"
        from console.detail import timing_table

        assert f"replay of {original.id}" in " ".join(
            plain(timing_table(new)).split()
        )  # the detail links back
        shown = plain(screen.query_one("#replay-output").content)
        assert "pro/gemini-2.5-pro" in shown and "-alpha" in shown and "+beta" in shown
        await pilot.press("y")  # once is enough: a second y sends nothing more
        await pilot.pause(0.2)
        assert len(fake.received) == before + 1


async def test_r_on_a_call_without_payloads_says_so_and_sends_nothing(fake, sa_json, tmp_path):
    from console.replay_view import ReplayScreen
    from tests.test_console import make_app, plain, wait_for
    from tests.test_store import make

    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: bool(app.url))
        from console.detail import DetailScreen

        await app.push_screen(DetailScreen(make(1), app.url))
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen))
        assert "payloads were not kept" in plain(app.screen.query_one("#replay-intro").content, 76)
        await pilot.press("y")
        await pilot.pause(0.2)
        assert fake.received == []


async def test_the_cost_pane_shows_this_session_at_the_what_if_model_and_dollar_changes_it(
    fake, sa_json, tmp_path
):
    from console import fmt
    from tests.test_console import call, make_app, pane_text, wait_for

    app = make_app(fake, sa_json, tmp_path)
    app.main.price_as_choice = app.main.what_if = "gemini-2.5-flash-lite"
    app.main.stats.set_price_as("gemini-2.5-flash-lite")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.url))
        fake.script(Reply.text("alpha beta", prompt_tokens=40_000))
        await call(app, "price me", model="gemini-2.5-flash", stream=False)
        await wait_for(pilot, lambda: app.main.stats.calls == 1 and app.store.count() == 1)
        rec = app.store.get(app.store.page()[0].id)
        u = rec.usage
        lite = (u.input_tokens * 0.10 + u.output_tokens * 0.40 + u.cache_read_tokens * 0.01) / 1e6
        await wait_for(pilot, lambda: "at 2.5-flash-lite" in pane_text(app, "pane-cost"))
        assert fmt.usd(lite) in pane_text(app, "pane-cost")
        await pilot.press("dollar_sign")  # the next: each target's model (flash, then pro), then none
        await pilot.press("dollar_sign")
        pro = (u.input_tokens * 1.25 + u.output_tokens * 10 + u.cache_read_tokens * 0.125) / 1e6
        await wait_for(pilot, lambda: "at 2.5-pro" in pane_text(app, "pane-cost"))
        assert fmt.usd(pro) in pane_text(app, "pane-cost")
        await pilot.press("dollar_sign")
        await wait_for(pilot, lambda: " at " not in pane_text(app, "pane-cost"))


async def test_a_replay_at_another_model_is_priced_at_that_model_and_an_unknown_target_is_recorded(
    fake, sa_json
):
    from tests.conftest import run_gateway, target_for

    # the target's own prices are for its own model: $100 per 1M tokens either way
    raw = {"targets": [target_for("gemini", fake, sa_json, input_cost=100.0, output_cost=100.0)]}
    body = {"model": "claude-opus-5-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    async for r in run_gateway(raw, fake):
        async with aiohttp.ClientSession() as s:
            for model in ("gemini-2.5-pro", None):
                fake.script(Reply.text("x y z", prompt_tokens=1000))
                params = {"of": "req_orig", "target": "studio", **({"model": model} if model else {})}
                async with s.post(r.url + REPLAY_PATH, params=params, json=body) as resp:
                    assert resp.status == 200
                    assert resp.headers["request-id"] == r.records[-1].id
            async with s.post(
                r.url + REPLAY_PATH, params={"of": "req_orig", "target": "nope"}, json=body
            ) as resp:
                assert resp.status == 400
                assert "no target 'nope' (targets: studio)" in (await resp.json())["error"]["message"]
        at_pro, own, unknown = r.records[-3:]
        assert fake.received[-2].model == "gemini-2.5-pro" and fake.received[-1].model == "gemini-2.5-flash"
        assert at_pro.replay_of == own.replay_of == unknown.replay_of == "req_orig"
        u = at_pro.usage
        assert u.input_tokens == 1000
        assert u.cost == pytest.approx((u.input_tokens * 1.25 + u.output_tokens * 10.0) / 1e6)  # pro's price
        v = own.usage
        assert v.cost == pytest.approx(
            (v.input_tokens * 100 + v.output_tokens * 100) / 1e6
        )  # the target's own
        assert unknown.status == 400 and unknown.target is None and len(fake.received) == 2


async def test_r_in_a_console_attached_to_a_gateway_replays_through_that_gateway_with_its_token(
    fake, tmp_path
):
    from console.app import GatewatchApp
    from console.detail import DetailScreen
    from console.remote import Attached
    from console.replay_view import ReplayScreen
    from tests.test_console import plain, wait_for

    path = write_config(tmp_path, fake, free_port(), token="gw-secret-token")
    service = await serving(path)
    try:
        fake.script(Reply.text("first"))
        (original,) = await original_calls(service.url, token="gw-secret-token")
        rec = await committed(service.store, original)
        config = cfg.load(path)
        viewer = Attached(service.url, config.gateway.auth_token)
        app = GatewatchApp(config, Store(tmp_path / "g.db", create=False), host=viewer)
        async with app.run_test(size=(120, 36)) as pilot:
            await app.push_screen(DetailScreen(rec, service.url))
            await pilot.press("R")
            await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen))
            screen = app.screen
            fake.script(Reply.text("second"))
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.result is not None, timeout=20)
            assert screen.result.replay.replay_of == original and screen.result.replay.target == "pro"
            shown = plain(screen.query_one("#replay-output").content)
            assert "-first" in shown and "+second" in shown and "gw-secret-token" not in shown
        assert fake.received[-1].model == "gemini-2.5-pro"
    finally:
        await service.stop()


async def test_a_replay_counts_in_the_original_session_s_spend(fake, tmp_path):
    port = free_port()
    path = write_config(tmp_path, fake, port)
    service = await serving(path)
    sid = "5e551011-0000-4000-8000-000000000001"
    try:
        fake.script(Reply.text("first answer"))
        (original,) = await original_calls(service.url, extra_headers={"x-claude-code-session-id": sid})
        first = await committed(service.store, original)
        assert first.session_id == sid
        fake.script(Reply.text("second answer"))
        code, _, err = await cli(
            "replay", original, "--target", "pro", "--yes", "--config", path, cwd=tmp_path
        )
        assert code == 0, err
        (replay,) = [s for s in service.store.page() if s.replay_of == original]
        new = await committed(service.store, replay.id)
        # linked to the original, and in its session: a replay spends the session's money (its budget counts it)
        assert new.session_id == sid and new.replay_of == original
        totals = await asyncio.to_thread(service.store.session, sid)
        assert totals is not None and totals.calls == 2
    finally:
        await service.stop()
