"""Claude Code as its users run it (issue 21): a headless answer is the answer's text, and model discovery
offers every target. Drives the real CLI where it is installed, the anthropic SDK doing what it does otherwise."""

from __future__ import annotations

import json
import uuid

import pytest

from proxy.simulator import Reply
from tests import claude_cli
from tests.conftest import API_KEY, run_gateway

GEMINI3 = "gemini-3-pro-preview"


def studio(fake, model: str = GEMINI3, name: str = "studio", **extra) -> dict:
    return {
        "name": name,
        "provider": "gemini",
        "model": model,
        "api_key": API_KEY,
        "api_endpoint": fake.url,
        **extra,
    }


def text_parts(contents: list[dict]) -> list[dict]:
    return [p for c in contents if c["role"] == "model" for p in c["parts"] if "text" in p]


async def test_claude_p_returns_the_text_of_a_thinking_answer_with_a_signed_text_part(fake, tmp_path):
    fake.script(
        Reply.thinking("Two and two.", "The answer is 4."), Reply.thinking("Three and three.", "It is 6.")
    )
    async for gw in run_gateway({"targets": [studio(fake)]}, fake):
        if claude_cli.CLAUDE:
            first = await claude_cli.run(gw.url, tmp_path / "home", "what is 2+2?")
            assert first["result"] == "The answer is 4." and first["is_error"] is False, first
            again = await claude_cli.run(gw.url, tmp_path / "home", "--continue", "and 3+3?")
            assert again["result"] == "It is 6.", again
        else:  # what `claude -p` does: stream with thinking, report the last block
            session = {"x-claude-code-session-id": str(uuid.uuid4())}
            ask = {"role": "user", "content": "what is 2+2?"}
            async with gw.client.messages.stream(
                model="claude-opus-5-5",
                max_tokens=32000,
                thinking={"type": "adaptive"},
                messages=[ask],
                extra_headers=session,
            ) as s:
                msg = await s.get_final_message()
            assert msg.content[-1].type == "text" and msg.content[-1].text == "The answer is 4."
            await gw.client.messages.create(
                model="claude-opus-5-5",
                max_tokens=8000,
                thinking={"type": "adaptive"},
                messages=[
                    ask,
                    {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
                    {"role": "user", "content": "and 3+3?"},
                ],
                extra_headers=session,
            )
        first_rec, second_rec = gw.records[-2:]
    # the client never saw the signature; the gateway kept it and put it back on the text Gemini signed
    assert "signature-held" in [n.kind for n in first_rec.notes]
    signed = [p for p in text_parts(fake.received[-1].body["contents"]) if p["text"] == "The answer is 4."]
    assert signed and signed[0]["thoughtSignature"]
    kept = [n for n in second_rec.notes if n.kind == "signature-kept"]
    assert kept and kept[0].data["from_gateway"] == 1


async def test_a_whole_answer_ends_with_its_text_and_its_signature_comes_back(fake):
    fake.script(Reply.thinking("hm", "Four."), Reply.text("ok"))
    session = {"x-claude-code-session-id": "s-oneshot"}
    async for gw in run_gateway({"targets": [studio(fake)]}, fake):
        ask = {"role": "user", "content": "2+2?"}
        kw = {"model": "claude-opus-5-5", "max_tokens": 8000, "thinking": {"type": "adaptive"}}
        msg = await gw.client.messages.create(messages=[ask], extra_headers=session, **kw)
        assert [b.type for b in msg.content] == ["thinking", "text"] and msg.content[-1].text == "Four."
        history = [ask, {"role": "assistant", "content": [b.model_dump() for b in msg.content]}, ask]
        await gw.client.messages.create(messages=history, extra_headers=session, **kw)
        # another session's history with the same words gets nothing of this one's
        await gw.client.messages.create(
            messages=history, extra_headers={"x-claude-code-session-id": "s-2"}, **kw
        )
    mine, other = fake.received[-2:]
    assert [p.get("thoughtSignature") is not None for p in text_parts(mine.body["contents"])] == [True]
    assert [p.get("thoughtSignature") for p in text_parts(other.body["contents"])] == [None]
    assert "signature-lost" in [n.kind for n in gw.records[-1].notes]


@pytest.mark.parametrize("stream", [True, False])
async def test_function_call_signatures_still_travel_with_the_client_on_gemini_3(fake, stream):
    fake.script(Reply.call("Bash", {"command": "ls"}), Reply.text("done"))
    tools = [
        {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
    ]
    kw = {"model": "claude-opus-5-5", "max_tokens": 8000, "tools": tools, "thinking": {"type": "adaptive"}}
    async for gw in run_gateway({"targets": [studio(fake)]}, fake):
        ask = {"role": "user", "content": "list"}
        if stream:
            async with gw.client.messages.stream(messages=[ask], **kw) as s:
                msg = await s.get_final_message()
        else:
            msg = await gw.client.messages.create(messages=[ask], **kw)
        assert [b.type for b in msg.content] == ["thinking", "tool_use"]
        call = msg.content[-1]
        await gw.client.messages.create(
            messages=[
                ask,
                {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "a b"}],
                },
            ],
            **kw,
        )  # the strict fake refuses a gemini-3 call without Gemini's signature
    parts = [p for c in fake.received[-1].body["contents"] for p in c["parts"] if "functionCall" in p]
    assert parts[0]["thoughtSignature"] not in (None, "skip_thought_signature_validator")


def three(fake) -> dict:
    return {
        "routes": [{"model": "claude-*haiku*", "targets": ["lite"]}],
        "targets": [
            studio(fake, "gemini-3.8-flash", "flash"),
            studio(fake, "gemini-3.5-flash-lite", "lite"),
            studio(fake, "gemini-4-carbon", "carbon", max_tokens=32000),
        ],
    }


async def test_discovery_offers_every_target_and_route_and_an_id_from_it_is_served_by_its_target(
    fake, tmp_path
):
    want = {
        "claude-gw-flash": "flash",
        "claude-gw-lite": "lite",
        "claude-gw-carbon": "carbon",
        "claude-gw-haiku-route": "lite",
    }
    async for gw in run_gateway(three(fake), fake):
        if claude_cli.CLAUDE:
            home = tmp_path / "home"
            on = {"CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"}
            await claude_cli.run(gw.url, home, "hello", **on)
            cache = json.loads((home / ".claude/cache/gateway-models.json").read_text())
            kept = {m["id"]: m for m in cache["models"]}
            assert set(kept) == set(want)  # every one survived Claude Code's filter
            assert "gemini-4-carbon" in kept["claude-gw-carbon"]["description"]
            for model_id in ("claude-gw-carbon", "claude-gw-haiku-route"):
                result = await claude_cli.run(gw.url, home, "--model", model_id, "hello", **on)
                assert result["is_error"] is False, result
                assert (gw.records[-1].request_model, gw.records[-1].target) == (model_id, want[model_id])
        else:
            listed = {m.id: m async for m in gw.client.models.list(limit=1000)}
            kept = {i: m for i, m in listed.items() if "claude" in i.lower() or "anthropic" in i.lower()}
            assert set(kept) == set(want)
            for model_id, target in want.items():
                await gw.client.messages.create(
                    model=model_id, max_tokens=100, messages=[{"role": "user", "content": "hello"}]
                )
                assert gw.records[-1].target == target


GROUNDED = {
    "webSearchQueries": ["gatewatch gemini gateway"],
    "groundingChunks": [{"web": {"uri": "https://example.org/gatewatch", "title": "example.org"}}],
}


async def test_web_search_round_trips_through_google_search_grounding(fake, tmp_path):
    fake.script(
        Reply.call("WebSearch", {"query": "gatewatch gemini gateway"}),
        Reply(parts=[{"text": "gatewatch is a gateway to Gemini [1]."}], grounding=GROUNDED),
        Reply.text("It is a gateway: [example.org](https://example.org/gatewatch)."),
    )
    async for gw in run_gateway({"targets": [studio(fake, "gemini-3.8-flash")]}, fake):
        if claude_cli.CLAUDE:
            out = await claude_cli.run(
                gw.url, tmp_path / "home", "search the web for gatewatch", "--allowedTools", "WebSearch"
            )
            assert out["result"].startswith("It is a gateway") and out["is_error"] is False, out
            # Claude Code's WebSearch tool read our blocks: the link went back to the model in its result
            results = [
                b
                for m in gw.records[-1].client_request["messages"]
                if isinstance(m["content"], list)
                for b in m["content"]
                if b.get("type") == "tool_result"
            ]
            assert "https://example.org/gatewatch" in str(results)
        else:
            fake.queue.popleft()
            async with gw.client.messages.stream(  # as Claude Code's WebSearch tool asks
                model="claude-opus-5-5",
                max_tokens=8000,
                tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
                messages=[{"role": "user", "content": "Perform a web search for the query: gatewatch"}],
            ) as s:
                msg = await s.get_final_message()
            assert [b.type for b in msg.content] == ["server_tool_use", "web_search_tool_result", "text"]
            assert msg.content[1].content[0].url == "https://example.org/gatewatch"
            assert msg.usage.server_tool_use.web_search_requests == 1
            fake.queue.popleft()
    search = [r for r in gw.records if "search-mapped" in [n.kind for n in r.notes]]
    assert (
        len(search) == 1 and search[0].usage.time_to_first_token is not None
    )  # held text still times its first token
    searched = [r for r in fake.received if "googleSearch" in str(r.body.get("tools"))]
    assert len(searched) == 1 and [list(t) for t in searched[0].body["tools"]] == [["googleSearch"]]
