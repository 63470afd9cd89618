"""The system prompt: Claude Code's billing header taken off, the rest (and the role-system messages, in order)
joined into Gemini's systemInstruction."""

from __future__ import annotations

from typing import Any

from proxy.errors import invalid_request
from proxy.translate.notes import Notes

BILLING_PREFIX = "x-anthropic-billing-header:"


def text_of(content: Any, where: str) -> str:
    """A string, or a list of text blocks joined by blank lines (empty ones skipped); None is empty."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(t for t in (_block_text(b, f"{where}.{i}") for i, b in enumerate(content)) if t)
    if content is None:
        return ""
    raise invalid_request(f"{where}: must be a string or a list of text blocks")


def _block_text(b: Any, where: str) -> str:
    if not isinstance(b, dict) or b.get("type") != "text":
        raise invalid_request(f"{where}: system content must be text blocks")
    if not isinstance(b.get("text"), str):
        raise invalid_request(f"{where}.text: Field required")
    return str(b["text"])


def billing_header(system: Any) -> tuple[Any, dict[str, str]]:
    """Claude Code's first system block, `x-anthropic-billing-header: cc_version=…; cc_entrypoint=…;`, changes
    per prompt and per sub-agent: sent upstream it would defeat Gemini's implicit prefix cache at token 0.
    → (the system without it, its fields)."""
    fields: dict[str, str] = {}
    if isinstance(system, list):
        kept = []
        for b in system:
            text = b.get("text") if isinstance(b, dict) else None
            if isinstance(text, str) and text.startswith(BILLING_PREFIX) and "\n" not in text.strip():
                _parse(text.strip(), fields)
            else:
                kept.append(b)
        return kept, fields
    if isinstance(system, str) and system.startswith(BILLING_PREFIX):
        first, _, rest = system.partition("\n")
        _parse(first, fields)
        return rest.lstrip("\n"), fields
    return system, fields


def _parse(header: str, fields: dict[str, str]) -> None:
    for item in header[len(BILLING_PREFIX) :].split(";"):
        k, sep, v = item.strip().partition("=")
        if sep and k:
            fields[k.strip()] = v.strip()


def system_texts(system: Any, notes: Notes) -> tuple[list[str], dict[str, str]]:
    """The request's `system` → (its text, the billing header's fields), the header's removal noted."""
    rest, billing = billing_header(system)
    if billing:
        notes.add(
            "field-dropped",
            "Claude Code's billing header (a system block that changes every call) not sent upstream",
            field="system.x-anthropic-billing-header",
            value="; ".join(f"{k}={v}" for k, v in billing.items()),
        )
    return ([] if rest is None else [text_of(rest, "system")]), billing


def instruction(texts: list[str]) -> dict[str, Any] | None:
    """Gemini's systemInstruction from the system texts in order, or None when they say nothing."""
    joined = "\n\n".join(s for s in texts if s)
    return {"parts": [{"text": joined}]} if joined else None
