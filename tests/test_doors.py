"""No door a client can open wider than its own call: a replay's model never steers the upstream URL, and model
strings a client (or an upstream) chooses never grow `/metrics`. Real sockets, the strict fake counting every
request it gets, the gateway's real /metrics read with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.edge.feed import EVENTS_PATH, REPLAY_PATH
from proxy.providers.served import OTHER, Served, segment, well_formed
from proxy.simulator import Reply
from tests.conftest import Running, run_gateway, target_for

BODY = {"model": "claude-sonnet-4-6", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
BAD_MODELS = (
    "../x",
    "..",
    "gemini-2.5-pro?key=attacker-key&",
    "x#frag",
    "../../v1beta/files",
    "x/../../../v1beta/tunedModels?",
    "gemini-2.5-flash/../../v1beta/files",
    "gemini 2.5",
    "gemini-9-unrouted",  # well formed, but no target serves it and the price table does not know it
    "gemini-2.5-flash-xyz",
)


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
async def test_a_replay_at_a_model_with_a_path_a_query_or_no_route_is_a_400_and_never_reaches_the_upstream(
    fake, sa_json, provider
):
    raw = {"targets": [target_for(provider, fake, sa_json)]}
    name = raw["targets"][0]["name"]
    async for r in run_gateway(raw, fake):
        async with aiohttp.ClientSession() as s:
            fake.script(Reply.text("fine"))  # a good replay first: the door is open to what the config serves
            params = {"of": "req_orig", "target": name, "model": "gemini-2.5-pro"}
            async with s.post(r.url + REPLAY_PATH, params=params, json=BODY) as resp:
                assert resp.status == 200, await resp.text()
            assert fake.received[-1].model == "gemini-2.5-pro"
            before = list(fake.requests)
            for model in BAD_MODELS:
                params = {"of": "req_orig", "target": name, "model": model}
                async with s.post(r.url + REPLAY_PATH, params=params, json=BODY) as resp:
                    body = await resp.json()
                    assert resp.status == 400, (model, body)
                    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
                    assert "is not one this gateway serves" in body["error"]["message"], model
                    assert body["request_id"] == resp.headers["request-id"]
        # not one request reached the upstream, on any path
        assert fake.requests == before
        refused = r.records[-len(BAD_MODELS) :]
        assert [x.status for x in refused] == [400] * len(BAD_MODELS)
        assert all(x.replay_of == "req_orig" and not x.tried_targets for x in refused)
        assert len(r.gateway._variants) == 1  # only the served model made a variant


async def test_a_client_s_model_string_never_changes_the_upstream_path_or_query(fake, sa_json):
    """On /v1/messages the model routes the call; the URL holds the target's model, whatever was asked."""
    raw = {"targets": [target_for("gemini", fake, sa_json)]}
    async for r in run_gateway(raw, fake):
        async with aiohttp.ClientSession() as s:
            for model in BAD_MODELS:
                fake.script(Reply.text("ok"))
                async with s.post(r.url + "/v1/messages", json={**BODY, "model": model}) as resp:
                    assert resp.status == 200, await resp.text()
        paths = [p for p in fake.requests if "generateContent" in p]
        assert paths == ["POST /v1beta/models/gemini-2.5-flash:generateContent"] * len(BAD_MODELS)


def test_model_names_in_urls_are_one_quoted_segment():
    for bad in ("..", ".", "../x", "a/b", "a?b", "a#b", "a b", "a\r\nb", "", "a%2Fb"):
        assert not well_formed(bad), bad
    for good in ("gemini-2.5-flash", "claude-sonnet-4-5@20250929", "gemini-2.5-flash-001", "m_1"):
        assert well_formed(good), good
    assert segment("a/../b?key=x#y") == "a%2F..%2Fb%3Fkey%3Dx%23y"
    assert segment("claude-sonnet-4-5@20250929") == "claude-sonnet-4-5@20250929"


def test_a_label_is_a_served_model_the_price_table_s_name_or_other():
    served = Served(["gemini-2.5-flash", "*"])
    assert served.label("gemini-2.5-flash") == "gemini-2.5-flash"
    assert served.label("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"  # the table's own name
    assert served.label("m-123", "gemini-2.5-flash") == "gemini-2.5-flash"  # the next name given
    assert served.label("m-123") == served.label("x" * 10_000) == served.label(None) == OTHER
    assert not served.replayable("*") and served.replayable("gemini-2.5-pro")


def _gemini_answer(model_version: str) -> bytes:
    return orjson.dumps(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
            "modelVersion": model_version,
        }
    )


def _series(text: str) -> list[tuple[str, dict[str, str]]]:
    return [(s.name, s.labels) for fam in text_string_to_metric_families(text) for s in fam.samples]


async def _replay(s: aiohttp.ClientSession, url: str, i: int) -> int:
    params = {"of": "req_orig", "target": "studio", "model": f"gemini-x-{i}"}
    async with s.post(url + REPLAY_PATH, params=params, json=BODY) as resp:
        return resp.status


async def _call(s: aiohttp.ClientSession, url: str, i: int) -> int:
    async with s.post(url + "/v1/messages", json={**BODY, "model": f"claude-{i}"}) as resp:
        return resp.status


async def test_three_thousand_model_strings_leave_metrics_under_a_thousand_series(fake, sa_json):
    """3,000 replays at 3,000 models (refused), and 3,000 calls each answered under a model name of the
    upstream's choosing: one label set, the served model's."""
    raw = {"targets": [target_for("gemini", fake, sa_json)]}
    n = 3000
    async for r in run_gateway(raw, fake):
        async with aiohttp.ClientSession() as s:
            for start in range(0, n, 100):
                statuses = await asyncio.gather(*(_replay(s, r.url, i) for i in range(start, start + 100)))
                assert set(statuses) == {400}
            fake.script(*(Reply(raw=_gemini_answer(f"gemini-model-{i}")) for i in range(n)))
            fake.script(Reply.text("the served one"))
            for start in range(0, n, 100):
                statuses = await asyncio.gather(*(_call(s, r.url, i) for i in range(start, start + 100)))
                assert set(statuses) == {200}
            assert await _call(s, r.url, n) == 200
            async with s.get(r.url + "/metrics") as resp:
                text = await resp.text()
        found = _series(text)
        assert len(found) < 1000, len(found)
        # an answer under a name no target serves is labelled by the target's model that served it
        assert {labels["ai_model"] for _, labels in found if "ai_model" in labels} == {"gemini-2.5-flash"}
        counted = [
            v
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "kong_ai_llm_requests_total"
            for v in [s.value]
        ]
        assert counted == [n + 1]
        assert len(r.records) == 2 * n + 1


async def test_gatewatch_replay_with_a_bad_or_unserved_model_sends_nothing_upstream(fake, tmp_path):
    from tests.serving import free_port
    from tests.test_replay import cli, original_calls, serving, write_config

    path = write_config(tmp_path, fake, free_port())
    service = await serving(path)
    try:
        (original,) = await original_calls(service.url)
        before = list(fake.requests)
        code, out, err = await cli(
            "replay", original, "--target", "flash", "--model", "../x", "-y", "--config", path, cwd=tmp_path
        )
        assert code == 1 and "--model '../x'" in err and "nothing was sent" in err
        assert "Traceback" not in err
        # well formed but served by no target: the gateway refuses it, the comparison says so
        code, out, err = await cli(
            "replay",
            original,
            "--target",
            "flash",
            "--model",
            "gemini-9",
            "-y",
            "--config",
            path,
            cwd=tmp_path,
        )
        assert code == 1 and "is not one this gateway serves" in out + err, out + err
        assert fake.requests == before
    finally:
        await service.stop()


# -- viewers of /gatewatch/events ------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def running(raw: dict, fake) -> AsyncIterator[Running]:
    """`run_gateway` as a context (a loop body's lambdas would bind a loop variable)."""
    gen = run_gateway(raw, fake)
    try:
        yield await gen.__anext__()
    finally:
        await gen.aclose()


async def _viewer(s: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    resp = await s.get(url + EVENTS_PATH)
    assert resp.status == 200
    assert (await resp.content.readuntil(b"\n\n")).startswith(b"event: hello")
    return resp


async def test_viewers_beyond_max_viewers_are_answered_503_until_one_leaves(fake, sa_json):
    raw = {"gateway": {"max_viewers": 2}, "targets": [target_for("gemini", fake, sa_json)]}
    async with running(raw, fake) as r:
        async with aiohttp.ClientSession() as s:
            first, second = await _viewer(s, r.url), await _viewer(s, r.url)
            async with s.get(r.url + EVENTS_PATH) as third:
                body = await third.json()
                assert third.status == 503 and body["error"]["type"] == "overloaded_error"
                assert "gateway.max_viewers" in body["error"]["message"]
            first.close()
            await wait_until(lambda: r.gateway.feed.viewers == 1)
            again = await _viewer(s, r.url)
            again.close()
            second.close()


async def wait_until(cond, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _count_finished(reader: aiohttp.ClientResponse, seen: list[int]) -> None:
    tail = b""
    async for chunk in reader.content.iter_any():
        text = tail + chunk
        seen[0] += text.count(b"event: finished")
        tail = text[-20:].replace(b"event: finished", b"")


async def test_a_viewer_that_never_reads_is_cut_off_at_its_byte_bound_and_a_reading_one_gets_everything(
    fake, sa_json, monkeypatch
):
    from proxy.edge import feed
    from proxy.record.events import CallFinished
    from tests.test_store import make

    monkeypatch.setattr(feed, "VIEWER_BYTES", 512 * 1024)
    raw = {"targets": [target_for("gemini", fake, sa_json)]}
    n = 100
    async with running(raw, fake) as r:
        port = int(r.url.rsplit(":", 1)[1])
        # the stalled viewer: a socket with a small receive buffer that sends its request and never reads
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await wait_until(lambda: r.gateway.feed.viewers == 1)
        seen = [0]
        async with aiohttp.ClientSession() as s:
            reader = await _viewer(s, r.url)

            reading = asyncio.ensure_future(_count_finished(reader, seen))
            peak = 0
            for i in range(n):
                r.gateway.bus.emit(CallFinished(make(i, response_text="r" * 100_000)))
                peak = max(peak, r.gateway.feed.buffered)
                await wait_until(lambda i=i: seen[0] == i + 1)
            assert r.gateway.feed.dropped == 1 and r.gateway.feed.viewers == 1  # the stalled one went
            # what waited for both, together, never passed one viewer's bound and one frame
            assert peak <= feed.VIEWER_BYTES + 110_000, peak
            assert seen[0] == n
            reader.close()
            reading.cancel()
        sock.close()
        await wait_until(lambda: r.gateway.feed.viewers == 0 and r.gateway.feed.buffered == 0)
        fake.script(Reply.text("still serving"))
        answer = await r.client.messages.create(**BODY)
        assert answer.content[0].text == "still serving"


def test_a_passthrough_of_any_model_folds_its_names_into_other_in_metrics():
    """An Anthropic passthrough at `*` forwards whatever model the client names, and answers under it: none of
    3,000 names adds a label set."""
    from proxy.observe.metrics import Metrics
    from proxy.record import Attempt
    from proxy.record.events import Bus, CallFinished
    from tests.test_store import make

    bus = Bus()
    metrics = Metrics(bus, served=Served(["*", "gemini-2.5-flash"]))
    for i in range(3000):
        name = f"claude-made-up-{i}"
        tried = [Attempt(target="claude", provider="anthropic", model=name, status=200)]
        bus.emit(CallFinished(make(i, response_model=name, provider="anthropic", tried_targets=tried)))
    found = _series(metrics.exposition().decode())
    assert {labels["ai_model"] for _, labels in found if "ai_model" in labels} == {OTHER}
    assert len(found) < 100


async def test_metrics_are_rendered_off_the_event_loop(fake, sa_json, monkeypatch):
    """A scrape renders the text on a worker thread: the loop that serves calls only reads a few figures."""
    import threading

    from proxy.observe import metrics as metrics_module

    rendered_on: list[int] = []
    real = metrics_module.generate_latest

    def spying(registry):
        rendered_on.append(threading.get_ident())
        return real(registry)

    monkeypatch.setattr(metrics_module, "generate_latest", spying)
    raw = {"targets": [target_for("gemini", fake, sa_json)]}
    async with running(raw, fake) as r:
        fake.script(Reply.text("ok"))
        await r.client.messages.create(**BODY)
        async with aiohttp.ClientSession() as s:
            async with s.get(r.url + "/metrics") as resp:
                text = await resp.text()
        assert resp.status == 200 and "kong_ai_llm_requests_total" in text
        assert "gatewatch_in_flight 0.0" in text
    assert rendered_on and threading.get_ident() not in rendered_on


def test_otel_model_attributes_are_folded_like_the_metric_labels():
    from types import SimpleNamespace

    from proxy.observe.otel import Telemetry

    telemetry = SimpleNamespace(served=Served(["gemini-2.5-flash"]))
    attrs = {
        "gen_ai.request.model": "claude-whatever-123",
        "gen_ai.response.model": "gemini-2.5-flash",
        "server.port": 443,
    }
    out = Telemetry._fold(telemetry, dict(attrs))  # type: ignore[arg-type]
    assert out == {**attrs, "gen_ai.request.model": OTHER}
    assert Telemetry._fold(telemetry, {"gen_ai.request.model": "claude-sonnet-4-6"}) == {
        "gen_ai.request.model": "claude-sonnet-4-6"
    }


async def test_a_viewer_that_leaves_ends_its_task_cleanly_with_no_task_left_pending():
    """A console quitting closes its feed: the gateway's handler is cancelled mid-wait, and the read of the
    viewer's queue it was waiting on ends with it (it used to be garbage collected pending: "Task was
    destroyed but it is pending!" on serve's terminal, each time a console quit)."""
    import gc

    from proxy.simulator import GeminiSimulator

    loop = asyncio.get_running_loop()
    said: list[str] = []
    before = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: said.append(str(ctx.get("message"))))
    sim = GeminiSimulator(api_key="k")
    await sim.start()
    try:
        raw = {"targets": [target_for("gemini", sim, "")]}
        async with running(raw, sim) as r:
            async with aiohttp.ClientSession() as s:
                for _ in range(3):
                    viewer = await _viewer(s, r.url)
                    viewer.close()
                    await wait_until(lambda: r.gateway.feed.viewers == 0)
                    gc.collect()
                    await asyncio.sleep(0)
        gc.collect()
    finally:
        await sim.stop()
        loop.set_exception_handler(before)
    assert not [m for m in said if "destroyed but it is pending" in m], said
