"""Anthropic Messages request → Gemini generateContent request."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from typing import Any, Mapping, TypedDict

import orjson

from proxy.errors import invalid_request
from proxy.translate import marks, request_notes
from proxy.translate import schema as _schema
from proxy.translate.memo import BytesMemo
from proxy.translate.models import ModelFacts, facts
from proxy.translate.names import ToolNames, to_gemini
from proxy.translate.notes import Note, Notes
from proxy.translate.signatures import TextParts

# Thinking budget (Gemini 2.5) per `output_config.effort` when thinking is adaptive; "high" without one.
EFFORT_BUDGET = {"low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}
# Thinking level (Gemini 3+) per effort, before it is fitted to the levels the model takes.
EFFORT_LEVEL = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "xhigh": "XHIGH", "max": "XHIGH"}
LEVEL_ORDER = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")
ANSWER_FLOOR = 1024
"""Output tokens always left for the answer by a thinking budget (thoughts count toward maxOutputTokens)."""
MAX_STOP_SEQUENCES = 5
# Blocks that only Anthropic's own servers produce: accepted, and dropped because Gemini has no equivalent.
_DROPPED_BLOCKS = {
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
}


class _Turn(TypedDict):
    """One Gemini `Content`: a role and its parts, consecutive same-role messages merged."""

    role: str
    parts: list[dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """What translation needs to know about the upstream model."""

    model: str
    max_tokens: int | None = None
    schema_mode: str = "openapi"


@dataclass
class Translated:
    """A Gemini request body and what the response translation must remember."""

    body: dict[str, Any]
    thinking: bool = False
    """The client asked for thinking: answer with thinking blocks."""
    tool_names: list[str] = field(default_factory=list)
    """The declared tools, by the client's names."""
    names: ToolNames = field(default_factory=ToolNames)
    """Gemini's names for the client's tools, to map answers back."""
    dropped: list[str] = field(default_factory=list)
    """Fields accepted from the client but not sent upstream (recorded, for the curious)."""
    billing: dict[str, str] = field(default_factory=dict)
    """Claude Code's `x-anthropic-billing-header` fields (cc_version, cc_entrypoint, cc_is_subagent…)."""
    notes: list[Note] = field(default_factory=list)
    """Every decision that changed the call's meaning (`translate.notes`), for the record."""
    search: bool = False
    """web_search went up as Google Search grounding: its results come back as Claude's search blocks."""


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for i, b in enumerate(content):
            if not isinstance(b, dict) or b.get("type") != "text":
                raise invalid_request(f"{where}.{i}: system content must be text blocks")
            if not isinstance(b.get("text"), str):
                raise invalid_request(f"{where}.{i}.text: Field required")
            out.append(b["text"])
        return "\n\n".join(t for t in out if t)
    if content is None:
        return ""
    raise invalid_request(f"{where}: must be a string or a list of text blocks")


BILLING_PREFIX = "x-anthropic-billing-header:"


def billing_header(system: Any) -> tuple[Any, dict[str, str]]:
    """Claude Code's first system block, `x-anthropic-billing-header: cc_version=…; cc_entrypoint=…;`, changes
    per prompt and per sub-agent: sent upstream it would defeat Gemini's implicit prefix cache at token 0.
    → (the system without it, its fields)."""
    fields: dict[str, str] = {}

    def parse(text: str) -> None:
        for item in text[len(BILLING_PREFIX) :].split(";"):
            k, sep, v = item.strip().partition("=")
            if sep and k:
                fields[k.strip()] = v.strip()

    if isinstance(system, list):
        kept = []
        for b in system:
            text = b.get("text") if isinstance(b, dict) else None
            if isinstance(text, str) and text.startswith(BILLING_PREFIX) and "\n" not in text.strip():
                parse(text.strip())
            else:
                kept.append(b)
        return kept, fields
    if isinstance(system, str) and system.startswith(BILLING_PREFIX):
        first, _, rest = system.partition("\n")
        parse(first)
        return rest.lstrip("\n"), fields
    return system, fields


def _source_part(block: dict[str, Any], where: str, kind: str) -> dict[str, Any]:
    src = block.get("source")
    if not isinstance(src, dict):
        raise invalid_request(f"{where}.source: Field required")
    st = src.get("type")
    if st == "base64":
        data, mt = src.get("data"), src.get("media_type")
        if not isinstance(data, str) or not data:
            raise invalid_request(f"{where}.source.data: Field required")
        if not isinstance(mt, str) or not mt:
            mt = "application/pdf" if kind == "document" else None
            if mt is None:
                raise invalid_request(f"{where}.source.media_type: Field required")
        return {"inlineData": {"mimeType": mt, "data": data}}
    if st == "url":
        url = src.get("url")
        if not isinstance(url, str) or not url:
            raise invalid_request(f"{where}.source.url: Field required")
        mt = mimetypes.guess_type(url.split("?")[0])[0] or (
            "application/pdf" if kind == "document" else "image/jpeg"
        )
        return {"fileData": {"mimeType": mt, "fileUri": url}}
    if st == "text" and kind == "document":
        return {"text": str(src.get("data") or "")}
    if st == "content" and kind == "document":
        return {"text": _text_of(src.get("content"), f"{where}.source.content")}
    raise invalid_request(f"{where}.source.type: {st!r} is not supported by this gateway for {kind} blocks")


def _tool_result_parts(block: dict[str, Any], where: str) -> tuple[str, list[dict[str, Any]], list[str]]:
    """→ (response text, extra media parts, tool names referenced)."""
    content = block.get("content")
    texts: list[str] = []
    media: list[dict[str, Any]] = []
    refs: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for i, b in enumerate(content):
            w = f"{where}.content.{i}"
            t = b.get("type") if isinstance(b, dict) else None
            if t == "text":
                texts.append(str(b.get("text", "")))
            elif t in ("image", "document"):
                media.append(_source_part(b, w, t))
            elif t == "tool_reference":
                name = str(b.get("tool_name", ""))
                refs.append(name)
                texts.append(f"Tool {name} is now available.")
            elif t == "search_result":
                texts.append(_text_of(b.get("content"), f"{w}.content"))
            else:
                raise invalid_request(f"{w}.type: unknown block type {t!r} inside tool_result")
    elif content is not None:
        raise invalid_request(f"{where}.content: must be a string or a list of blocks")
    return "\n".join(texts), media, refs


def translate(
    req: Mapping[str, Any],
    target: Target,
    signatures: Mapping[str, str] | None = None,
    texts: Mapping[str, TextParts] | None = None,
) -> Translated:
    """Translate a validated Messages request. `signatures` maps tool_use ids to Gemini thought signatures
    remembered from earlier answers (trusted: the gateway kept them), for clients that drop thinking blocks;
    `texts` is what the gateway kept of this session's answers' text parts (`TextSignatures`), signatures
    the client never saw, put back on the text they came with."""
    signatures = signatures or {}
    notes = Notes()
    foreign = kept_client = kept_memory = kept_text = 0
    forgotten = False  # the latest answer of ours, its text no longer held (older ones age out by design)

    def held_text(text: str) -> list[dict[str, Any]] | None:
        """The Gemini parts an assistant text came from, when the gateway kept signed ones for it."""
        nonlocal kept_text
        parts = texts.get(marks.textkey(text)) if texts else None
        if not parts or "".join(p.get("text", "") for p in parts) != text:
            return None
        kept_text += sum(1 for p in parts if "thoughtSignature" in p)
        return [dict(p) for p in parts]

    def client_sig(sig: Any) -> tuple[str | None, bool]:
        nonlocal foreign, kept_client
        gemini, dropped, prev = marks.unwrap(sig)
        foreign += dropped
        kept_client += gemini is not None
        return gemini, prev

    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("messages: at least one message is required")

    system_texts: list[str] = []
    system, billing = billing_header(req.get("system"))
    if billing:
        notes.add(
            "field-dropped",
            "Claude Code's billing header (a system block that changes every call) not sent upstream",
            field="system.x-anthropic-billing-header",
            value="; ".join(f"{k}={v}" for k, v in billing.items()),
        )
    if system is not None:
        system_texts.append(_text_of(system, "system"))
    folded: list[int] = []
    dropped_blocks: dict[str, int] = {}
    orphans: list[str] = []

    # Every tool_use id → name first: a tool_result needs the function's name, and Gemini gets no ids.
    id_to_name: dict[str, str] = {}
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), list):
            for b in m["content"]:
                if isinstance(b, dict) and b.get("type") == "tool_use":
                    id_to_name[str(b.get("id"))] = str(b.get("name"))

    turns: list[_Turn] = []
    # A tool the history already called is declared even when deferred: the model may call it again.
    referenced_tools: list[str] = list(id_to_name.values())
    names = ToolNames()

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": role, "parts": parts})

    for i, m in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            raise invalid_request(f"{where}: must be an object")
        role, content = m.get("role"), m.get("content")
        if role == "system":
            # Claude Code puts environment and agent notes in role-system messages; Gemini's place for
            # instructions is systemInstruction, and the order is kept.
            system_texts.append(_text_of(content, f"{where}.content"))
            folded.append(i)
            continue
        if role not in ("user", "assistant"):
            raise invalid_request(f"{where}.role: must be 'user' or 'assistant', got {role!r}")
        if isinstance(content, str):
            held = held_text(content) if role == "assistant" and content else None
            add("user" if role == "user" else "model", held or ([{"text": content}] if content else []))
            continue
        if not isinstance(content, list):
            raise invalid_request(f"{where}.content: must be a string or a list of content blocks")
        parts: list[dict[str, Any]] = []
        responses: list[dict[str, Any]] = []
        pending_sig: str | None = None
        # an answer this gateway gave (its thinking blocks carry our marks) whose text it no longer knows
        ours = role == "assistant" and texts is not None and any(_ours(b) for b in content)
        unknown = False
        for j, b in enumerate(content):
            w = f"{where}.content.{j}"
            if not isinstance(b, dict):
                raise invalid_request(f"{w}: must be an object")
            t = b.get("type")
            if t == "text":
                if not isinstance(b.get("text"), str):
                    raise invalid_request(f"{w}.text: Field required")
                if b["text"]:
                    if pending_sig and role == "assistant":  # Gemini signed this text part: kept on it
                        parts.append({"text": b["text"], "thoughtSignature": pending_sig})
                        pending_sig = None
                    elif role == "assistant" and (held := held_text(b["text"])):
                        parts.extend(held)  # as Gemini sent it, its signatures where they were
                    else:
                        parts.append({"text": b["text"]})
                        unknown = unknown or (ours and marks.textkey(b["text"]) not in (texts or {}))
            elif t in ("image", "document"):
                parts.append(_source_part(b, w, t))
                request_notes.media(notes, t, parts[-1], w)
            elif t == "tool_use":
                if role != "assistant":
                    raise invalid_request(f"{w}: tool_use blocks belong in assistant messages")
                name, args = b.get("name"), b.get("input", {})
                if not isinstance(name, str) or not name:
                    raise invalid_request(f"{w}.name: Field required")
                if not isinstance(args, dict):
                    raise invalid_request(f"{w}.input: must be an object")
                part: dict[str, Any] = {"functionCall": {"name": names.out(name), "args": args}}
                sig = pending_sig
                if not sig and signatures.get(str(b.get("id"))):
                    sig = signatures[str(b.get("id"))]
                    kept_memory += 1
                if sig:
                    part["thoughtSignature"] = sig
                    pending_sig = None
                parts.append(part)
                after = texts.get(marks.callkey(str(b.get("id")))) if texts else None
                if after:  # signed empty parts Gemini sent after this call
                    parts.extend(dict(p) for p in after)
                    kept_text += len(after)
            elif t == "tool_result":
                if role != "user":
                    raise invalid_request(f"{w}: tool_result blocks belong in user messages")
                tid = str(b.get("tool_use_id", ""))
                text, media, refs = _tool_result_parts(b, w)
                referenced_tools.extend(refs)
                for m_part in media:
                    notes.add(
                        "media-converted",
                        "media inside a tool_result moved beside its functionResponse (Gemini takes only an "
                        "object there)",
                        to="part beside functionResponse",
                    )
                    mime = str((m_part.get("inlineData") or m_part.get("fileData") or {}).get("mimeType", ""))
                    request_notes.media(
                        notes, "image" if mime.startswith("image/") else "document", m_part, w
                    )
                if tid in id_to_name:
                    key = "error" if b.get("is_error") else "content"
                    responses.append(
                        {"functionResponse": {"name": names.out(id_to_name[tid]), "response": {key: text}}}
                    )
                    parts.extend(media)
                else:
                    # No matching call (history compacted away): Gemini refuses an orphan functionResponse.
                    orphans.append(tid)
                    parts.append({"text": f"[result of tool call {tid}]\n{text}"})
                    parts.extend(media)
            elif t == "thinking":
                if role == "assistant":
                    sig, prev = client_sig(b.get("signature"))
                    last = parts[-1] if parts else None
                    if (
                        sig
                        and prev
                        and last is not None
                        and "text" in last
                        and "thoughtSignature" not in last
                    ):
                        last["thoughtSignature"] = sig  # back on the text part Gemini signed
                    else:
                        pending_sig = sig or pending_sig
            elif isinstance(t, str) and t in _DROPPED_BLOCKS:
                dropped_blocks[t] = dropped_blocks.get(t, 0) + 1
                continue
            else:
                raise invalid_request(f"{w}.type: unknown content block type {t!r}")
        if pending_sig:  # Gemini's trailing empty part, signed: given back as it came
            parts.append({"text": "", "thoughtSignature": pending_sig})
        if ours:
            forgotten = unknown
        add("user" if role == "user" else "model", responses + parts)

    contents = _fix_function_turns(turns, notes)
    if not contents:
        raise invalid_request("messages: all messages are empty; at least one must have content")
    if folded:
        notes.add(
            "system-folded",
            f"{len(folded)} role-system message(s) folded into systemInstruction, in order",
            messages=folded,
        )
    for btype, n in dropped_blocks.items():
        notes.add(
            "block-dropped", f"{n} {btype} block(s) left out: Gemini has no equivalent", block=btype, count=n
        )
    if orphans:
        notes.add(
            "history-repaired",
            f"{len(orphans)} tool_result(s) without their tool_use sent as text",
            tool_use_ids=orphans,
        )
    if kept_client or kept_memory or kept_text:
        said: list[str] = []
        if kept_memory:
            said.append(f"{kept_memory} remembered by the gateway: the client dropped them")
        if kept_text:
            said.append(f"{kept_text} on text parts, kept by the gateway: the client never saw them")
        notes.add(
            "signature-kept",
            f"{kept_client + kept_memory + kept_text} Gemini thought signature(s) sent back byte for byte"
            + (f" ({'; '.join(said)})" if said else ""),
            from_client=kept_client,
            from_memory=kept_memory,
            from_gateway=kept_text,
        )
    if forgotten:
        notes.add(
            "signature-lost",
            "the last answer's text is one this gateway no longer remembers (a restart, another replica): any "
            "text-part signatures it had were not sent back (Google documents them as optional)",
        )
    if foreign:
        notes.add(
            "signature-dropped",
            f"foreign signature dropped (x{foreign}): Gemini did not issue it and would refuse it",
            count=foreign,
        )
    model = facts(target.model)
    if model.generation >= 3:
        injected = _sign_current_turn(contents)
        if injected:
            notes.add(
                "signature-injected",
                f"signature injected (x{injected}): {marks.SKIP} on function calls Gemini did not sign",
                count=injected,
            )

    body: dict[str, Any] = {"contents": contents}
    system = "\n\n".join(s for s in system_texts if s)
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}

    dropped = [
        k for k in ("metadata", "context_management", "container", "mcp_servers", "service_tier") if k in req
    ]
    for k in dropped:
        notes.add("field-dropped", f"{k} not sent: Gemini has no such field", field=k)
    if "safeguards" in req:
        request_notes.safeguards(notes, req["safeguards"])
    cached = request_notes.cache_controls(req)
    if cached:
        notes.add(
            "field-dropped",
            f"cache_control on {cached} block(s) not sent: Gemini caches prompt prefixes by itself",
            field="cache_control",
            count=cached,
        )
    tools, tool_names = _tools(req.get("tools"), referenced_tools, target, names, notes)
    if len(tools) > 1 and not model.search_with_functions:
        # Gemini before 3 refuses Google Search beside function declarations: the functions win.
        tools = [t for t in tools if "googleSearch" not in t]
        notes.add(
            "tool-dropped",
            f"web search not declared: {target.model} does not take it beside function tools",
            tool="web_search",
        )
    if tools:
        body["tools"] = tools
    tc = req.get("tool_choice")
    if tc is not None and tool_names:
        body["toolConfig"] = _tool_choice(tc, tool_names, names)
    elif tc is not None:
        notes.add("field-dropped", "tool_choice not sent: no tool is declared upstream", field="tool_choice")
    for gname, cname in names.mapped.items():
        notes.add("tool-renamed", f"{cname} → {gname}", **{"from": cname, "to": gname})

    gen: dict[str, Any] = {}
    max_tokens = req.get("max_tokens")
    ceiling = model.output_cap(bool(req.get("stream")))
    cap = min(target.max_tokens or ceiling, ceiling)
    if isinstance(max_tokens, int):
        gen["maxOutputTokens"] = max(1, min(max_tokens, cap))
        if max_tokens > cap:
            why = (
                "the target's max_tokens"
                if target.max_tokens and target.max_tokens < ceiling
                else f"{target.model}'s ceiling"
                + (" for a non-streaming call" if ceiling < model.max_output else "")
            )
            notes.add(
                "cap-applied",
                f"max_tokens {max_tokens} → {cap} ({why})",
                field="max_tokens",
                asked=max_tokens,
                sent=cap,
            )
    for a, g in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        if req.get(a) is not None:
            gen[g] = req[a]
    stops = req.get("stop_sequences")
    if isinstance(stops, list) and stops:
        gen["stopSequences"] = [s for s in stops if isinstance(s, str) and s][:MAX_STOP_SEQUENCES]
        if len(stops) > MAX_STOP_SEQUENCES:
            notes.add(
                "cap-applied",
                f"stop_sequences {len(stops)} → {MAX_STOP_SEQUENCES} (Gemini takes at most {MAX_STOP_SEQUENCES})",
                field="stop_sequences",
                asked=len(stops),
                sent=MAX_STOP_SEQUENCES,
            )
    thinking_cfg, thinking_on = _thinking(
        req.get("thinking"), req.get("output_config"), model, gen.get("maxOutputTokens", cap)
    )
    if thinking_cfg is not None:
        gen["thinkingConfig"] = thinking_cfg
    request_notes.thinking(notes, req.get("thinking"), req.get("output_config"), thinking_cfg, target.model)
    if gen:
        body["generationConfig"] = gen
    return Translated(
        body=body,
        thinking=thinking_on,
        tool_names=tool_names,
        names=names,
        dropped=dropped,
        billing=billing,
        notes=notes.items,
        search=any("googleSearch" in t for t in tools),
    )


def _ours(block: Any) -> bool:
    """A thinking block this gateway made (its signature carries our marks)."""
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    sig = block.get("signature")
    return isinstance(sig, str) and sig.startswith((marks.MARK, marks.MARK_PREV, marks.SYNTHETIC))


def _sign_current_turn(contents: list[_Turn]) -> int:
    """Gemini 3 wants a signature it issued on the first function call of every model step since the last
    user message that is not only function responses; where there is none, Google's documented skip value.
    Returns how many were put in."""
    start = 0
    for i, c in enumerate(contents):
        if c["role"] == "user" and not any("functionResponse" in p for p in c["parts"]):
            start = i
    n = 0
    for c in contents[start:]:
        if c["role"] != "model":
            continue
        first = next((p for p in c["parts"] if "functionCall" in p), None)
        if first is not None and not first.get("thoughtSignature"):
            first["thoughtSignature"] = marks.SKIP
            n += 1
    return n


def _fix_function_turns(turns: list[_Turn], notes: Notes) -> list[_Turn]:
    """Gemini wants every model turn's function calls answered, one response each, in the next user turn."""
    out: list[_Turn] = []
    filled: list[str] = []
    for idx, turn in enumerate(turns):
        calls = [p["functionCall"]["name"] for p in turn["parts"] if "functionCall" in p]
        if turn["role"] == "model" and calls and not out:
            # Gemini wants a function call to follow a user turn; a history that opens with the model's
            # call (trimmed by the client) gets a neutral user turn in front.
            out.append({"role": "user", "parts": [{"text": "(earlier conversation omitted)"}]})
            notes.add(
                "history-repaired",
                "a user turn put before the history's first function call (Gemini wants one there)",
                added="(earlier conversation omitted)",
            )
        out.append(turn)
        if turn["role"] != "model" or not calls:
            continue
        nxt = turns[idx + 1] if idx + 1 < len(turns) else None
        if nxt is None:
            continue  # the model's last word: nothing to answer yet
        if nxt["role"] != "user":
            continue
        given = [p for p in nxt["parts"] if "functionResponse" in p]
        others = [p for p in nxt["parts"] if "functionResponse" not in p]
        # One response per call, in the calls' order; a call the client never answered (interrupted, any
        # of a parallel batch) gets a filled-in response under its own name.
        answered: list[dict[str, Any]] = []
        for name in calls:
            match = next((p for p in given if p["functionResponse"]["name"] == name), None)
            if match is not None:
                given.remove(match)
                answered.append(match)
            else:
                filled.append(name)
                answered.append(
                    {"functionResponse": {"name": name, "response": {"error": "no result was returned"}}}
                )
        nxt["parts"] = answered + given + others
    # Orphan functionResponses (a user turn after a model turn without calls) become text.
    for idx, turn in enumerate(out):
        if turn["role"] != "user":
            continue
        prev = out[idx - 1] if idx > 0 else None
        has_calls = prev is not None and any("functionCall" in p for p in prev["parts"])
        if not has_calls and any("functionResponse" in p for p in turn["parts"]):
            notes.add("history-repaired", "function responses with no call before them sent as text")
        if not has_calls:
            turn["parts"] = [
                {"text": f"[result of {p['functionResponse']['name']}] {p['functionResponse']['response']}"}
                if "functionResponse" in p
                else p
                for p in turn["parts"]
            ]
    if filled:
        notes.add(
            "history-repaired",
            f"{len(filled)} function call(s) the client never answered given an error response",
            tools=filled,
        )
    return out


def _tools(
    tools: Any, referenced: list[str], target: Target, names: ToolNames, notes: Notes
) -> tuple[list[dict[str, Any]], list[str]]:
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise invalid_request("tools: must be a list")
    decls: list[dict[str, Any]] = []
    declared: list[str] = []
    extra: list[dict[str, Any]] = []
    held: list[str] = []
    changes: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    for i, t in enumerate(tools):
        w = f"tools.{i}"
        if not isinstance(t, dict):
            raise invalid_request(f"{w}: must be an object")
        ttype = t.get("type")
        if ttype and ttype != "custom":
            if str(ttype).startswith("web_search"):
                if not any("googleSearch" in e for e in extra):
                    extra.append({"googleSearch": {}})
                unsent = [
                    k for k in ("max_uses", "allowed_domains", "blocked_domains", "user_location") if k in t
                ]
                for k in unsent:
                    notes.add(
                        "field-dropped",
                        f"web_search {k} not sent: Google Search grounding decides its searches itself",
                        field=f"tools.{i}.{k}",
                    )
                continue
            raise invalid_request(f"{w}.type: server tool {ttype!r} is not available on a Gemini target")
        name = t.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_request(f"{w}.name: Field required")
        # Deferred tools are loaded only once tool search has referenced them, as Anthropic does.
        if t.get("defer_loading"):
            if name not in referenced:
                held.append(name)
                continue
            notes.add(
                "deferred-declared",
                f"deferred tool {name} declared: the history references it",
                tool=name,
            )
        names.out(name)
        schema = t.get("input_schema")
        if schema is not None and not isinstance(schema, dict):
            raise invalid_request(f"{w}.input_schema: must be an object")
        decl, gone, changed = _declaration(orjson.dumps(t), target.schema_mode)
        decls.append(decl)
        declared.append(name)
        if gone or changed:
            changes.append((name, gone, changed))
    if held:
        notes.add(
            "deferred-held-back",
            f"{len(held)} deferred tool(s) not declared until tool search references them",
            tools=held,
        )
    notes.extend(request_notes.schema(tuple(changes)))
    out = [{"functionDeclarations": decls}] if decls else []
    return out + extra, declared


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


def _tool_choice(tc: Any, declared: list[str], names: ToolNames) -> dict[str, Any]:
    if not isinstance(tc, dict):
        raise invalid_request("tool_choice: must be an object")
    kind = tc.get("type")
    if kind == "auto":
        cfg: dict[str, Any] = {"mode": "AUTO"}
    elif kind == "any":
        cfg = {"mode": "ANY"}
    elif kind == "none":
        cfg = {"mode": "NONE"}
    elif kind == "tool":
        name = tc.get("name")
        if not isinstance(name, str) or name not in declared:
            raise invalid_request(f"tool_choice.name: {name!r} is not one of the declared tools")
        cfg = {"mode": "ANY", "allowedFunctionNames": [names.out(name)]}
    else:
        raise invalid_request(f"tool_choice.type: must be auto, any, tool or none, got {kind!r}")
    return {"functionCallingConfig": cfg}


def _thinking(
    thinking: Any, output_config: Any, model: ModelFacts, max_out: int
) -> tuple[dict[str, Any] | None, bool]:
    """→ (thinkingConfig or None, whether the client wants thinking blocks back). No `thinking` means no
    thinking, as on Anthropic: off where the model allows, else its least."""
    if thinking is None:
        thinking = {"type": "disabled"}
    if not isinstance(thinking, dict):
        raise invalid_request("thinking: must be an object")
    kind = thinking.get("type")
    # Claude Code's `display: omitted` means it shows no thinking text: don't pay to stream it.
    include = thinking.get("display") != "omitted"
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 0:
            raise invalid_request("thinking.budget_tokens: must be a positive integer")
    elif kind == "adaptive":
        budget = EFFORT_BUDGET.get(str(effort or "high"), EFFORT_BUDGET["high"])
    elif kind == "disabled":
        budget, include = 0, False
    else:
        raise invalid_request(f"thinking.type: must be enabled, adaptive or disabled, got {kind!r}")
    on = kind != "disabled"
    if model.uses_level:  # Gemini 3+: a level, never a budget beside it
        if kind == "adaptive":
            want = EFFORT_LEVEL.get(str(effort or "high"), "HIGH")
        elif kind == "enabled":
            want = "LOW" if budget <= 1024 else "MEDIUM" if budget <= 8192 else "HIGH"
        else:
            want = "MINIMAL"
        cfg: dict[str, Any] = {"thinkingLevel": _fit_level(want, model.levels)}
        return (cfg | {"includeThoughts": True} if on and include else cfg), on
    lo, hi = model.budget_range
    if hi == 0:  # a model that does not think (2.0, 1.5)
        return None, False
    # Thoughts count toward maxOutputTokens: leave the answer a quarter of it, and never less than the floor.
    room = max_out - max(ANSWER_FLOOR, max_out // 4)
    budget = max(0, min(budget, hi, room))
    if budget < lo:  # a model that can't stop thinking (2.5 pro) gets its least
        budget = lo
    cfg = {"thinkingBudget": budget}
    return (cfg | {"includeThoughts": include} if on else cfg), on


def _fit_level(want: str, levels: tuple[str, ...]) -> str:
    """The level asked for if the model takes it, else the nearest above, else its highest."""
    rank = LEVEL_ORDER.index(want)
    return next((lv for lv in levels if LEVEL_ORDER.index(lv) >= rank), levels[-1])
