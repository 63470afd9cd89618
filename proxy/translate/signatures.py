"""Gemini thought signatures the gateway keeps: by tool_use id, for clients that drop thinking blocks
(`Signatures`), and those on text parts, which Claude's content has no place for (`TextSignatures`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

DEFAULT_SIZE = 20_000


class Signatures(OrderedDict[str, str]):
    """An LRU of tool_use id → Gemini thought signature; `translate.request` reads it as a mapping."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        super().__init__()
        self.size = size

    def remember(self, found: Mapping[str, str]) -> None:
        for k, v in found.items():
            self[k] = v
            self.move_to_end(k)
        while len(self) > self.size:
            self.popitem(last=False)


TEXT_SESSIONS = 2048
"""Sessions whose text-part signatures are kept (the least recently used goes first)."""
TEXT_PER_SESSION = 128
"""Text blocks remembered per session: only the recent history matters to Gemini's reasoning."""
TEXT_MAX_BYTES = 32 * 1024 * 1024
"""What all kept text-part signatures may weigh together."""

TextParts = list[dict[str, str]] | None
"""The Gemini parts one client block came from ({text, thoughtSignature?}), or None: seen, unsigned."""


def _weight(parts: TextParts) -> int:
    return 64 + (
        sum(len(p.get("text", "")) + len(p.get("thoughtSignature", "")) for p in parts) if parts else 0
    )


class TextSignatures:
    """Gemini's signatures on text parts (and on a trailing empty part), kept on the gateway's side.

    Claude's content has no place for them: given to the client as an empty thinking block after the text,
    that block became the answer's last, which `claude -p` reports as the result (""). Google documents
    text-part signatures as optional (function-call ones are required and travel with the client, in the
    thinking block before their tool_use), so a restart here loses only optional ones. Keyed per session by
    `textkey` of the block's text; every block of an answer is remembered, signed or not, so a request can
    tell a block the gateway never saw (restarted, evicted) from one Gemini did not sign.
    """

    def __init__(
        self,
        sessions: int = TEXT_SESSIONS,
        per_session: int = TEXT_PER_SESSION,
        max_bytes: int = TEXT_MAX_BYTES,
    ) -> None:
        self.sessions = sessions
        self.per_session = per_session
        self.max_bytes = max_bytes
        self.weight = 0
        self._by_session: OrderedDict[str, OrderedDict[str, TextParts]] = OrderedDict()

    def keep(self, session: str, found: Mapping[str, TextParts]) -> None:
        if not found:
            return
        kept = self._by_session.get(session)
        if kept is None:
            kept = self._by_session[session] = OrderedDict()
        self._by_session.move_to_end(session)
        for key, parts in found.items():
            if key in kept:
                self.weight -= _weight(kept.pop(key))
            kept[key] = parts
            self.weight += _weight(parts)
        while len(kept) > self.per_session:
            _, gone = kept.popitem(last=False)
            self.weight -= _weight(gone)
        while self._by_session and (len(self._by_session) > self.sessions or self.weight > self.max_bytes):
            _, dropped = self._by_session.popitem(last=False)
            self.weight -= sum(_weight(p) for p in dropped.values())

    def view(self, session: str) -> Mapping[str, TextParts]:
        """What the gateway holds for this session (empty when it holds nothing)."""
        return self._by_session.get(session) or {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_session.values())
