"""Gemini generateContent response → Anthropic message."""

from __future__ import annotations

from typing import Any

from .request import SYNTHETIC_SIGNATURE_PREFIX

_REFUSAL = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "LANGUAGE",
}


def usage(meta: dict | None) -> dict[str, int]:
    """Gemini usageMetadata → Anthropic usage. Thinking is billed as output, cached tokens are read, not input."""
    meta = meta or {}
    prompt = int(meta.get("promptTokenCount") or 0)
    cached = int(meta.get("cachedContentTokenCount") or 0)
    cand = int(meta.get("candidatesTokenCount") or meta.get("responseTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    tool_prompt = int(meta.get("toolUsePromptTokenCount") or 0)
    return {
        "input_tokens": max(0, prompt + tool_prompt - cached),
        "output_tokens": cand + thoughts,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
        "thinking_tokens": thoughts,
    }


def anthropic_usage(u: dict[str, int]) -> dict[str, int]:
    """The usage object as the Messages API shows it (without our extra thinking count)."""
    return {
        k: u[k]
        for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    }


def stop_reason(finish: str | None, has_tool_call: bool) -> str:
    """Gemini finishReason → Anthropic stop_reason. Gemini reports a stop-sequence hit as STOP and never
    says which sequence, so that case reads as end_turn."""
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if finish in _REFUSAL:
        return "refusal"
    return "tool_use" if has_tool_call else "end_turn"


def finish_note(finish: str | None, message: str | None = None) -> str | None:
    """Text to show when Gemini stopped for a reason the client would otherwise not see."""
    if finish in ("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"):
        detail = f": {message}" if message else ""
        return (
            f"[gatewatch] The upstream model produced an invalid tool call ({finish}){detail}. Please retry."
        )
    if finish == "OTHER":
        return "[gatewatch] The upstream model stopped for an unspecified reason (OTHER)."
    return None


class IdSource:
    """Makes `toolu_…` ids; injected so translation stays pure and tests can predict ids."""

    def __init__(self, factory):
        self._factory = factory

    def tool_id(self) -> str:
        return "toolu_" + self._factory()


def to_message(
    resp: dict,
    model: str,
    msg_id: str,
    ids: IdSource,
    thinking: bool,
    signatures_out: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Build the Anthropic message. Thought signatures met on function calls go into `signatures_out`
    keyed by tool_use id, and into a thinking block when the client asked for thinking."""
    content: list[dict] = []
    candidates = resp.get("candidates") or []
    cand = candidates[0] if candidates else {}
    parts = ((cand.get("content") or {}).get("parts")) or []
    has_call = False
    for part in parts:
        sig = part.get("thoughtSignature")
        if part.get("thought"):
            if not thinking:
                continue
            if content and content[-1]["type"] == "thinking":
                content[-1]["thinking"] += part.get("text", "")
                if sig:
                    content[-1]["signature"] = sig
            else:
                content.append({"type": "thinking", "thinking": part.get("text", ""), "signature": sig or ""})
            continue
        if "functionCall" in part:
            fc = part["functionCall"] or {}
            tid = fc.get("id") or ids.tool_id()
            if not str(tid).startswith("toolu_"):
                tid = "toolu_" + str(tid)
            if sig:
                if signatures_out is not None:
                    signatures_out[tid] = sig
                if thinking and not (content and content[-1]["type"] == "thinking"):
                    # Carry the signature the way Anthropic clients already echo back: a thinking block.
                    content.append({"type": "thinking", "thinking": "", "signature": sig})
                elif thinking and content[-1]["type"] == "thinking" and not content[-1]["signature"]:
                    content[-1]["signature"] = sig
            content.append(
                {"type": "tool_use", "id": tid, "name": fc.get("name", ""), "input": fc.get("args") or {}}
            )
            has_call = True
            continue
        if "text" in part and part["text"]:
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += part["text"]
            else:
                content.append({"type": "text", "text": part["text"]})
    for block in content:
        if block["type"] == "thinking" and not block["signature"]:
            block["signature"] = SYNTHETIC_SIGNATURE_PREFIX
    finish = cand.get("finishReason")
    if not candidates and (resp.get("promptFeedback") or {}).get("blockReason"):
        reason = "refusal"
    else:
        reason = stop_reason(finish, has_call)
    note = finish_note(finish, cand.get("finishMessage"))
    if note:
        content.append({"type": "text", "text": note})
    u = usage(resp.get("usageMetadata"))
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": anthropic_usage(u),
    }
