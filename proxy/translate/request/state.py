"""What walking a request's messages carries: the request-wide `Walk` (the turns made so far, what the history
references, the signatures sent back) and the `Message` each block handler adds its parts to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from proxy.translate import marks
from proxy.translate.names import ToolNames
from proxy.translate.notes import Notes
from proxy.translate.signatures import TextParts

Part = dict[str, Any]


class Turn(TypedDict):
    """One Gemini `Content`: a role and its parts, consecutive same-role messages merged."""

    role: str
    parts: list[Part]


@dataclass(slots=True)
class Walk:
    """The whole request's translation state, handed down to every block handler."""

    notes: Notes
    signatures: Mapping[str, str]
    """tool_use id → the Gemini signature the gateway remembered (for clients that drop thinking blocks)"""
    texts: Mapping[str, TextParts] | None
    """what the gateway kept of this session's answers' text parts (`TextSignatures`)"""
    id_to_name: dict[str, str]
    """every tool_use id of the history → its tool's name (a functionResponse needs it: Gemini gets no ids)"""
    names: ToolNames = field(default_factory=ToolNames)
    referenced: list[str] = field(default_factory=list)
    """tools the history calls or tool search found: declared even when deferred"""
    turns: list[Turn] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    """the role-system messages' texts, in order"""
    folded: list[int] = field(default_factory=list)
    dropped_blocks: dict[str, int] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    """tool_use ids of results with no call before them"""
    foreign: int = 0
    kept_client: int = 0
    kept_memory: int = 0
    kept_text: int = 0
    forgotten: bool = False
    """the latest answer of ours, its text no longer held (older ones age out by design)"""

    def add(self, role: str, parts: list[Part]) -> None:
        """Parts of one message, merged into the last turn when it has the same role."""
        if not parts:
            return
        if self.turns and self.turns[-1]["role"] == role:
            self.turns[-1]["parts"].extend(parts)
        else:
            self.turns.append({"role": role, "parts": parts})

    def held_text(self, text: str) -> list[Part] | None:
        """The Gemini parts an assistant text came from, when the gateway kept signed ones for it."""
        parts = self.texts.get(marks.textkey(text)) if self.texts else None
        if not parts or "".join(p.get("text", "") for p in parts) != text:
            return None
        self.kept_text += sum(1 for p in parts if "thoughtSignature" in p)
        return [dict(p) for p in parts]

    def after_call(self, tool_use_id: str) -> list[Part]:
        """The signed empty parts Gemini sent after a call, when the gateway kept them."""
        after = self.texts.get(marks.callkey(tool_use_id)) if self.texts else None
        if not after:
            return []
        self.kept_text += len(after)
        return [dict(p) for p in after]

    def remembered(self, tool_use_id: str) -> str | None:
        """The signature the gateway remembered for a call."""
        sig = self.signatures.get(tool_use_id)
        if not sig:
            return None
        self.kept_memory += 1
        return sig

    def client_sig(self, sig: Any) -> tuple[str | None, bool]:
        """A thinking block's signature → (Gemini's, whether it belongs to the part before); foreign ones
        counted and dropped."""
        gemini, dropped, prev = marks.unwrap(sig)
        self.foreign += dropped
        self.kept_client += gemini is not None
        return gemini, prev


class Message:
    """One message being translated: its role and the parts its blocks made. (A plain slotted class: one is
    made per message of every call, and its attributes are read by every block.)"""

    __slots__ = ("role", "walk", "assistant", "ours", "parts", "responses", "pending_sig", "unknown")

    def __init__(self, role: str, walk: Walk, ours: bool = False) -> None:
        self.role = role
        self.walk = walk
        self.assistant = role == "assistant"
        self.ours = ours
        """an answer this gateway gave (its thinking blocks carry our marks)"""
        self.parts: list[Part] = []
        self.responses: list[Part] = []
        """functionResponses: they go first in the user turn, where Gemini wants them"""
        self.pending_sig: str | None = None
        """a thinking block's signature, waiting for the part that followed it"""
        self.unknown = False
        """a text of ours the gateway no longer knows"""
