"""`GET /v1/models` in the Anthropic Models API shape, through the official SDK and as Claude Code asks."""

from __future__ import annotations

import aiohttp
import anthropic
import pytest

from tests.conftest import API_KEY, run_gateway, target_for


@pytest.fixture
async def gw2(fake, sa_json):
    raw = {
        "targets": [
            target_for("gemini", fake, sa_json, max_tokens=8192),
            {"name": "pro", "provider": "gemini", "model": "gemini-3-pro-preview", "api_key": API_KEY},
            {"name": "again", "provider": "gemini", "model": "gemini-2.5-flash", "api_key": API_KEY},
            {"name": "watch", "provider": "anthropic", "model": "*"},
        ]
    }
    async for r in run_gateway(raw, fake):
        yield r


IDS = ["claude-gw-studio", "claude-gw-pro", "claude-gw-again", "gemini-2.5-flash", "gemini-3-pro-preview"]


async def test_the_sdk_lists_the_served_models_with_their_real_limits(gw2):
    models = [m async for m in gw2.client.models.list()]
    assert [m.id for m in models] == IDS  # a claude id per target (Claude Code keeps only those), then models
    flash, pro = models[3:]
    assert flash.type == "model" and flash.lifecycle == "active"
    assert flash.max_input_tokens == 1_048_576 and flash.max_tokens == 8192  # the target's cap
    assert pro.max_input_tokens == 1_048_576 and pro.max_tokens == 65536
    assert flash.created_at.year == 1970  # unknown release date: the epoch, as the API allows


async def test_the_sdk_pages_with_limit_and_cursors(gw2):
    first = await gw2.client.models.list(limit=1)
    assert [m.id for m in first.data] == ["claude-gw-studio"] and first.has_more
    assert first.first_id == first.last_id == "claude-gw-studio"
    every = [m.id async for m in await gw2.client.models.list(limit=1)]
    assert every == IDS
    back = await gw2.client.models.list(before_id="gemini-3-pro-preview")
    assert [m.id for m in back.data] == IDS[:4]


async def test_retrieve_one_and_an_unknown_id_is_a_404_in_anthropic_s_shape(gw2):
    m = await gw2.client.models.retrieve("gemini-3-pro-preview")
    assert m.id == "gemini-3-pro-preview" and m.max_input_tokens == 1_048_576
    with pytest.raises(anthropic.NotFoundError) as err:
        await gw2.client.models.retrieve("claude-opus-5-5")
    assert err.value.body["error"]["type"] == "not_found_error"


async def test_claude_code_s_discovery_call_with_a_path_prefix(gw2):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gw2.url}/anything/v1/models?limit=1000") as r:
            assert r.status == 200 and r.headers["request-id"]
            body = await r.json()
        assert set(body) == {"data", "has_more", "first_id", "last_id"} and body["has_more"] is False
        assert len(body["data"]) == 5
        async with http.get(f"{gw2.url}/v1/models?limit=0") as r:
            assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"


async def test_a_target_s_claude_id_carries_what_claude_code_shows_and_anthropic_s_capabilities(gw2):
    m = await gw2.client.models.retrieve("claude-gw-pro")
    assert m.max_input_tokens == 1_048_576 and m.max_tokens == 65536
    assert "Gemini 3 Pro" in m.display_name and "pro" in m.display_name  # the model's name, the target's
    raw = await gw2.client.models.with_raw_response.retrieve("claude-gw-pro")
    said = raw.http_response.json()["description"]
    assert "gemini-3-pro-preview" in said and "1,048,576" in said and "65,536" in said and "$2" in said
    caps = m.capabilities
    assert caps.thinking.supported and caps.thinking.types.adaptive.supported and caps.effort.high.supported
    assert caps.image_input.supported and caps.pdf_input.supported and caps.server_tools.web_search.supported
    assert not caps.batch.supported and not caps.structured_outputs.supported
