"""Fidelity at the edges (protocol notes §9), through real sockets against the strict fake: on both providers
and on a gemini-2.5 and a gemini-3 model."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from proxy.simulator import Reply
from tests.conftest import Running, run_gateway, target_for

MODELS = ["gemini-2.5-flash", "gemini-3-pro-preview"]

LONG = "mcp__plugin_acme-observability-suite__query_time_series_metrics_for_a_service_by_label"
ODD = ["7zip_extract", "-dash-first", "has space/and slash", LONG]


@pytest.fixture(params=[(p, m) for p in ("vertex", "gemini") for m in MODELS], ids=lambda v: f"{v[0]}-{v[1]}")
async def gwm(request, fake, sa_json) -> AsyncIterator[Running]:
    """The gateway in front of the strict fake: each provider, each model generation."""
    provider, model = request.param
    raw = {
        "gateway": {"ping_interval": 5},
        "targets": [target_for(provider, fake, sa_json, model=model, max_tokens=65536)],
    }
    async for r in run_gateway(raw, fake):
        yield r


def tool(name: str, deferred: bool = False) -> dict:
    t = {
        "name": name,
        "description": f"The {name} tool.",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    }
    if deferred:
        t["defer_loading"] = True
    return t


def declared(body: dict) -> list[str]:
    return [d["name"] for t in body.get("tools", []) for d in t.get("functionDeclarations", [])]


# -- 1. tool names ---------------------------------------------------------------------------------------------
async def test_tool_names_gemini_cannot_take_are_mapped_and_come_back_as_the_clients_own(gwm):
    tools = [tool(n) for n in ODD] + [tool("Bash")]
    gwm.fake.responder = lambda body: Reply.call(declared(body)[3], {"q": "cpu"})
    msg = await gwm.client.messages.create(
        model="x", max_tokens=1000, tools=tools, messages=[{"role": "user", "content": "look"}]
    )
    sent = declared(gwm.fake.received[-1].body)
    assert sent[-1] == "Bash"  # a valid name is left alone
    assert all(len(n) <= 64 and n != o for n, o in zip(sent[:4], ODD, strict=True))
    assert sent[3].startswith("mcp__plugin_acme-observability")  # readable
    assert msg.content[-1].type == "tool_use" and msg.content[-1].name == LONG
    assert gwm.records[-1].tools_used == [LONG]

    # the same names the next time: the mapping is deterministic
    gwm.fake.responder = lambda body: Reply.call(declared(body)[0], {"q": "x"})
    async with gwm.client.messages.stream(
        model="x", max_tokens=1000, tools=tools, messages=[{"role": "user", "content": "again"}]
    ) as s:
        streamed = await s.get_final_message()
    assert declared(gwm.fake.received[-1].body) == sent
    assert streamed.content[-1].name == "7zip_extract"


async def test_history_and_tool_choice_use_the_mapped_names(gwm):
    tools = [tool(LONG), tool("Bash")]
    history = [
        {"role": "user", "content": "look"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": LONG, "input": {"q": "cpu"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]},
    ]
    gwm.fake.script(Reply.text("done"))
    await gwm.client.messages.create(
        model="x",
        max_tokens=100,
        tools=tools,
        tool_choice={"type": "tool", "name": LONG},
        messages=history,
    )
    body = gwm.fake.received[-1].body
    mapped = declared(body)[0]
    assert mapped != LONG
    assert body["contents"][1]["parts"][0]["functionCall"]["name"] == mapped
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == mapped
    assert body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == [mapped]


async def test_a_deferred_tool_with_a_bad_name_is_never_validated_and_counts_work(gwm):
    tools = [tool("Bash"), tool("9" * 100, deferred=True)]
    n = await gwm.client.messages.count_tokens(
        model="x", tools=tools, messages=[{"role": "user", "content": "hi"}]
    )
    assert n.input_tokens > 0 and not gwm.records[-1].usage.estimated
    gwm.fake.script(Reply.text("ok"))
    await gwm.client.messages.create(
        model="x", max_tokens=10, tools=tools, messages=[{"role": "user", "content": "hi"}]
    )
    assert declared(gwm.fake.received[-1].body) == ["Bash"]


def test_the_strict_fake_refuses_a_65_character_name_anywhere():
    from tests import strict

    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "x"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "a" * 65, "args": {}}}]},
        ]
    }
    assert "maximum length of 64" in strict.validate("gemini", "generateContent", body, "gemini-2.5-flash")
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    body["tools"] = [{"functionDeclarations": [{"name": "a" * 65}]}]
    assert "invalid function name" in strict.validate("gemini", "generateContent", body, "gemini-2.5-flash")
    body["tools"] = [{"functionDeclarations": [{"name": "a" * 64}]}]
    assert strict.validate("gemini", "generateContent", body, "gemini-2.5-flash") is None
