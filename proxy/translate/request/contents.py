"""The messages → Gemini's contents: role-system messages folded out (into systemInstruction), every block
through its handler (`blocks`), consecutive same-role messages merged; then what the walk decided, noted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.errors import invalid_request
from proxy.translate.notes import Notes
from proxy.translate.request.blocks import HANDLERS, is_ours
from proxy.translate.request.state import Message, Part, Walk
from proxy.translate.request.system import text_of
from proxy.translate.signatures import TextParts

ROLES = {"user": "user", "assistant": "model"}
"""Anthropic's role → Gemini's"""


def call_names(messages: list[Any]) -> dict[str, str]:
    """Every tool_use id → its tool's name, first: a tool_result needs the function's name, and Gemini gets
    no ids."""
    out: dict[str, str] = {}
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), list):
            for b in m["content"]:
                if isinstance(b, dict) and b.get("type") == "tool_use":
                    out[str(b.get("id"))] = str(b.get("name"))
    return out


def walk(
    messages: list[Any], notes: Notes, signatures: Mapping[str, str], texts: Mapping[str, TextParts] | None
) -> Walk:
    """Every message translated, in order, into `Walk.turns` (not yet fitted to Gemini's function-turn rules)."""
    w = Walk(notes, signatures, texts, call_names(messages))
    # A tool the history already called is declared even when deferred: the model may call it again.
    w.referenced = list(w.id_to_name.values())
    for i, m in enumerate(messages):
        _message(m, f"messages.{i}", i, w)
    return w


def _message(m: Any, where: str, i: int, w: Walk) -> None:
    if not isinstance(m, dict):
        raise invalid_request(f"{where}: must be an object")
    role, content = m.get("role"), m.get("content")
    if role == "system":
        # Claude Code puts environment and agent notes in role-system messages; Gemini's place for
        # instructions is systemInstruction, and the order is kept.
        w.system.append(text_of(content, f"{where}.content"))
        w.folded.append(i)
        return
    if not isinstance(role, str) or role not in ROLES:
        raise invalid_request(f"{where}.role: must be 'user' or 'assistant', got {role!r}")
    if isinstance(content, str):
        w.add(ROLES[role], _text_parts(role, content, w))
    elif isinstance(content, list):
        _blocks(role, content, where, w)
    else:
        raise invalid_request(f"{where}.content: must be a string or a list of content blocks")


def _text_parts(role: str, content: str, w: Walk) -> list[Part]:
    """A message that is a string: one text part, or the signed parts the gateway kept for an answer's text."""
    if not content:
        return []
    held = w.held_text(content) if role == "assistant" else None
    return held or [{"text": content}]


def _blocks(role: str, content: list[Any], where: str, w: Walk) -> None:
    """A message of content blocks, each through its handler."""
    msg = Message(role, w, ours=role == "assistant" and w.texts is not None and any(map(is_ours, content)))
    for j, b in enumerate(content):
        at = f"{where}.content.{j}"
        if not isinstance(b, dict):
            raise invalid_request(f"{at}: must be an object")
        t = b.get("type")
        handler = HANDLERS.get(t) if isinstance(t, str) else None
        if handler is None:
            raise invalid_request(f"{at}.type: unknown content block type {t!r}")
        handler(b, at, msg)
    if msg.pending_sig:  # Gemini's trailing empty part, signed: given back as it came
        msg.parts.append({"text": "", "thoughtSignature": msg.pending_sig})
    if msg.ours:
        w.forgotten = msg.unknown
    w.add(ROLES[role], msg.responses + msg.parts)


def note_walk(w: Walk) -> None:
    """What the walk changed: folded system messages, dropped blocks, results without calls, signatures."""
    notes = w.notes
    if w.folded:
        notes.add(
            "system-folded",
            f"{len(w.folded)} role-system message(s) folded into systemInstruction, in order",
            messages=w.folded,
        )
    for btype, n in w.dropped_blocks.items():
        notes.add(
            "block-dropped", f"{n} {btype} block(s) left out: Gemini has no equivalent", block=btype, count=n
        )
    if w.orphans:
        notes.add(
            "history-repaired",
            f"{len(w.orphans)} tool_result(s) without their tool_use sent as text",
            tool_use_ids=w.orphans,
        )
    _note_signatures(w)


def _note_signatures(w: Walk) -> None:
    kept = w.kept_client + w.kept_memory + w.kept_text
    if kept:
        said: list[str] = []
        if w.kept_memory:
            said.append(f"{w.kept_memory} remembered by the gateway: the client dropped them")
        if w.kept_text:
            said.append(f"{w.kept_text} on text parts, kept by the gateway: the client never saw them")
        w.notes.add(
            "signature-kept",
            f"{kept} Gemini thought signature(s) sent back byte for byte"
            + (f" ({'; '.join(said)})" if said else ""),
            from_client=w.kept_client,
            from_memory=w.kept_memory,
            from_gateway=w.kept_text,
        )
    if w.forgotten:
        w.notes.add(
            "signature-lost",
            "the last answer's text is one this gateway no longer remembers (a restart, another replica): any "
            "text-part signatures it had were not sent back (Google documents them as optional)",
        )
    if w.foreign:
        w.notes.add(
            "signature-dropped",
            f"foreign signature dropped (x{w.foreign}): Gemini did not issue it and would refuse it",
            count=w.foreign,
        )
