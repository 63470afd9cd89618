"""As strict as Google: every body parsed with the official proto types (unknown fields rejected), plus the
rules Google enforces beyond the proto (empty parts, function-turn ordering, empty OBJECT properties)."""

from __future__ import annotations

import copy
import re
from typing import Any

from google.ai.generativelanguage_v1beta.types import CountTokensRequest, GenerateContentRequest
from google.protobuf import json_format

from proxy.simulator import genuine_signature

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_PART_FIELDS = {
    "text",
    "inlineData",
    "functionCall",
    "functionResponse",
    "fileData",
    "executableCode",
    "codeExecutionResult",
}


def _upper_types(schema: Any) -> None:
    """Google takes `"object"` and `"OBJECT"`; protobuf's parser only the enum names."""
    if isinstance(schema, dict):
        if isinstance(schema.get("type"), str):
            schema["type"] = schema["type"].upper()
        for key in ("items",):
            _upper_types(schema.get(key))
        for sub in (schema.get("properties") or {}).values():
            _upper_types(sub)
        for sub in schema.get("anyOf") or []:
            _upper_types(sub)


def _schema_problem(schema: Any, where: str) -> str | None:
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "OBJECT" and "properties" in schema and not schema["properties"]:
        return f"{where}.properties: should be non-empty for OBJECT type"
    for name, sub in (schema.get("properties") or {}).items():
        p = _schema_problem(sub, f"{where}.properties[{name}]")
        if p:
            return p
    for i, sub in enumerate(schema.get("anyOf") or []):
        p = _schema_problem(sub, f"{where}.any_of[{i}]")
        if p:
            return p
    if schema.get("enum") and schema.get("type") not in ("STRING", None):
        return f"{where}.enum: only allowed for STRING type"
    for r in schema.get("required") or []:
        if r not in (schema.get("properties") or {}):
            return f"{where}.required[{r}]: property is not defined"
    return _schema_problem(schema.get("items"), f"{where}.items")


SKIP = "skip_thought_signature_validator"


def generation(model: str) -> float:
    m = re.search(r"gemini-(\d+(?:\.\d+)?)", model)
    return float(m.group(1)) if m else 0.0


def _signature_problem(contents: list) -> str | None:
    """Gemini 3's rule: every signature must be one Gemini issued (or Google's skip value), and the first
    function call of each model step since the last user message that holds no function response must
    carry one. (Gemini 2.5 checks neither.)"""
    for i, c in enumerate(contents):
        for j, p in enumerate(c.get("parts") or []):
            sig = p.get("thoughtSignature")
            if sig is not None and sig != SKIP and not genuine_signature(sig):
                return f"Corrupted thought signature. (contents[{i}].parts[{j}])"
    start = 0
    for i, c in enumerate(contents):
        if c["role"] == "user" and not any("functionResponse" in p for p in c.get("parts") or []):
            start = i
    for i, c in enumerate(contents[start:], start):
        if c["role"] != "model":
            continue
        for j, p in enumerate(c.get("parts") or []):
            if "functionCall" in p:
                if not p.get("thoughtSignature"):
                    return (
                        "Function call is missing a thought_signature in functionCall parts. This is required "
                        "for tools to work correctly, and missing thought_signature may lead to degraded model "
                        f"performance. Additional data, function call `default_api:{p['functionCall']['name']}`"
                        f" , position {j + 1}. (contents[{i}])"
                    )
                break
    return None


def _parse(body: dict, proto, request: dict) -> str | None:
    """Parse with Google's proto type after upper-casing the schema types inside `request`'s tools."""
    for tool in request.get("tools") or []:
        for decl in tool.get("functionDeclarations") or []:
            _upper_types(decl.get("parameters"))
    try:
        json_format.ParseDict(body, proto.pb()(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        return f"Invalid JSON payload received. {exc}"
    return None


LEVELS = {"MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH"}


def _levels_of(model: str) -> set[str]:
    """What Google's model pages say each line takes (the fake's own reading, not the gateway's table)."""
    if re.match(r"gemini-4-(hydrogen|neon)", model):
        return {"LOW", "MEDIUM", "HIGH", "XHIGH"}
    if model.startswith("gemini-4") or re.match(r"gemini-3\.[78]-flash(?!-lite)", model):
        return {"LOW", "MEDIUM", "HIGH"}
    if re.match(r"gemini-3(\.0)?-pro", model):
        return {"LOW", "HIGH"}
    if "pro" in model:
        return {"LOW", "MEDIUM", "HIGH"}
    return {"MINIMAL", "LOW", "MEDIUM", "HIGH"}


def _thinking_level_problem(body: dict, model: str) -> str | None:
    """The published proto predates `thinkingLevel`: check it as Google does, then take it out for the parse."""
    gen = body.get("generationConfig") or body.get("generation_config") or {}
    cfg = gen.get("thinkingConfig") or gen.get("thinking_config") or {}
    level = cfg.pop("thinkingLevel", cfg.pop("thinking_level", None))
    if level is None:
        return None
    if model and generation(model) < 3 and not model.endswith("-latest"):  # -latest: a current model
        return "Thinking level is not supported for this model."
    if level not in LEVELS:
        return f"Invalid value at 'generation_config.thinking_config.thinking_level' ({level!r})"
    if model and level not in _levels_of(model):
        return f"Thinking level {level} is not supported by {model}."
    if "thinkingBudget" in cfg or "thinking_budget" in cfg:
        return "You can only set only one of thinking budget and thinking level."
    return None


def _request_problem(body: dict, model: str = "") -> str | None:
    body = copy.deepcopy(body)
    problem = _thinking_level_problem(body, model) or _parse(body, GenerateContentRequest, body)
    if problem:
        return problem
    contents = body.get("contents") or []
    if not contents:
        return "contents is not specified"
    for i, c in enumerate(contents):
        if c.get("role") not in ("user", "model"):
            return f"contents[{i}].role: must be user or model"
        parts = c.get("parts") or []
        if not parts:
            return f"contents[{i}].parts: must not be empty"
        for j, p in enumerate(parts):
            data = [k for k in p if k in _PART_FIELDS]
            if len(data) != 1:
                return f"contents[{i}].parts[{j}]: exactly one data field is required, got {data}"
            if "text" in p and p["text"] == "" and not p.get("thoughtSignature"):
                # Gemini's own trailing empty part carries a signature, and goes back as it came
                return "Unable to submit request because it has an empty text parameter."
        for j, p in enumerate(parts):
            for kind in ("functionCall", "functionResponse"):
                if kind in p and not _NAME.match(p[kind].get("name", "")):
                    return (
                        f"contents[{i}].parts[{j}].{kind}.name: Invalid function name. Must start with a "
                        "letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots "
                        "(.), colons (:), or dashes (-), with a maximum length of 64."
                    )
        calls = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
        responses = [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]
        if calls:
            if c["role"] != "model":
                return f"contents[{i}]: functionCall parts belong to the model"
            if i == 0 or contents[i - 1]["role"] != "user":
                return (
                    "Please ensure that function call turn comes immediately after a user turn or after a "
                    "function response turn."
                )
            nxt = contents[i + 1] if i + 1 < len(contents) else None
            if nxt is not None:
                answered = [
                    p["functionResponse"]["name"] for p in nxt.get("parts", []) if "functionResponse" in p
                ]
                if len(answered) != len(calls):
                    return (
                        "Please ensure that the number of function response parts is equal to the number of "
                        "function call parts of the function call turn."
                    )
        if responses:
            prev = contents[i - 1] if i > 0 else None
            prev_calls = [
                p["functionCall"]["name"] for p in (prev or {}).get("parts", []) if "functionCall" in p
            ]
            if not prev_calls:
                return (
                    "Please ensure that function response turn comes immediately after a function call turn."
                )
            if sorted(prev_calls) != sorted(responses):
                return "function response names do not match the function calls"
    if generation(model) >= 3:
        problem = _signature_problem(contents)
        if problem:
            return problem
    tools = body.get("tools") or []
    if (
        0 < generation(model) < 3
        and any("googleSearch" in t for t in tools)
        and any(t.get("functionDeclarations") for t in tools)
    ):
        return "Tool use with function calling is unsupported"
    for t, tool in enumerate(body.get("tools") or []):
        for d, decl in enumerate(tool.get("functionDeclarations") or []):
            if not _NAME.match(decl.get("name", "")):
                return f"tools[{t}].function_declarations[{d}].name: invalid function name"
            if "parameters" in decl and "parametersJsonSchema" in decl:
                return "parameters and parametersJsonSchema are mutually exclusive"
            p = _schema_problem(decl.get("parameters"), f"tools[{t}].function_declarations[{d}].parameters")
            if p:
                return p
    allowed = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("allowedFunctionNames")
    for name in allowed or []:
        if not _NAME.match(name):
            return "tool_config.function_calling_config.allowed_function_names: invalid function name"
    gen = body.get("generationConfig") or {}
    if len(gen.get("stopSequences") or []) > 5:
        return "generation_config.stop_sequences: at most 5 are allowed"
    budget = (gen.get("thinkingConfig") or {}).get("thinkingBudget")
    if budget == 0 and "pro" in model:
        return "Budget 0 is invalid. This model only works in thinking mode."
    if budget and 0 < generation(model) < 2.5:
        return "Thinking is not supported for this model."
    return None


def validate(kind: str, action: str, body: Any, model: str = "") -> str | None:
    """None when Google would accept `body`, else Google's complaint."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received. Expected an object."
    if action == "countTokens":
        if kind == "gemini":
            upper = copy.deepcopy(body)
            problem = _parse(upper, CountTokensRequest, upper.get("generateContentRequest") or {})
            if problem:
                return problem
            inner = body.get("generateContentRequest")
            return _request_problem({k: v for k, v in inner.items() if k != "model"}) if inner else None
        return _request_problem(body)
    return _request_problem(body, model)
