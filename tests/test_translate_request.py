"""Anthropic → Gemini request translation: pure functions, checked against Google's own proto types."""

import base64

import pytest

from proxy.errors import GatewayError
from proxy.translate import marks, schema
from proxy.translate import request as treq
from tests import cc_requests, strict

TARGET = treq.Target("gemini-2.5-flash", max_tokens=8192)


@pytest.mark.parametrize("name", sorted(cc_requests.ALL))
def test_every_claude_code_shape_translates_to_a_body_google_accepts(name):
    body = treq.translate(cc_requests.ALL[name], TARGET).body
    assert strict.validate("gemini", "generateContent", body, "gemini-2.5-flash") is None


@pytest.mark.parametrize("name", sorted(cc_requests.ALL))
def test_every_shape_also_translates_with_json_schema_parameters(name):
    body = treq.translate(
        cc_requests.ALL[name], treq.Target("gemini-2.5-flash", schema_mode="json_schema")
    ).body
    assert strict.validate("vertex", "generateContent", body) is None
    decls = body["tools"][0]["functionDeclarations"]
    assert all("parameters" not in d for d in decls)
    assert all("$schema" not in d.get("parametersJsonSchema", {}) for d in decls)


def test_system_blocks_and_role_system_messages_join_in_order_into_system_instruction():
    body = treq.translate(cc_requests.first_turn(), TARGET).body
    text = body["systemInstruction"]["parts"][0]["text"]
    assert text.index("coding agent") < text.index("# Environment")
    assert text.startswith("You are a coding agent") and "billing-header" not in text
    assert [c["role"] for c in body["contents"]] == ["user"]


def test_max_tokens_is_capped_by_the_target_and_effort_sets_a_thinking_budget():
    body = treq.translate(cc_requests.first_turn(), TARGET).body
    gen = body["generationConfig"]
    assert gen["maxOutputTokens"] == 8192
    # effort medium asks 8192, but a quarter of the 8192 cap stays for the answer
    assert gen["thinkingConfig"] == {"thinkingBudget": 6144, "includeThoughts": False}


def test_unreferenced_deferred_tools_are_not_declared_but_referenced_ones_are():
    first = treq.translate(cc_requests.first_turn(), TARGET)
    assert "WebFetch" not in first.tool_names and "DeferredToolPlaceholder" not in first.tool_names
    later = treq.translate(cc_requests.toolsearch_turn(), TARGET)
    assert "WebFetch" in later.tool_names


def test_tool_results_become_function_responses_named_after_their_call():
    body = treq.translate(cc_requests.tool_turn("hello\n"), TARGET).body
    model_turn, user_turn = body["contents"][1], body["contents"][2]
    assert model_turn["parts"][-1]["functionCall"] == {
        "name": "Bash",
        "args": {"command": "echo hello", "description": "Print hello"},
    }
    assert user_turn["parts"][0] == {"functionResponse": {"name": "Bash", "response": {"content": "hello\n"}}}


def test_an_error_tool_result_is_sent_as_error():
    body = treq.translate(cc_requests.tool_turn("denied", is_error=True), TARGET).body
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {"error": "denied"}


def test_an_echoed_signature_returns_on_the_part_that_followed_its_thinking_block():
    sig = base64.b64encode(b"gemini-thought-signature").decode()
    # thinking, text, tool_use: Gemini had signed the text
    body = treq.translate(cc_requests.tool_turn(signature=marks.wrap(sig)), TARGET).body
    assert body["contents"][1]["parts"][0] == {"text": "Running it.", "thoughtSignature": sig}
    # text, thinking, tool_use: Gemini had signed the call
    req = cc_requests.tool_turn(signature=marks.wrap(sig))
    blocks = req["messages"][2]["content"]
    blocks[0], blocks[1] = blocks[1], blocks[0]
    parts = treq.translate(req, TARGET).body["contents"][1]["parts"]
    assert parts[0] == {"text": "Running it."} and parts[1]["thoughtSignature"] == sig
    # a thinking block last: Gemini's trailing empty part, signed
    req["messages"][2]["content"] = [blocks[0], blocks[2], blocks[1]]
    parts = treq.translate(req, TARGET).body["contents"][1]["parts"]
    assert parts[-1] == {"text": "", "thoughtSignature": sig}
    assert strict.validate("gemini", "generateContent", treq.translate(req, TARGET).body) is None


def test_a_remembered_signature_is_used_when_the_client_dropped_thinking():
    sig = base64.b64encode(b"remembered").decode()
    body = treq.translate(cc_requests.tool_turn(), TARGET, {"toolu_01abc": sig}).body
    call = [p for p in body["contents"][1]["parts"] if "functionCall" in p][0]
    assert call["thoughtSignature"] == sig


@pytest.mark.parametrize("sig", ["gw-none", "EqQB not base64 !!", base64.b64encode(b"claude's").decode()])
def test_a_foreign_or_synthetic_signature_is_never_sent_to_gemini(sig):
    t = treq.translate(cc_requests.tool_turn(signature=sig), TARGET)
    assert all("thoughtSignature" not in p for c in t.body["contents"] for p in c["parts"])
    dropped = [n.detail for n in t.notes if n.kind == "signature-dropped"]
    assert [d.split(":")[0] for d in dropped] == (
        [] if sig == "gw-none" else ["foreign signature dropped (x1)"]
    )


def test_an_unanswered_call_gets_a_response_so_gemini_accepts_the_turn():
    req = cc_requests.tool_turn()
    req["messages"][-1]["content"] = [{"type": "text", "text": "never mind, stop"}]
    body = treq.translate(req, TARGET).body
    assert strict.validate("gemini", "generateContent", body) is None
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {
        "error": "no result was returned"
    }


def test_an_orphan_tool_result_becomes_text():
    req = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_gone", "content": "42"}],
            }
        ],
    }
    body = treq.translate(req, TARGET).body
    assert strict.validate("gemini", "generateContent", body) is None
    assert "42" in body["contents"][0]["parts"][0]["text"]


def test_consecutive_turns_merge_and_empty_text_is_dropped():
    req = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": ""}]},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": "c"},
        ],
    }
    body = treq.translate(req, TARGET).body
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}]},
    ]


def test_images_and_documents_map_to_inline_and_file_data():
    req = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"},
                    },
                    {"type": "text", "text": "describe"},
                ],
            }
        ],
    }
    parts = treq.translate(req, TARGET).body["contents"][0]["parts"]
    assert parts[0] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert parts[1] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}
    assert parts[2]["inlineData"]["mimeType"] == "application/pdf"
    assert parts[3] == {"text": "plain doc"}


def test_tool_choice_maps_to_function_calling_modes():
    req = cc_requests.first_turn()
    for choice, cfg in [
        ({"type": "auto"}, {"mode": "AUTO"}),
        ({"type": "any"}, {"mode": "ANY"}),
        ({"type": "none"}, {"mode": "NONE"}),
        ({"type": "tool", "name": "Read"}, {"mode": "ANY", "allowedFunctionNames": ["Read"]}),
    ]:
        body = treq.translate({**req, "tool_choice": choice}, TARGET).body
        assert body["toolConfig"] == {"functionCallingConfig": cfg}
        assert strict.validate("gemini", "generateContent", body) is None


def test_sampling_parameters_and_stop_sequences():
    req = {
        "model": "m",
        "max_tokens": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["a", "b", "c", "d", "e", "f"],
        "messages": [{"role": "user", "content": "x"}],
    }
    gen = treq.translate(req, TARGET).body["generationConfig"]
    assert gen == {
        "maxOutputTokens": 100,
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
        "stopSequences": ["a", "b", "c", "d", "e"],
        "thinkingConfig": {"thinkingBudget": 0},  # no thinking asked: none, as on Anthropic
    }


@pytest.mark.parametrize(
    "thinking,model,expected",
    [
        (
            {"type": "enabled", "budget_tokens": 5000},
            "gemini-2.5-flash",
            {"thinkingBudget": 5000, "includeThoughts": True},
        ),
        ({"type": "disabled"}, "gemini-2.5-flash", {"thinkingBudget": 0}),
        ({"type": "disabled"}, "gemini-2.5-pro", {"thinkingBudget": 128}),
        ({"type": "adaptive"}, "gemini-2.5-pro", {"thinkingBudget": 15000, "includeThoughts": True}),
        (
            {"type": "enabled", "budget_tokens": 90000},
            "gemini-2.5-flash",
            {"thinkingBudget": 15000, "includeThoughts": True},
        ),
        ({"type": "adaptive"}, "gemini-3-pro-preview", {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ({"type": "adaptive", "display": "omitted"}, "gemini-3-flash-preview", {"thinkingLevel": "HIGH"}),
        (
            {"type": "enabled", "budget_tokens": 1000},
            "gemini-3-flash-preview",
            {"thinkingLevel": "LOW", "includeThoughts": True},
        ),
        ({"type": "disabled"}, "gemini-3-flash-preview", {"thinkingLevel": "MINIMAL"}),
        ({"type": "disabled"}, "gemini-3-pro-preview", {"thinkingLevel": "LOW"}),
    ],
)
def test_thinking_modes(thinking, model, expected):
    req = {
        "model": "m",
        "max_tokens": 20000,
        "thinking": thinking,
        "messages": [{"role": "user", "content": "x"}],
    }
    body = treq.translate(req, treq.Target(model)).body
    assert body["generationConfig"]["thinkingConfig"] == expected
    assert strict.validate("gemini", "generateContent", body, model) is None


@pytest.mark.parametrize(
    "req,needle",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
            "unknown content block type 'hologram'",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content.0.text"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "", "input_schema": {}}],
            },
            "tools.0.name",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "sometimes"}},
            "thinking.type",
        ),
        ({"messages": [{"role": "user", "content": ""}]}, "all messages are empty"),
    ],
)
def test_bad_requests_get_precise_invalid_request_errors(req, needle):
    with pytest.raises(GatewayError) as e:
        treq.translate({"model": "m", "max_tokens": 5, **req}, TARGET)
    assert e.value.status == 400 and e.value.type == "invalid_request_error"
    assert needle in e.value.message


def test_schema_keywords_are_stripped_but_property_names_kept():
    out = schema.to_gemini(cc_requests.TOOLS[4]["input_schema"])
    assert set(out["properties"]) == {"taskId", "status", "payload", "name", "title", "metadata", "extra"}
    assert (
        "additionalProperties" not in str(out)
        and "$schema" not in str(out)
        and "propertyNames" not in str(out)
    )
    assert out["properties"]["status"]["anyOf"][1] == {"type": "string", "enum": ["deleted"]}
    assert out["properties"]["payload"] == {"description": "Any JSON value"}
    assert "type" not in out["properties"]["metadata"]  # an OBJECT with no properties is refused by Gemini


def test_schema_refs_type_arrays_and_exclusive_bounds():
    src = {
        "type": "object",
        "$defs": {
            "P": {"type": "object", "properties": {"x": {"type": ["integer", "null"], "exclusiveMinimum": 3}}}
        },
        "properties": {
            "p": {"$ref": "#/$defs/P"},
            "n": {"type": "integer", "enum": [1, 2]},
            "u": {"type": "string", "format": "uri"},
            "d": {"type": "string", "format": "date-time"},
            "o": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        },
    }
    out = schema.to_gemini(src)
    assert out["properties"]["p"]["properties"]["x"] == {"type": "integer", "nullable": True, "minimum": 3}
    assert "enum" not in out["properties"]["n"] and "1, 2" in out["properties"]["n"]["description"]
    assert "format" not in out["properties"]["u"] and out["properties"]["d"]["format"] == "date-time"
    assert out["properties"]["o"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_a_tool_without_properties_is_declared_without_parameters():
    req = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "Ping", "input_schema": {"type": "object", "properties": {}}}],
    }
    body = treq.translate(req, TARGET).body
    assert body["tools"][0]["functionDeclarations"] == [{"name": "Ping"}]


@pytest.mark.parametrize(
    "effort,model,expected",
    [
        ("low", "gemini-2.5-flash", {"thinkingBudget": 1024}),
        ("medium", "gemini-2.5-flash", {"thinkingBudget": 8192}),
        ("high", "gemini-2.5-flash", {"thinkingBudget": 24000}),
        ("max", "gemini-2.5-pro", {"thinkingBudget": 24000}),
        ("low", "gemini-3-pro-preview", {"thinkingLevel": "LOW"}),
        ("medium", "gemini-3-pro-preview", {"thinkingLevel": "HIGH"}),  # 3 Pro has no MEDIUM
        ("medium", "gemini-3-flash-preview", {"thinkingLevel": "MEDIUM"}),
        ("medium", "gemini-3.1-pro-preview", {"thinkingLevel": "MEDIUM"}),
    ],
)
def test_effort_maps_to_a_budget_that_leaves_room_or_to_a_level(effort, model, expected):
    req = cc_requests.first_turn()  # max_tokens 32000, adaptive thinking, display omitted
    req["output_config"] = {"effort": effort}
    body = treq.translate(req, treq.Target(model)).body
    cfg = body["generationConfig"]["thinkingConfig"]
    assert {k: v for k, v in cfg.items() if k != "includeThoughts"} == expected
    assert cfg.get("thinkingBudget", 0) < body["generationConfig"]["maxOutputTokens"]
    assert strict.validate("gemini", "generateContent", body, model) is None


@pytest.mark.parametrize(
    "model,ceiling",
    [("gemini-2.0-flash", 8192), ("gemini-2.5-flash", 65536), ("gemini-3-pro-preview", 65536)],
)
def test_each_model_has_its_own_output_ceiling(model, ceiling):
    req = {**cc_requests.first_turn(), "max_tokens": 128000}
    body = treq.translate(req, treq.Target(model)).body
    assert body["generationConfig"]["maxOutputTokens"] == ceiling
    assert strict.validate("gemini", "generateContent", body, model) is None


@pytest.mark.parametrize(
    "cfg,model,needle",
    [
        ({"thinkingLevel": "HIGH"}, "gemini-2.5-flash", "not supported"),
        ({"thinkingLevel": "EXTREME"}, "gemini-3-pro-preview", "thinking_level"),
        ({"thinkingLevel": "LOW", "thinkingBudget": 1024}, "gemini-3-pro-preview", "only one of"),
    ],
)
def test_the_strict_fake_checks_thinking_level_as_google_does(cfg, model, needle):
    body = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "generationConfig": {"thinkingConfig": cfg},
    }
    assert needle in strict.validate("gemini", "generateContent", body, model)


def test_an_optional_array_keeps_its_item_type_and_a_null_only_enum_is_just_nullable():
    # Optional[list[str]] as generated tool schemas write it: the items must survive the anyOf merge, or the
    # model is told any item goes; and an enum of null alone must not become an empty enum (Gemini refuses it)
    src = {
        "type": "object",
        "properties": {
            "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
            "none": {"enum": [None]},
            "nothing": {"const": None},
        },
    }
    out = schema.to_gemini(src)
    assert out["properties"]["tags"] == {"type": "array", "items": {"type": "string"}, "nullable": True}
    assert out["properties"]["none"] == {"nullable": True} == out["properties"]["nothing"]
    req = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "Tag", "input_schema": src}],
    }
    assert strict.validate("vertex", "generateContent", treq.translate(req, TARGET).body) is None
