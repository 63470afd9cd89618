"""No door a client can open wider than its own call: a replay's model never steers the upstream URL, and model
strings a client (or an upstream) chooses never grow `/metrics`. Real sockets, the strict fake counting every
request it gets, the gateway's real /metrics read with prometheus_client's parser."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.feed import REPLAY_PATH
from proxy.served import OTHER, Served, segment, well_formed
from proxy.simulator import Reply
from tests.conftest import run_gateway, target_for

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
