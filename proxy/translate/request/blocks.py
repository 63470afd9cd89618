"""One handler per content block type: each adds what one block of a message becomes to that message's Gemini
parts (`Message`). `HANDLERS` is the table `contents` dispatches on; a type it does not hold is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.errors import invalid_request
from proxy.translate import marks, request_notes
from proxy.translate.request.media import source_part
from proxy.translate.request.results import result_of
from proxy.translate.request.state import Message, Part

Block = dict[str, Any]
Handler = Callable[[Block, str, Message], None]

DROPPED_BLOCKS = (
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
)
"""Blocks that only Anthropic's own servers produce: accepted, and dropped because Gemini has no equivalent."""


def text(b: Block, where: str, m: Message) -> None:
    """A text part; an empty text is none (Gemini refuses empty parts). An assistant's text goes back with the
    signature Gemini put on it."""
    value = b.get("text")
    if not isinstance(value, str):
        raise invalid_request(f"{where}.text: Field required")
    if not value:
        return
    if m.pending_sig and m.assistant:  # Gemini signed this text part: kept on it
        m.parts.append({"text": value, "thoughtSignature": m.pending_sig})
        m.pending_sig = None
    elif m.assistant and (held := m.walk.held_text(value)):
        m.parts.extend(held)  # as Gemini sent it, its signatures where they were
    else:
        m.parts.append({"text": value})
        m.unknown = m.unknown or (m.ours and marks.textkey(value) not in (m.walk.texts or {}))


def media(b: Block, where: str, m: Message) -> None:
    """An image or a document."""
    kind = str(b["type"])
    m.parts.append(source_part(b, where, kind))
    request_notes.media(m.walk.notes, kind, m.parts[-1], where)


def tool_use(b: Block, where: str, m: Message) -> None:
    """A functionCall, with the signature of the thinking block before it, or the one the gateway remembered,
    and the signed empty parts Gemini sent after it."""
    if not m.assistant:
        raise invalid_request(f"{where}: tool_use blocks belong in assistant messages")
    name, args = b.get("name"), b.get("input", {})
    if not isinstance(name, str) or not name:
        raise invalid_request(f"{where}.name: Field required")
    if not isinstance(args, dict):
        raise invalid_request(f"{where}.input: must be an object")
    part: Part = {"functionCall": {"name": m.walk.names.out(name), "args": args}}
    tid = str(b.get("id"))
    sig = m.pending_sig or m.walk.remembered(tid)
    if sig:
        part["thoughtSignature"] = sig
        m.pending_sig = None
    m.parts.append(part)
    m.parts.extend(m.walk.after_call(tid))


def tool_result(b: Block, where: str, m: Message) -> None:
    """A functionResponse named after its call; its media beside it. A result whose call the history no longer
    holds (compacted away) is text: Gemini refuses an orphan functionResponse."""
    if m.role != "user":
        raise invalid_request(f"{where}: tool_result blocks belong in user messages")
    w = m.walk
    tid = str(b.get("tool_use_id", ""))
    result = result_of(b, where)
    w.referenced.extend(result.refs)
    for part in result.media:
        _note_moved(part, where, m)
    if tid in w.id_to_name:
        key = "error" if b.get("is_error") else "content"
        m.responses.append(
            {"functionResponse": {"name": w.names.out(w.id_to_name[tid]), "response": {key: result.text}}}
        )
    else:
        w.orphans.append(tid)
        m.parts.append({"text": f"[result of tool call {tid}]\n{result.text}"})
    m.parts.extend(result.media)


def _note_moved(part: Part, where: str, m: Message) -> None:
    m.walk.notes.add(
        "media-converted",
        "media inside a tool_result moved beside its functionResponse (Gemini takes only an object there)",
        to="part beside functionResponse",
    )
    mime = str((part.get("inlineData") or part.get("fileData") or {}).get("mimeType", ""))
    request_notes.media(m.walk.notes, "image" if mime.startswith("image/") else "document", part, where)


def thinking(b: Block, where: str, m: Message) -> None:
    """No part of its own: its signature, when Gemini issued it, goes back on the part it belongs to (the text
    just before it, or what follows). A user's thinking block is nothing Gemini issued."""
    if not m.assistant:
        return
    sig, prev = m.walk.client_sig(b.get("signature"))
    last = m.parts[-1] if m.parts else None
    if sig and prev and last is not None and "text" in last and "thoughtSignature" not in last:
        last["thoughtSignature"] = sig  # back on the text part Gemini signed
    else:
        m.pending_sig = sig or m.pending_sig


def dropped(b: Block, where: str, m: Message) -> None:
    """Counted for the note, and left out."""
    kind = str(b["type"])
    m.walk.dropped_blocks[kind] = m.walk.dropped_blocks.get(kind, 0) + 1


HANDLERS: dict[str, Handler] = {
    "text": text,
    "image": media,
    "document": media,
    "tool_use": tool_use,
    "tool_result": tool_result,
    "thinking": thinking,
    **dict.fromkeys(DROPPED_BLOCKS, dropped),
}


def is_ours(b: Any) -> bool:
    """A thinking block this gateway made (its signature carries our marks)."""
    if not isinstance(b, dict) or b.get("type") != "thinking":
        return False
    sig = b.get("signature")
    return isinstance(sig, str) and sig.startswith((marks.MARK, marks.MARK_PREV, marks.SYNTHETIC))
