"""A Claude Code session moved to another target: the thought signatures in its history were issued for the
target it left (Gemini binds them to the model and project that issued them), so none is sent to the new one."""

from __future__ import annotations

from typing import Any

from proxy.translate import marks
from proxy.translate.models import facts
from proxy.translate.notes import Note
from proxy.translate.request.history import sign_current_turn


def reset_signatures(body: dict[str, Any], model: str, left: str, to: str) -> list[Note]:
    """Strip every thought signature from a translated request's contents (in place); on gemini-3 and later,
    put Google's skip value where a signature is required. Returns the `signature-reset` note (none when the
    history held no signature)."""
    removed = 0
    for turn in body.get("contents") or []:
        for part in turn.get("parts") or []:
            if isinstance(part, dict) and part.pop("thoughtSignature", None) not in (None, marks.SKIP):
                removed += 1
    if not removed:
        return []
    injected = sign_current_turn(body["contents"]) if facts(model).generation >= 3 else 0
    detail = f"{removed} thought signature(s) issued through {left} not sent to {to}"
    if injected:
        detail += f"; {marks.SKIP} put on {injected} function call(s) where {model} requires one"
    return [
        Note("signature-reset", detail, {"from": left, "to": to, "removed": removed, "injected": injected})
    ]
