"""What the translation did to one call, for people: its notes, the client's request beside the upstream
request as a structural diff, and for a failed call the upstream's own error beside what the client got.

Both requests are first put in one shape (`client_view`, `upstream_view`: system lines, messages of parts,
tools by the client's name, settings by Anthropic's names), so the diff names what changed in meaning rather
than every field Anthropic and Google spell differently. The console's Translation tab and `gatewatch show`
are written from `inspect(record)`; list indexes in a path are the client's for what was removed or
changed, the upstream's for what was added.
"""

from __future__ import annotations

import difflib
import pkgutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from proxy import registry
from proxy.record import Record, payload
from proxy.translate import marks

Op = Literal["added", "removed", "changed"]
_SETTINGS = (  # Anthropic name → Gemini generationConfig name
    ("max_tokens", "maxOutputTokens"),
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("top_k", "topK"),
    ("stop_sequences", "stopSequences"),
)
_NOT_MEANING = {"model", "stream", "messages", "system", "tools", "tool_choice"}
"""client fields the views place elsewhere (or that travel in the URL, not the body)"""


@dataclass(frozen=True)
class Change:
    op: Op
    path: str
    before: Any = None
    """the client's side (None when added)"""
    after: Any = None
    """the upstream's side (None when removed)"""


@dataclass(frozen=True)
class Inspection:
    id: str
    status: int | None
    request_model: str
    target: str | None
    notes: list[dict[str, Any]]
    diff: list[Change] | None
    """None when the payloads were not kept (log_payloads off) or there was no upstream request"""
    upstream_error: Any = None
    """the upstream's own error body, for a failed call"""
    client_error: Any = None
    """what the client received, for a failed call"""

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["diff"] = None if self.diff is None else [asdict(c) for c in self.diff]
        return out


# -- one shape for both requests -------------------------------------------------------------------------------
def _lines(text: str) -> list[str]:
    return text.split("\n")


def _sig(sig: Any) -> str:
    """A signature as Gemini sees it (the client holds ours wrapped), shortened for the eye."""
    gemini, _, _ = marks.unwrap(sig)
    s = gemini or str(sig)
    return s if len(s) <= 24 else f"{s[:12]}…{s[-8:]}"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b)
    return ""


def _system_text(system: Any) -> str:
    if isinstance(system, list):
        return "\n\n".join(
            str(b.get("text"))
            for b in system
            if isinstance(b, dict) and isinstance(b.get("text"), str) and b["text"]
        )
    return str(system)


def _client_part(b: Any, names: dict[str, str]) -> dict[str, Any]:
    if not isinstance(b, dict):
        return {"value": b}
    t = b.get("type")
    if t == "text":
        return {"text": b.get("text", "")}
    if t in ("image", "document"):
        src = b.get("source") or {}
        return {t: f"{src.get('type')} {src.get('media_type') or src.get('url') or ''}".strip()}
    if t == "tool_use":
        return {"tool_use": b.get("name"), "input": b.get("input", {})}
    if t == "tool_result":
        out: dict[str, Any] = {"tool_result": names.get(str(b.get("tool_use_id")), b.get("tool_use_id"))}
        out["error" if b.get("is_error") else "content"] = _text_of(b.get("content"))
        return out
    if t == "thinking":
        return {
            "thinking": f"({len(str(b.get('thinking', '')))} characters)",
            "signature": _sig(b.get("signature")),
        }
    return {"block": t}


def client_view(req: Any) -> dict[str, Any]:
    """The client's Messages request in the common shape."""
    if not isinstance(req, dict):
        return {}
    messages = [m for m in req.get("messages") or [] if isinstance(m, dict)]
    out = _client_system(req.get("system"), messages)
    ids = _tool_use_names(messages)
    out["messages"] = [
        {
            "role": m.get("role"),
            "content": [{"text": c}]
            if isinstance(c := m.get("content"), str)
            else [_client_part(b, ids) for b in c or []],
        }
        for m in messages
        if m.get("role") != "system"
    ]
    tools = _client_tools(req.get("tools"))
    if tools:
        out["tools"] = tools
    if req.get("tool_choice") is not None:
        out["tool_choice"] = req["tool_choice"]
    for k, v in req.items():
        if k not in _NOT_MEANING and k not in out:
            out[k] = v
    return out


def _tool_use_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_use id → tool name, so a tool_result names its tool as Gemini's functionResponse does."""
    return {
        str(b.get("id")): str(b.get("name"))
        for m in messages
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_use"
    }


def _client_system(system: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    folded = [_text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    # the system as the gateway builds Gemini's systemInstruction (translate/request/system.py): its blocks, then
    # the role-system messages folded in order, joined by blank lines. Lines that arrive unchanged are no
    # difference: what the client's side differs in is the billing header, and the messages' leaving.
    texts = [_system_text(system), *folded] if system else folded
    if any(texts):
        out["system"] = _lines("\n\n".join(t for t in texts if t))
    if folded:  # they end up in the system instruction: the diff shows them leave here (one change)
        out["system messages"] = folded
    return out


def _client_tools(tools: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in tools or []:
        if isinstance(t, dict):
            out[str(t.get("name"))] = _tool_entry(t.get("name"), t.get("description"), t.get("input_schema"))
    return out


def _tool_entry(name: Any, description: Any, schema: Any) -> dict[str, Any]:
    entry = {"name": name}
    if description:
        entry["description"] = description
    if schema is not None:
        entry["schema"] = schema
    return entry


def _upstream_part(p: Any, back: dict[str, str]) -> dict[str, Any]:
    if not isinstance(p, dict):
        return {"value": p}
    out: dict[str, Any]
    if "functionCall" in p:
        fc = p["functionCall"] or {}
        name = str(fc.get("name"))
        out = {"tool_use": back.get(name, name), "input": fc.get("args", {})}
    elif "functionResponse" in p:
        fr = p["functionResponse"] or {}
        resp = fr.get("response") or {}
        name = str(fr.get("name"))
        out = {"tool_result": back.get(name, name)}
        key = "error" if "error" in resp and "content" not in resp else "content"
        out[key] = resp.get(key, resp)
    elif "inlineData" in p:
        d = p["inlineData"] or {}
        mime = str(d.get("mimeType", ""))
        out = {("image" if mime.startswith("image/") else "document"): f"base64 {mime}"}
    elif "fileData" in p:
        d = p["fileData"] or {}
        mime = str(d.get("mimeType", ""))
        out = {("image" if mime.startswith("image/") else "document"): f"url {d.get('fileUri', '')}"}
    elif p.get("thought"):
        out = {"thinking": f"({len(str(p.get('text', '')))} characters)"}
    elif "text" in p:
        out = {"text": p["text"]}
    else:
        out = {"part": sorted(p)}
    if p.get("thoughtSignature"):
        out["signature"] = _sig(p["thoughtSignature"])
    return out


def upstream_view(body: Any, renamed: dict[str, str] | None = None) -> dict[str, Any]:
    """A Gemini generateContent request in the common shape; `renamed` maps Gemini's tool names back to the
    client's (from the record's tool-renamed notes) so a tool is compared with itself."""
    if not isinstance(body, dict):
        return {}
    back = renamed or {}
    out: dict[str, Any] = {}
    si = body.get("systemInstruction")
    if isinstance(si, dict):
        out["system"] = _lines("\n\n".join(str(p.get("text", "")) for p in si.get("parts") or []))
    out["messages"] = [
        {
            "role": "assistant" if c.get("role") == "model" else c.get("role"),
            "content": [_upstream_part(p, back) for p in c.get("parts") or []],
        }
        for c in body.get("contents") or []
        if isinstance(c, dict)
    ]
    tools = _upstream_tools(body.get("tools"), back)
    if tools:
        out["tools"] = tools
    if body.get("toolConfig") is not None:
        out["tool_choice"] = body["toolConfig"]
    out.update(_settings(body.get("generationConfig")))
    for k, v in body.items():
        if k not in ("systemInstruction", "contents", "tools", "toolConfig", "generationConfig"):
            out[k] = v
    return out


def _upstream_tools(tools: Any, back: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in tools or []:
        if not isinstance(t, dict):
            continue
        for d in t.get("functionDeclarations") or []:
            schema = d.get("parameters", d.get("parametersJsonSchema"))
            out[back.get(d.get("name"), d.get("name"))] = _tool_entry(
                d.get("name"), d.get("description"), schema
            )
        for k in t:
            if k != "functionDeclarations":
                out[k] = {"name": k}  # a built-in tool (googleSearch…)
    return out


def _settings(generation: Any) -> dict[str, Any]:
    """generationConfig by Anthropic's names where it has them, `generationConfig.<name>` otherwise."""
    gen = dict(generation or {})
    out: dict[str, Any] = {}
    for ours, theirs in _SETTINGS:
        if theirs in gen:
            out[ours] = gen.pop(theirs)
    if "thinkingConfig" in gen:
        out["thinking"] = gen.pop("thinkingConfig")
    for k, v in gen.items():
        out[f"generationConfig.{k}"] = v
    return out


def gemini_view(body: dict[str, Any], renamed: dict[str, str]) -> dict[str, Any] | None:
    """The Gemini dialect's view (`registry.Dialect.view`): a generateContent or countTokens body in the
    common shape; None for a body of another shape."""
    if "generateContentRequest" in body:  # the Gemini API's countTokens wraps the request
        body = body["generateContentRequest"]
    return upstream_view(body, renamed) if isinstance(body, dict) and "contents" in body else None


# -- the diff --------------------------------------------------------------------------------------------------
def _key(v: Any) -> bytes:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS, default=str)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def diff(a: Any, b: Any, path: str = "") -> list[Change]:
    """What changed from `a` to `b`, by path: keys added or removed, values changed; lists are aligned
    (difflib) so one inserted item is one change, not a shift of everything after it."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[Change] = []
        for k in a:
            if k not in b:
                out.append(Change("removed", _join(path, str(k)), before=a[k]))
            else:
                out += diff(a[k], b[k], _join(path, str(k)))
        out += [Change("added", _join(path, str(k)), after=b[k]) for k in b if k not in a]
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        sm = difflib.SequenceMatcher(a=[_key(x) for x in a], b=[_key(x) for x in b], autojunk=False)
        for op, i1, i2, j1, j2 in sm.get_opcodes():
            if op == "equal":
                continue
            pairs = min(i2 - i1, j2 - j1) if op == "replace" else 0
            for k in range(pairs):
                out += diff(a[i1 + k], b[j1 + k], f"{path}[{i1 + k}]")
            out += [Change("removed", f"{path}[{i}]", before=a[i]) for i in range(i1 + pairs, i2)]
            out += [Change("added", f"{path}[{j}]", after=b[j]) for j in range(j1 + pairs, j2)]
        return out
    if a != b or type(a) is not type(b):
        return [Change("changed", path, a, b)]
    return []


# -- one call --------------------------------------------------------------------------------------------------
def renamed(rec: Record) -> dict[str, str]:
    """Gemini's tool name → the client's, from the record's tool-renamed notes."""
    return {
        str(n.data["to"]): str(n.data["from"])
        for n in rec.notes
        if n.kind == "tool-renamed" and "to" in n.data and "from" in n.data
    }


def failed(rec: Record) -> bool:
    return (rec.status or 0) >= 400 or rec.error_type is not None


def upstream_error(rec: Record) -> Any:
    """The target's own error body, when the record kept one (a dict with Google's `error`, or raw text)."""
    up = payload(rec.upstream_response)
    if isinstance(up, dict) and ("error" in up or "raw" in up):
        return up
    if isinstance(up, list) and up and isinstance(up[-1], dict) and "error" in up[-1]:
        return up[-1]
    return None


def attempts(rec: Record) -> dict[str, Any] | None:
    """When no target answered with a body (refused connection, timeout…): what each attempt ended with."""
    tried = [
        {"target": a.target, "status": a.status, "error": a.error}
        for a in rec.tried_targets
        if a.error or a.status
    ]
    return {"no error body; the attempts": tried} if tried else None


View = Callable[[dict[str, Any], dict[str, str]], "dict[str, Any] | None"]


def _view(provider: str | None) -> View | None:
    """How the answering kind's dialect reads its upstream request (`registry.Dialect.view`). A kind no longer
    registered (an old record's) is read as Gemini when its body has Gemini's shape."""
    d = registry.dialect_of(provider)
    if d is None:
        return gemini_view
    view: View | None = pkgutil.resolve_name(d.view) if d.view else None
    return view


def _table(rec: Record) -> list[Change] | None:
    client, up = rec.client_request, rec.upstream_request
    if not (isinstance(client, dict) and isinstance(up, dict)):
        return None
    view = _view(rec.provider)
    shaped = view(up, renamed(rec)) if view is not None else None
    if shaped is None:  # an Anthropic upstream: the body forwarded as it came (or nearly)
        return diff(client, up)
    return diff(client_view(client), shaped)


def inspect(rec: Record) -> Inspection:
    table = _table(rec)
    client_error = None
    if failed(rec):
        client_error = rec.response
        if not isinstance(client_error, dict) or "error" not in client_error:
            client_error = {"type": "error", "error": {"type": rec.error_type, "message": rec.error_message}}
    return Inspection(
        id=rec.id,
        status=rec.status,
        request_model=rec.request_model,
        target=rec.target,
        notes=[asdict(n) for n in rec.notes],
        diff=table,
        upstream_error=(upstream_error(rec) or attempts(rec)) if failed(rec) else None,
        client_error=client_error,
    )


def short(value: Any, width: int = 60) -> str:
    """A value on one line, cut to `width` characters."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    text = text.replace("\n", "⏎")
    return text if len(text) <= width else text[: width - 1] + "…"
