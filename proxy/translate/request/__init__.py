"""Anthropic Messages request → Gemini generateContent request, block by block.

`translate` puts the body together in the order Gemini's fields go: `contents` (`contents` walks the messages,
one handler per content block type in `blocks`; `history` fits the turns to Gemini's function-call rules),
`systemInstruction` (`system`), `tools` and `toolConfig` (`tools`), `generationConfig` (`generation`,
`thinking`). Every decision that changes the call's meaning is a note (`translate.notes`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.errors import invalid_request
from proxy.translate.models import facts
from proxy.translate.names import ToolNames
from proxy.translate.notes import Note, Notes
from proxy.translate.request.contents import note_walk, walk
from proxy.translate.request.fields import unsent_fields
from proxy.translate.request.generation import generation_config
from proxy.translate.request.history import fix_function_turns, inject_signatures
from proxy.translate.request.system import BILLING_PREFIX, billing_header, instruction, system_texts
from proxy.translate.request.target import Target
from proxy.translate.request.tools import tool_fields
from proxy.translate.signatures import TextParts

__all__ = ["BILLING_PREFIX", "Target", "Translated", "billing_header", "translate"]


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


def translate(
    req: Mapping[str, Any],
    target: Target,
    signatures: Mapping[str, str] | None = None,
    texts: Mapping[str, TextParts] | None = None,
) -> Translated:
    """Translate a validated Messages request. `signatures` maps tool_use ids to Gemini thought signatures
    remembered from earlier answers (trusted: the gateway kept them), for clients that drop thinking blocks;
    `texts` is what the gateway kept of this session's answers' text parts (`TextSignatures`), signatures
    the client never saw, put back on the text they came with. Bad input raises the Anthropic error, the
    first one in the order the fields are read."""
    notes = Notes()
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("messages: at least one message is required")
    system, billing = system_texts(req.get("system"), notes)
    w = walk(messages, notes, signatures or {}, texts)
    contents = fix_function_turns(w.turns, notes)
    if not contents:
        raise invalid_request("messages: all messages are empty; at least one must have content")
    note_walk(w)
    model = facts(target.model)
    if model.generation >= 3:
        inject_signatures(contents, notes)
    body: dict[str, Any] = {"contents": contents}
    system_instruction = instruction(system + w.system)
    if system_instruction:
        body["systemInstruction"] = system_instruction
    dropped = unsent_fields(req, notes)
    tools = tool_fields(req, w.referenced, target, model, w.names, notes)
    body.update(tools.body)
    gen, thinking = generation_config(req, target, model, notes)
    if gen:
        body["generationConfig"] = gen
    return Translated(body, thinking, tools.names, w.names, dropped, billing, notes.items, tools.search)
