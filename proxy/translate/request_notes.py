"""The words for what request translation decided (`request.translate` calls these): each makes the
`Note` of one kind of decision. Pure, like the translation."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from proxy.translate.notes import Note, Notes


def media(notes: Notes, kind: str, part: dict[str, Any], where: str) -> None:
    """Say how an image or document became a Gemini part."""
    if "inlineData" in part:
        mime = part["inlineData"]["mimeType"]
        notes.add(
            "media-converted", f"{kind} (base64 {mime}) → inlineData", block=kind, to="inlineData", mime=mime
        )
    elif "fileData" in part:
        mime = part["fileData"]["mimeType"]
        notes.add(
            "media-converted",
            f"{kind} URL → fileData, {mime} guessed from the URL",
            block=kind,
            to="fileData",
            mime=mime,
        )
    else:
        notes.add("media-converted", f"{kind} with text content → a text part", block=kind, to="text")


SAFEGUARDS_HELP = (
    "auto mode's server-side check (safeguards) runs only on Anthropic's servers and cannot run on Gemini: "
    "Claude Code stops auto mode and asks before each action. Start it in another permission mode "
    '(claude --permission-mode acceptEdits, or "defaultMode" in ~/.claude/settings.json)'
)
"""what the console says once, when it first sees a call whose safeguards were dropped"""


def safeguards(notes: Notes, value: Any) -> None:
    """Claude Code's auto mode asks Anthropic's servers to check its actions (`safeguards`); Gemini has no
    such check, so the field is dropped, and said so."""
    checks = [str(s.get("type")) for s in value if isinstance(s, dict)] if isinstance(value, list) else []
    notes.add(
        "field-dropped",
        f"safeguards not sent ({', '.join(checks) or 'none listed'}): auto mode's server-side check runs only "
        "on Anthropic's servers, Gemini has none",
        field="safeguards",
        checks=checks,
    )


def cache_controls(req: Mapping[str, Any]) -> int:
    """How many blocks (system, messages, tools) carry a cache_control."""
    n = 0
    system, tools = req.get("system"), req.get("tools")
    # read before the request is validated: a malformed `tools` gets its 400 there, not a crash here
    for group in (system if isinstance(system, list) else [], tools if isinstance(tools, list) else []):
        n += sum(1 for b in group if isinstance(b, dict) and "cache_control" in b)
    for m in req.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            n += sum(1 for b in content if isinstance(b, dict) and "cache_control" in b)
    return n


def thinking(notes: Notes, thinking: Any, output_config: Any, cfg: dict[str, Any] | None, model: str) -> None:
    """Say what the client's thinking settings became, when that is not what it asked for word for word."""
    kind = thinking.get("type") if isinstance(thinking, dict) else "disabled"
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if kind == "adaptive":
        asked = f"adaptive (effort {effort or 'high, the default'})"
    elif kind == "enabled":
        asked = f"budget_tokens {thinking.get('budget_tokens')}"
    else:
        asked = "disabled" if isinstance(thinking, dict) else "no thinking"
    if cfg is None:
        if kind in ("adaptive", "enabled"):
            notes.add("thinking-mapped", f"{asked} → none: {model} does not think", asked=asked, sent=None)
        return
    if "thinkingLevel" in cfg:
        sent = f"thinkingLevel {cfg['thinkingLevel']}"
    else:
        sent = f"thinkingBudget {cfg.get('thinkingBudget')}"
    same = (kind == "enabled" and cfg.get("thinkingBudget") == thinking.get("budget_tokens")) or (
        kind != "adaptive" and kind != "enabled" and cfg.get("thinkingBudget") == 0
    )
    if not same:
        notes.add("thinking-mapped", f"{asked} → {sent}", asked=asked, sent=sent, model=model)


REWRITES = {
    "$ref": "inlined",
    "$defs": "inlined where referenced",
    "definitions": "inlined where referenced",
    "allOf": "members merged",
    "oneOf": "→ anyOf",
    "const": "→ enum",
    "exclusiveMinimum": "→ minimum",
    "exclusiveMaximum": "→ maximum",
    "examples": "→ example",
    "type": "a list of types → one type + nullable, or anyOf",
    "enum": "non-string values → the description",
}


@lru_cache(maxsize=256)
def schema(changes: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]) -> tuple[Note, ...]:
    """The schema notes of a set of tools: (name, keywords removed, keywords rewritten) each. Claude Code
    declares the same tools on every call: the notes are made once per set (notes are never mutated)."""
    removed: dict[str, set[str]] = {}
    rewritten: dict[str, set[str]] = {}
    for name, gone, changed in changes:
        for kw in gone:
            removed.setdefault(kw, set()).add(name)
        for kw in changed:
            rewritten.setdefault(kw, set()).add(name)
    out = [
        Note(
            "schema-keyword-removed",
            f"{kw} removed from {len(where)} tool schema(s): Gemini's Schema refuses it",
            {"keyword": kw, "tools": sorted(where)},
        )
        for kw, where in removed.items()
    ]
    out += [
        Note(
            "schema-keyword-rewritten",
            f"{kw} rewritten in {len(where)} tool schema(s) ({REWRITES.get(kw, 'into what Gemini knows')})",
            {"keyword": kw, "tools": sorted(where)},
        )
        for kw, where in rewritten.items()
    ]
    return tuple(out)
