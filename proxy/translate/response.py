"""The leaves shared by both Gemini→Anthropic answers (the state machine is `stream.StreamTranslator`):
usage, stop reason, notes, tool ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REFUSAL = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "LANGUAGE",
}


def usage(meta: dict[str, Any] | None) -> dict[str, int]:
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
    if finish in REFUSAL:
        return "refusal"
    return "tool_use" if has_tool_call else "end_turn"


def finish_note(finish: str | None, message: str | None = None) -> str | None:
    """Text to show when Gemini stopped for a reason the client would otherwise not see."""
    if finish in ("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"):
        detail = f": {message}" if message else ""
        return (
            f"[gatewatch] The upstream model produced an invalid tool call ({finish}){detail}. Please retry."
        )
    if finish in REFUSAL or finish in ("MODEL_ARMOR", "BLOCKED_REASON_UNSPECIFIED", "OTHER_BLOCK"):
        # a refusal says why, in Google's words: the client would otherwise see nothing at all
        detail = f": {message}" if message else ""
        return f"[gatewatch] Gemini declined to answer ({finish}){detail}"
    if finish == "OTHER":
        return "[gatewatch] The upstream model stopped for an unspecified reason (OTHER)."
    return None


class IdSource:
    """Makes `toolu_…` ids; injected so translation stays pure and tests can predict ids."""

    def __init__(self, factory: Callable[[], str]) -> None:
        self._factory = factory

    def tool_id(self) -> str:
        return "toolu_" + self._factory()

    def server_tool_id(self) -> str:
        return "srvtoolu_" + self._factory()
