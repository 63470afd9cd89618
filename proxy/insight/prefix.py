"""The prefix a call sent upstream, as Google's implicit cache sees it (system, tools, then contents), and the
first place two prefixes part, named in Anthropic's cache-diagnostic vocabulary. Pure: no I/O.

Digests are of the bytes as sent (orjson keeps the body's key order), so a serialisation that is not
byte-stable shows as a change even where the JSON means the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


def digest(value: Any) -> int:
    """A value's bytes as sent, hashed (in-process equality only: never stored)."""
    return hash(orjson.dumps(value))


@dataclass(frozen=True, slots=True)
class Prefix:
    """One request's prefix: the model, the system blocks' text, each tool (name, digest), each content's
    digest (a message, in order), and a digest of all the tools and of all the contents (what is compared
    first: the per-item digests are made only for what is new or changed)."""

    model: str
    system: tuple[str, ...] = ()
    tools: tuple[tuple[str, int], ...] = ()
    contents: tuple[int, ...] = ()
    tools_all: int = 0
    contents_all: int = 0


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where a prefix first differs from the previous one: `what` is model, system, tools or messages."""

    what: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def _system_texts(body: dict[str, Any]) -> tuple[str, ...]:
    si = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(si, dict):  # Gemini: parts of text
        return tuple(str(p.get("text", "")) if isinstance(p, dict) else "" for p in si.get("parts") or [])
    system = body.get("system")  # Anthropic (a pass-through target)
    if isinstance(system, str):
        return (system,)
    if isinstance(system, list):
        return tuple(str(b.get("text", "")) if isinstance(b, dict) else "" for b in system)
    return ()


def _tool_list(body: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        decls = tool.get("functionDeclarations") or tool.get("function_declarations")
        if isinstance(decls, list):
            out += [(str(d.get("name", "")), d) for d in decls if isinstance(d, dict)]
        elif (
            "name" in tool
        ):  # Anthropic's shape: one tool per entry; where the cache marker sits is no change
            out.append((str(tool["name"]), {k: v for k, v in tool.items() if k != "cache_control"}))
        else:  # a built-in (googleSearch, codeExecution…)
            out += list(tool.items())
    return out


def _unmarked(message: Any) -> Any:
    """An Anthropic message without its cache_control markers (Claude Code moves them every turn)."""
    if isinstance(message, dict) and isinstance(message.get("content"), list):
        blocks = [
            {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b
            for b in message["content"]
        ]
        return {**message, "content": blocks}
    return message


def of(body: Any, model: str, prev: Prefix | None = None) -> Prefix | None:
    """The prefix of an upstream request (Gemini's shape, or Anthropic's for a pass-through target).

    With `prev` (the previous call's), what it shares is not hashed item by item again: the tools as a whole
    and the contents it had, as one serialisation each; only the new contents (or, on a change, everything)
    get their own digests. A conversation that grows costs two C-speed serialisations, not one per message."""
    if not isinstance(body, dict):
        return None
    raw = body.get("contents")
    msgs: list[Any] = (
        list(raw) if isinstance(raw, list) else [_unmarked(m) for m in body.get("messages") or []]
    )
    tool_list = _tool_list(body)
    tools_all = digest([d for _, d in tool_list])
    if prev is not None and tools_all == prev.tools_all:
        tools = prev.tools
    else:
        tools = tuple((name, digest(d)) for name, d in tool_list)
    n = len(prev.contents) if prev is not None else 0
    if prev is not None and n <= len(msgs) and digest(msgs[:n]) == prev.contents_all:
        contents = prev.contents + tuple(digest(m) for m in msgs[n:])
    else:
        contents = tuple(digest(m) for m in msgs)
    return Prefix(model, _system_texts(body), tools, contents, tools_all, digest(msgs))


def _common(a: str, b: str) -> int:
    """The length of the longest common prefix of two strings (by halves: C-speed slice compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def diverge(prev: Prefix, cur: Prefix) -> Divergence | None:
    """The first difference between `prev`'s prefix and `cur`'s, or None when `cur` starts with the whole of
    `prev` (a conversation that only grew)."""
    if prev.model != cur.model:
        return Divergence(
            "model", f"model changed: {prev.model} → {cur.model}", {"from": prev.model, "to": cur.model}
        )
    if prev.system != cur.system:
        for i, (sa, sb) in enumerate(zip(prev.system, cur.system, strict=False)):
            if sa != sb:
                off = _common(sa, sb)
                return Divergence(
                    "system",
                    f"system changed at block {i}, offset {off:,}",
                    {"block": i, "offset": off, "was": sa[off : off + 60], "now": sb[off : off + 60]},
                )
        i = min(len(prev.system), len(cur.system))
        how = "added" if len(cur.system) > len(prev.system) else "removed"
        return Divergence("system", f"system changed: block {i} {how}", {"block": i, "offset": 0, how: True})
    if prev.tools != cur.tools:
        before, after = dict(prev.tools), dict(cur.tools)
        for i in range(max(len(prev.tools), len(cur.tools))):
            a: tuple[str, int] | None = prev.tools[i] if i < len(prev.tools) else None
            b: tuple[str, int] | None = cur.tools[i] if i < len(cur.tools) else None
            if a == b:
                continue
            if a is not None and b is not None and a[0] == b[0]:
                return Divergence("tools", f"tools changed: {a[0]}'s definition", {"tool": a[0], "index": i})
            if a is not None and a[0] not in after:
                return Divergence("tools", f"tools changed: {a[0]} removed", {"tool": a[0], "index": i})
            if b is not None and b[0] not in before:
                return Divergence("tools", f"tools changed: {b[0]} added", {"tool": b[0], "index": i})
            name = (b or a or ("?", 0))[0]
            return Divergence("tools", f"tools changed: {name} moved", {"tool": name, "index": i})
    for i, (x, y) in enumerate(zip(prev.contents, cur.contents, strict=False)):
        if x != y:
            return Divergence("messages", f"messages changed at index {i} (edited)", {"index": i})
    if len(cur.contents) < len(prev.contents):
        i = len(cur.contents)
        return Divergence(
            "messages", f"messages changed at index {i} (dropped)", {"index": i, "dropped": True}
        )
    return None
