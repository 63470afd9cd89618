"""The tools → Gemini's `tools` and `toolConfig`: function declarations (schemas rewritten, memoised), web search
as Google Search grounding, deferred tools held back until the history references them, tool_choice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.errors import invalid_request
from proxy.translate import request_notes
from proxy.translate import schema as _schema
from proxy.translate.memo import BytesMemo
from proxy.translate.models import ModelFacts
from proxy.translate.names import ToolNames, to_gemini
from proxy.translate.notes import Notes
from proxy.translate.request.target import Target

_SEARCH_FIELDS = ("max_uses", "allowed_domains", "blocked_domains", "user_location")
"""web_search settings Google Search grounding has no place for"""


@dataclass
class _Declared:
    """What the tools list declares, as it is read."""

    decls: list[dict[str, Any]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    search: bool = False
    held: list[str] = field(default_factory=list)
    changes: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    def tools(self) -> list[dict[str, Any]]:
        out = [{"functionDeclarations": self.decls}] if self.decls else []
        return out + ([{"googleSearch": {}}] if self.search else [])


@dataclass(frozen=True)
class ToolFields:
    """The body's tool fields and what the answer needs to know of them."""

    body: dict[str, Any]
    names: list[str]
    """the declared tools, by the client's names"""
    search: bool
    """web_search went up as Google Search grounding"""


def tool_fields(
    req: Mapping[str, Any],
    referenced: list[str],
    target: Target,
    model: ModelFacts,
    names: ToolNames,
    notes: Notes,
) -> ToolFields:
    """`tools` and `toolConfig` for the body; every renamed tool (the history's too) noted."""
    tools, declared = declare(req.get("tools"), referenced, target.schema_mode, names, notes)
    if len(tools) > 1 and not model.search_with_functions:
        # Gemini before 3 refuses Google Search beside function declarations: the functions win.
        tools = [t for t in tools if "googleSearch" not in t]
        notes.add(
            "tool-dropped",
            f"web search not declared: {target.model} does not take it beside function tools",
            tool="web_search",
        )
    body: dict[str, Any] = {"tools": tools} if tools else {}
    tc = req.get("tool_choice")
    if tc is not None and declared:
        body["toolConfig"] = tool_choice(tc, declared, names)
    elif tc is not None:
        notes.add("field-dropped", "tool_choice not sent: no tool is declared upstream", field="tool_choice")
    for gname, cname in names.mapped.items():
        notes.add("tool-renamed", f"{cname} → {gname}", **{"from": cname, "to": gname})
    return ToolFields(body, declared, any("googleSearch" in t for t in tools))


def declare(
    tools: Any, referenced: list[str], schema_mode: str, names: ToolNames, notes: Notes
) -> tuple[list[dict[str, Any]], list[str]]:
    """→ (Gemini's tools list, the declared tools' names)."""
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise invalid_request("tools: must be a list")
    acc = _Declared()
    for i, t in enumerate(tools):
        if not isinstance(t, dict):
            raise invalid_request(f"tools.{i}: must be an object")
        ttype = t.get("type")
        if ttype and ttype != "custom":
            _server_tool(t, i, acc, notes)
        else:
            _function(t, i, referenced, schema_mode, acc, names, notes)
    if acc.held:
        notes.add(
            "deferred-held-back",
            f"{len(acc.held)} deferred tool(s) not declared until tool search references them",
            tools=acc.held,
        )
    notes.extend(request_notes.schema(tuple(acc.changes)))
    return acc.tools(), acc.names


def _server_tool(t: dict[str, Any], i: int, acc: _Declared, notes: Notes) -> None:
    """Web search becomes Google Search grounding; no other server tool runs on Gemini."""
    ttype = t.get("type")
    if not str(ttype).startswith("web_search"):
        raise invalid_request(f"tools.{i}.type: server tool {ttype!r} is not available on a Gemini target")
    acc.search = True
    for k in _SEARCH_FIELDS:
        if k in t:
            notes.add(
                "field-dropped",
                f"web_search {k} not sent: Google Search grounding decides its searches itself",
                field=f"tools.{i}.{k}",
            )


def _function(
    t: dict[str, Any],
    i: int,
    referenced: list[str],
    schema_mode: str,
    acc: _Declared,
    names: ToolNames,
    notes: Notes,
) -> None:
    name = t.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"tools.{i}.name: Field required")
    # Deferred tools are loaded only once tool search has referenced them, as Anthropic does.
    if t.get("defer_loading"):
        if name not in referenced:
            acc.held.append(name)
            return
        notes.add("deferred-declared", f"deferred tool {name} declared: the history references it", tool=name)
    names.out(name)
    schema = t.get("input_schema")
    if schema is not None and not isinstance(schema, dict):
        raise invalid_request(f"tools.{i}.input_schema: must be an object")
    decl, gone, changed = _declaration(orjson.dumps(t), schema_mode)
    acc.decls.append(decl)
    acc.names.append(name)
    if gone or changed:
        acc.changes.append((name, gone, changed))


Declaration = tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]
"""a functionDeclaration, the schema keywords removed from it, those rewritten"""


def _make_declaration(tool_json: bytes, schema_mode: str) -> Declaration:
    """A tool's functionDeclaration. Claude Code sends the same ~20 tools on every call, so the rewrite is
    memoised on the tool's exact JSON (still a pure function: same input, same output). The result is
    shared between calls: it is serialised, never mutated."""
    t = orjson.loads(tool_json)
    changes = _schema.Changes()
    decl: dict[str, Any] = {"name": to_gemini(t["name"])}
    if t.get("description"):
        decl["description"] = str(t["description"])
    schema = t.get("input_schema")
    if schema_mode == "json_schema":
        params = _schema.to_json_schema(schema, changes)
        if params:
            decl["parametersJsonSchema"] = params
    else:
        params = _schema.to_parameters(schema, changes)
        if params:
            decl["parameters"] = params
    return decl, tuple(changes.removed), tuple(changes.rewritten)


_declaration: BytesMemo[Declaration] = BytesMemo(_make_declaration)

_MODES = {"auto": "AUTO", "any": "ANY", "none": "NONE"}


def tool_choice(tc: Any, declared: list[str], names: ToolNames) -> dict[str, Any]:
    """tool_choice → Gemini's functionCallingConfig; a named tool must be one that is declared."""
    if not isinstance(tc, dict):
        raise invalid_request("tool_choice: must be an object")
    kind = tc.get("type")
    if isinstance(kind, str) and kind in _MODES:
        cfg: dict[str, Any] = {"mode": _MODES[kind]}
    elif kind == "tool":
        name = tc.get("name")
        if not isinstance(name, str) or name not in declared:
            raise invalid_request(f"tool_choice.name: {name!r} is not one of the declared tools")
        cfg = {"mode": "ANY", "allowedFunctionNames": [names.out(name)]}
    else:
        raise invalid_request(f"tool_choice.type: must be auto, any, tool or none, got {kind!r}")
    return {"functionCallingConfig": cfg}
