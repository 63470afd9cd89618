"""Fidelity at the edges (protocol notes §9), through real sockets against the strict fake: on both providers
and on a gemini-2.5 and a gemini-3 model."""

from __future__ import annotations

import base64
import json
import re
from typing import AsyncIterator

import aiohttp
import anthropic
import orjson
import pytest

from proxy.simulator import Reply
from tests import cc_requests
from tests.conftest import Running, run_gateway, target_for
from tests.test_gateway import sdk_args

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


# -- 2. thought signatures -------------------------------------------------------------------------------------
CLAUDE_SIG = base64.b64encode(b"\x12\x08claude-issued-signature" * 4).decode()


def sigs_sent(body: dict) -> list[str]:
    return [p["thoughtSignature"] for c in body["contents"] for p in c["parts"] if "thoughtSignature" in p]


def claude_history(signature: str | None) -> list[dict]:
    """A tool step signed by Claude (a session that started on a Claude model), then its result."""
    assistant = [{"type": "text", "text": "Let me look."}]
    if signature:
        assistant.insert(0, {"type": "thinking", "thinking": "Listing files.", "signature": signature})
    assistant.append({"type": "tool_use", "id": "toolu_c1", "name": "Bash", "input": {"q": "ls"}})
    return [
        {"role": "user", "content": "what is here?"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_c1", "content": "a.txt"}]},
    ]


@pytest.mark.parametrize("signature", [CLAUDE_SIG, None], ids=["claude-signed", "unsigned"])
async def test_history_gemini_did_not_sign_is_accepted_and_no_foreign_signature_is_sent(gwm, signature):
    gwm.fake.script(Reply.text("There is a.txt."))
    msg = await gwm.client.messages.create(
        model="x",
        max_tokens=1000,
        tools=[tool("Bash")],
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=claude_history(signature),
    )
    assert msg.content[-1].text == "There is a.txt."
    body = gwm.fake.received[-1].body
    gemini3 = "gemini-3" in gwm.gateway.providers[0].model
    assert sigs_sent(body) == (["skip_thought_signature_validator"] if gemini3 else [])
    call = body["contents"][1]["parts"][-1]
    assert "functionCall" in call and ("thoughtSignature" in call) == gemini3
    notes = [str(n) for n in gwm.records[-1].notes]
    assert ("signature-dropped: foreign signature dropped (x1)" in "\n".join(notes)) == bool(signature)
    assert ("signature-injected: signature injected (x1)" in "\n".join(notes)) == gemini3


async def test_gemini_signatures_round_trip_through_the_client_unchanged(gwm):
    gwm.fake.script(Reply.call("Bash", {"q": "ls"}, text="Looking."))
    args = {
        "model": "x",
        "max_tokens": 1000,
        "tools": [tool("Bash")],
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "what is here?"}],
    }
    async with gwm.client.messages.stream(**args) as s:
        first = await s.get_final_message()
    issued = gwm.fake.received[-1]  # the fake issued a signature with its answer
    given = [b.signature for b in first.content if b.type == "thinking"]
    assert len(given) == 1 and given[0].startswith("gw1.")  # marked as ours on the way out
    tool_use = first.content[-1]
    args["messages"] = args["messages"] + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "a"}]},
    ]
    gwm.fake.script(Reply.text("Done."))
    await gwm.client.messages.create(**args)
    body = gwm.fake.received[-1].body
    assert issued is not gwm.fake.received[-1]
    assert sigs_sent(body) == [given[0].removeprefix("gw1.")]  # unwrapped, byte for byte
    assert body["contents"][1]["parts"][-1]["thoughtSignature"] == given[0].removeprefix("gw1.")
    # nothing injected or dropped: the call is in the current turn, signed by Gemini, and kept as it came
    kinds = {n.kind for n in gwm.records[-1].notes}
    assert "signature-kept" in kinds and not kinds & {"signature-injected", "signature-dropped"}


def test_the_strict_fake_knows_googles_gemini_3_signature_rule():
    from proxy.simulator import issue_signature
    from tests import strict

    def body(sig):
        call = {"functionCall": {"name": "Bash", "args": {}}}
        if sig:
            call["thoughtSignature"] = sig
        return {
            "contents": [
                {"role": "user", "parts": [{"text": "x"}]},
                {"role": "model", "parts": [{"text": "ok"}, call]},
                {"role": "user", "parts": [{"functionResponse": {"name": "Bash", "response": {}}}]},
            ]
        }

    for model in ("gemini-3-pro-preview", "gemini-3.1-flash"):
        assert "missing a thought_signature" in strict.validate(
            "gemini", "generateContent", body(None), model
        )
        assert "Corrupted thought signature" in strict.validate("vertex", "x", body(CLAUDE_SIG), model)
        assert strict.validate("gemini", "generateContent", body(issue_signature()), model) is None
        assert strict.validate("gemini", "generateContent", body(strict.SKIP), model) is None
    # Gemini 2.5 is lenient; a new user message starts a new turn on Gemini 3
    assert strict.validate("gemini", "generateContent", body(None), "gemini-2.5-flash") is None
    later = body(None)
    later["contents"] += [
        {"role": "model", "parts": [{"text": "a"}]},
        {"role": "user", "parts": [{"text": "b"}]},
    ]
    assert strict.validate("gemini", "generateContent", later, "gemini-3-pro-preview") is None


# -- 3. thinking -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("effort", ["low", "medium", "high", None])
async def test_claude_codes_adaptive_thinking_becomes_a_level_or_a_budget_that_leaves_room(gwm, effort):
    req = cc_requests.first_turn(stream=False)
    req["max_tokens"] = 8192  # the Kong how-to's cap: thinking must not take all of it
    if effort:
        req["output_config"] = {"effort": effort}
    else:
        del req["output_config"]
    gwm.fake.script(Reply.text("Hello."))
    await gwm.client.messages.create(**sdk_args(req))
    gen = gwm.fake.received[-1].body["generationConfig"]
    cfg = gen["thinkingConfig"]
    if "gemini-3" in gwm.gateway.providers[0].model:
        assert "thinkingBudget" not in cfg and cfg["thinkingLevel"] in ("LOW", "HIGH")
    else:
        assert "thinkingLevel" not in cfg and 0 < cfg["thinkingBudget"] <= gen["maxOutputTokens"] - 2048


# -- 4. empty answers ------------------------------------------------------------------------------------------
EMPTY = [
    pytest.param(lambda: Reply(parts=[], finish="STOP"), id="stop-no-content"),
    pytest.param(lambda: Reply(parts=[], finish="MALFORMED_FUNCTION_CALL"), id="malformed-call"),
]


@pytest.mark.parametrize("empty", EMPTY)
@pytest.mark.parametrize("stream", [False, True], ids=["oneshot", "stream"])
async def test_an_empty_answer_is_asked_again_once_on_the_same_target(gwm, empty, stream):
    gwm.fake.script(empty(), Reply.text("Here it is."))
    args = {"model": "x", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        async with gwm.client.messages.stream(**args) as s:
            msg = await s.get_final_message()
    else:
        msg = await gwm.client.messages.create(**args)
    assert msg.content[0].text == "Here it is." and msg.stop_reason == "end_turn"
    rec = gwm.records[-1]
    assert len(gwm.fake.received) == 2 and len(rec.tried_targets) == 2
    assert rec.tried_targets[0].error and "empty answer" in rec.tried_targets[0].error
    assert any(n.kind == "empty-retried" and "asked again" in n.detail for n in rec.notes)


@pytest.mark.parametrize("empty", EMPTY)
@pytest.mark.parametrize("stream", [False, True], ids=["oneshot", "stream"])
async def test_twice_empty_is_an_overloaded_error_claude_code_retries(gwm, empty, stream):
    gwm.fake.script(empty(), empty())
    args = {"model": "x", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.APIStatusError) as e:
        if stream:
            async with gwm.client.messages.stream(**args) as s:
                await s.get_final_message()
        else:
            await gwm.client.messages.create(**args)
    assert e.value.status_code == 529 and e.value.body["error"]["type"] == "overloaded_error"
    assert e.value.response.headers.get("retry-after")
    rec = gwm.records[-1]
    assert rec.status == 529 and len(rec.tried_targets) == 2
    assert any(n.kind == "empty-failed" and "failed as overloaded" in n.detail for n in rec.notes)


@pytest.mark.parametrize("provider", ["vertex", "gemini"])
@pytest.mark.parametrize("model", MODELS)
async def test_twice_empty_falls_back_to_the_next_target(fake, sa_json, provider, model):
    raw = {
        "targets": [
            target_for(provider, fake, sa_json, model=model, name="first"),
            target_for(provider, fake, sa_json, model=model, name="second"),
        ]
    }
    fake.script(Reply(parts=[], finish="STOP"), Reply(parts=[], finish="STOP"), Reply.text("From second."))
    async for gw in run_gateway(raw, fake):
        msg = await gw.client.messages.create(
            model="x", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
        assert msg.content[0].text == "From second."
        assert [a.target for a in gw.records[-1].tried_targets] == ["first", "first", "second"]


# -- 5. the billing header -------------------------------------------------------------------------------------
async def test_the_billing_header_stays_off_the_upstream_prompt_and_on_the_record(gwm):
    for subagent in (False, True):
        req = cc_requests.first_turn(stream=False)
        header = f"x-anthropic-billing-header: cc_version=2.1.331.a1{int(subagent)}; cc_entrypoint=sdk-cli;"
        req["system"][0]["text"] = header + (" cc_is_subagent=true;" if subagent else "")
        req["max_tokens"] = 8192  # the SDK wants a stream above that
        gwm.fake.script(Reply.text("ok"))
        await gwm.client.messages.create(**sdk_args(req))
        system = gwm.fake.received[-1].body["systemInstruction"]["parts"][0]["text"]
        assert "billing" not in system and system.startswith("You are a coding agent")
        rec = gwm.records[-1]
        assert rec.cc_version == f"2.1.331.a1{int(subagent)}" and rec.cc_is_subagent is subagent
    # the prompt's prefix is now the same on every call: Gemini's implicit cache can hit at token 0
    firsts = [r.body["systemInstruction"]["parts"][0]["text"] for r in gwm.fake.received[-2:]]
    assert firsts[0] == firsts[1]


# -- 6. errors -------------------------------------------------------------------------------------------------
async def post_raw(url: str, body: dict) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/messages", json=body) as r:
            return r.status, dict(r.headers), await r.read()


async def test_context_overflow_reads_as_anthropics_prompt_too_long(gwm):
    msg = "The input token count (1250000) exceeds the maximum number of tokens allowed (1048576)."
    gwm.fake.script(Reply.error(400, "INVALID_ARGUMENT", msg))
    status, headers, raw = await post_raw(
        gwm.url, {"model": "x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    )
    body = json.loads(raw)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert re.fullmatch(r"prompt is too long: \d+ tokens > \d+ maximum", body["error"]["message"])
    assert body["request_id"] == headers["request-id"] == gwm.records[-1].id


@pytest.mark.parametrize(
    "reply",
    [
        lambda: Reply.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
        lambda: Reply.error(403, "PERMISSION_DENIED", "Permission denied on resource project x."),
        lambda: Reply.error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    ],
    ids=["401", "403", "400-bad-key-no-details"],
)
async def test_credential_failures_are_the_gateways_502s_the_client_is_told_not_to_retry(gwm, reply):
    gwm.fake.script(reply(), reply())  # a 401 renews a Vertex token once and asks again
    with pytest.raises(anthropic.InternalServerError) as e:
        await gwm.client.messages.create(
            model="x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.response.headers["x-should-retry"] == "false"
    assert e.value.body["request_id"] == e.value.response.headers["request-id"]


async def test_a_real_bad_api_key_is_a_502_too(fake, sa_json):
    raw = {"targets": [target_for("gemini", fake, sa_json, api_key="AIzaSy-wrong")]}
    async for gw in run_gateway(raw, fake):
        with pytest.raises(anthropic.InternalServerError) as e:
            await gw.client.messages.create(
                model="x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert e.value.response.headers["x-should-retry"] == "false" and "API key" in e.value.message


async def test_every_response_carries_a_request_id_even_a_404(gwm):
    async with aiohttp.ClientSession() as http:
        async with http.get(gwm.url + "/nowhere") as r:
            assert r.status == 404 and r.headers["request-id"].startswith("req_")
            assert (await r.json())["request_id"] == r.headers["request-id"]
        async with http.head(gwm.url + "/") as r:
            assert r.headers["request-id"]


async def test_a_stream_error_closes_the_open_block_first(gwm):
    gwm.fake.script(Reply.text("one two three four five six seven eight", chunks=4, cut_after=2))
    body = {"model": "x", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    status, _, raw = await post_raw(gwm.url, body)
    events = [line[7:] for line in raw.decode().split("\n") if line.startswith("event: ")]
    assert status == 200 and events[-3:] == ["content_block_delta", "content_block_stop", "error"]
    last = json.loads(raw.decode().strip().split("\n")[-1][6:])
    assert last["request_id"] == gwm.records[-1].id


@pytest.mark.parametrize("stream", [False, True], ids=["oneshot", "stream"])
async def test_a_refusal_says_why_in_googles_words(gwm, stream):
    gwm.fake.script(Reply(parts=[], finish="PROHIBITED_CONTENT"))
    args = {"model": "x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        async with gwm.client.messages.stream(**args) as s:
            msg = await s.get_final_message()
    else:
        msg = await gwm.client.messages.create(**args)
    assert msg.stop_reason == "refusal" and "PROHIBITED_CONTENT" in msg.content[0].text


async def test_a_model_armor_block_says_why(gwm):
    blocked = {
        "promptFeedback": {"blockReason": "MODEL_ARMOR", "blockReasonMessage": "Blocked by Model Armor."},
        "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
    }
    gwm.fake.script(Reply(raw=orjson.dumps(blocked)))
    msg = await gwm.client.messages.create(
        model="x", max_tokens=9, messages=[{"role": "user", "content": "x"}]
    )
    assert msg.stop_reason == "refusal" and "Blocked by Model Armor." in msg.content[0].text


# -- 7. the rest -----------------------------------------------------------------------------------------------
async def test_web_search_is_declared_only_where_the_model_takes_it_beside_functions(gwm):
    web = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    gwm.fake.script(Reply.text("ok"), Reply.text("ok"))
    for tools in ([web, tool("Bash")], [web]):
        await gwm.client.messages.create(
            model="x", max_tokens=10, tools=tools, messages=[{"role": "user", "content": "news?"}]
        )
        sent = gwm.fake.received[-1].body["tools"]
        alone = len(tools) == 1
        gemini3 = "gemini-3" in gwm.gateway.providers[0].model
        assert any("googleSearch" in t for t in sent) == (alone or gemini3)
    assert not any("web search" in n.detail for n in gwm.records[-1].notes)


async def test_a_deferred_tool_called_in_history_without_its_reference_is_declared(gwm):
    tools = [tool("Bash"), tool("WebFetch", deferred=True)]
    history = [
        {"role": "user", "content": "fetch"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_w", "name": "WebFetch", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_w", "content": "page"}]},
    ]
    gwm.fake.script(Reply.text("ok"))
    await gwm.client.messages.create(model="x", max_tokens=10, tools=tools, messages=history)
    assert declared(gwm.fake.received[-1].body) == ["Bash", "WebFetch"]


async def test_an_interrupted_parallel_call_gets_a_response_under_its_own_name(gwm):
    history = [
        {"role": "user", "content": "both"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "Bash", "input": {"q": "a"}},
                {"type": "tool_use", "id": "toolu_b", "name": LONG, "input": {"q": "b"}},
            ],
        },
        # only the second was answered (the first interrupted)
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_b", "content": "b done"}]},
    ]
    gwm.fake.script(Reply.text("ok"))
    await gwm.client.messages.create(
        model="x", max_tokens=10, tools=[tool("Bash"), tool(LONG)], messages=history
    )
    responses = [p["functionResponse"] for p in gwm.fake.received[-1].body["contents"][2]["parts"]]
    assert [r["name"] for r in responses] == ["Bash", declared(gwm.fake.received[-1].body)[1]]
    assert responses[0]["response"] == {"error": "no result was returned"}
    assert responses[1]["response"] == {"content": "b done"}


async def test_enum_values_keep_their_json_type(gwm):
    t = tool("Pick")
    t["input_schema"]["properties"] = {"n": {"enum": [1, 2, 3]}, "flag": {"const": True}}
    t["input_schema"]["required"] = ["n"]
    gwm.fake.script(Reply.text("ok"))
    await gwm.client.messages.create(
        model="x", max_tokens=10, tools=[t], messages=[{"role": "user", "content": "pick"}]
    )
    props = gwm.fake.received[-1].body["tools"][0]["functionDeclarations"][0]["parameters"]["properties"]
    assert props["n"]["type"] == "integer" and "1, 2, 3" in props["n"]["description"]
    assert props["flag"]["type"] == "boolean" and "true" in props["flag"]["description"]


@pytest.mark.parametrize(
    "loc,host",
    [
        ("us", "aiplatform.us.rep.googleapis.com"),
        ("eu", "aiplatform.eu.rep.googleapis.com"),
        ("global", "aiplatform.googleapis.com"),
        ("europe-west4", "europe-west4-aiplatform.googleapis.com"),
    ],
)
async def test_vertex_hosts_for_regions_multi_regions_and_global(loc, host, fake, sa_json):
    from proxy import config as cfg
    from proxy.providers import make

    raw = target_for("vertex", fake, sa_json, location_id=loc)
    del raw["api_endpoint"]
    p = make(cfg.from_mapping({"targets": [raw]}, "t").targets[0])
    assert p.url("generateContent").startswith(f"https://{host}/v1/projects/example-project/locations/{loc}/")


# -- 9. a Claude session continued on Gemini 3 ----------------------------------------------------------------
def claude_session() -> dict:
    """A Claude-Code-shaped session recorded with a Claude model: Claude-signed thinking, a redacted thinking
    block, two sequential tool steps in the current turn (the second a parallel pair), then resumed."""
    req = cc_requests.first_turn("list the files, then read both")
    req["model"] = "claude-opus-5-5"
    req["messages"][1]["content"] = "# Environment\n - cwd: /home/dev/project"

    def step(n: int, calls: list[tuple[str, dict]]) -> list[dict]:
        assistant = [
            {"type": "thinking", "thinking": f"Step {n}.", "signature": CLAUDE_SIG},
            {"type": "redacted_thinking", "data": "RWFybGllciB0aG91Z2h0cw=="},
            {"type": "text", "text": f"Doing step {n}."},
        ]
        results = []
        for i, (name, args) in enumerate(calls):
            tid = f"toolu_01claude{n}{i}"
            assistant.append({"type": "tool_use", "id": tid, "name": name, "input": args})
            results.append({"type": "tool_result", "tool_use_id": tid, "content": f"{name} output {n}{i}"})
        return [{"role": "assistant", "content": assistant}, {"role": "user", "content": results}]

    req["messages"] += step(1, [("Bash", {"command": "ls", "description": "List"})])
    req["messages"] += step(2, [("Read", {"file_path": "/a"}), ("Read", {"file_path": "/b"})])
    return req


@pytest.mark.parametrize("provider", ["vertex", "gemini"])
async def test_a_claude_session_continues_on_a_gemini_3_target(fake, sa_json, provider):
    raw = {"targets": [target_for(provider, fake, sa_json, model="gemini-3-pro-preview")]}
    async for gw in run_gateway(raw, fake):
        fake.script(Reply.call("Bash", {"command": "wc -l /a /b", "description": "Count"}, text="Counting."))
        async with gw.client.messages.stream(**sdk_args(claude_session())) as s:
            msg = await s.get_final_message()
        assert msg.stop_reason == "tool_use" and msg.content[-1].name == "Bash"
        sent = fake.received[-1].body
        assert CLAUDE_SIG not in json.dumps(sent)  # never forwarded
        model_turns = [c for c in sent["contents"] if c["role"] == "model"]
        firsts = [next(p for p in c["parts"] if "functionCall" in p) for c in model_turns]
        assert [p["thoughtSignature"] for p in firsts] == ["skip_thought_signature_validator"] * 2
        sigs = [n.detail.split(":")[0] for n in gw.records[-1].notes if n.kind.startswith("signature-")]
        assert sigs == ["foreign signature dropped (x2)", "signature injected (x2)"]
        assert sent["generationConfig"]["thinkingConfig"]["thinkingLevel"] in ("LOW", "HIGH")
