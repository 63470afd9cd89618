"""Translation notes: every decision the gateway took that changed what a call means, as data.

A translate function that decides something the client can't see returns a `Note` with it (a stable
kebab-case `kind`, a short `detail` for people, and `data` for tools); the recorder puts them on the
record, the store indexes their kinds (`note:KIND`), `stats` counts them and the console shows them.
Pure: no I/O, nothing here knows where a note ends up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KINDS: dict[str, str] = {
    # the way up: Anthropic request → Gemini request
    "field-dropped": "a request field Gemini has no place for was not sent (metadata, cache_control…)",
    "block-dropped": "a content block only Anthropic's servers make was left out of the history",
    "cap-applied": "a value was cut to what the target takes (max_tokens, stop sequences, a budget)",
    "thinking-mapped": "Anthropic's thinking settings became a Gemini level or budget",
    "tool-renamed": "a tool name Gemini can't take was mapped (and is mapped back in answers)",
    "tool-dropped": "a tool was not declared upstream (web search beside functions on Gemini 2.x)",
    "deferred-held-back": "deferred tools (defer_loading) not referenced yet were not declared",
    "deferred-declared": "a deferred tool was declared because the history references it",
    "signature-kept": "Gemini's own thought signatures were sent back, byte for byte",
    "signature-dropped": "a thought signature Gemini did not issue (Claude's) was not sent",
    "signature-injected": "Google's skip value was put where Gemini 3 requires a signature",
    "signature-lost": "a text-part signature the gateway no longer holds (restart, eviction) was not sent back",
    "schema-keyword-removed": "tool schema keywords Gemini's Schema refuses were removed",
    "schema-keyword-rewritten": "tool schema keywords were rewritten into ones Gemini knows",
    "system-folded": "role-system messages were folded into systemInstruction",
    "media-converted": "images or documents were converted to Gemini parts",
    "history-repaired": "the history was changed to be one Gemini accepts (filled or orphan tool results)",
    # the way back: Gemini answer → Anthropic answer
    "finish-mapped": "Gemini's finishReason had no exact Anthropic stop_reason",
    "refusal": "Gemini declined to answer (safety, recitation, a blocked prompt…)",
    "empty-retried": "Gemini's answer was empty and was asked again",
    "empty-failed": "Gemini's answer was empty again: the call failed as overloaded",
    "usage-mapped": "Gemini's usage was rewritten in Anthropic's terms (cache reads, thoughts as output)",
    "signature-held": "Gemini signed a text part: the gateway keeps it for the next request (never shown)",
    "search-mapped": "Google Search grounding became Claude's web search blocks (server_tool_use, results)",
    "thoughts-dropped": "Gemini sent thoughts the client did not ask for; they were not passed on",
    # findings: what a session's calls in order show (proxy/insight/detector.py), with tokens and $ at stake
    "cache-break": "the upstream prefix changed where Gemini's cache should have held it (what, where, re-billed)",
    "repeat": "the same request body was sent again after it was answered",
    "retry-cascade": "the same request was resent after a 4xx that refuses it again",
    "tool-loop": "the model called the same tool with the same input 3 or more times in the session",
    "stream-fallback": "a non-streaming resend of a stream that failed (its tools may run twice)",
    # the record itself
    "upstream-error": "the target answered with an error; its own body is kept",
    "credential-renewed": "the target refused the gateway's token (401): a new one was minted, the call sent again",
    "session-moved": "a Claude Code session left the target it started on (that target failed)",
    "signature-reset": "thought signatures of the session's earlier target were not sent to the new one",
    "body-not-kept": "the request body was read but could not be kept",
    "payloads-not-stored": "the payloads could not be stored",
    "other": "a note from an older gatewatch",
}
"""Every kind, with what it means (the help of `note:` and the console's legend are written from it)."""


@dataclass(frozen=True)
class Note:
    kind: str
    detail: str
    """one short line for people"""
    data: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    """the facts behind it, for tools (field names, before/after values, counts)"""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


# What notes written as plain text by an older gatewatch were: the kind is found again from the words.
_LEGACY = (
    (re.compile(r"foreign signature dropped"), "signature-dropped"),
    (re.compile(r"signature injected"), "signature-injected"),
    (re.compile(r"empty answer.*again.*failed"), "empty-failed"),
    (re.compile(r"empty answer"), "empty-retried"),
    (re.compile(r"web search not declared"), "tool-dropped"),
    (re.compile(r"payloads not stored"), "payloads-not-stored"),
    (re.compile(r"nested|not kept"), "body-not-kept"),
)


def from_text(text: str) -> Note:
    """A note an older gatewatch wrote as text."""
    kind = next((k for pattern, k in _LEGACY if pattern.search(text)), "other")
    return Note(kind, text)


def kinds(notes: list[Note]) -> list[str]:
    """The distinct kinds, in the order they were first noted."""
    return list(dict.fromkeys(n.kind for n in notes))


class Notes:
    """A collector handed down a translation: `add` a note; the caller reads `items` at the end."""

    def __init__(self) -> None:
        self.items: list[Note] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, kind: str, detail: str, **data: Any) -> None:
        """A note, once: the same kind and detail again (a second tool_result image…) is not repeated."""
        assert kind in KINDS, kind
        if (kind, detail) not in self._seen:
            self._seen.add((kind, detail))
            self.items.append(Note(kind, detail, data))

    def extend(self, notes: Iterable[Note]) -> None:
        """Notes made elsewhere (a memo's), each once."""
        for note in notes:
            if (note.kind, note.detail) not in self._seen:
                self._seen.add((note.kind, note.detail))
                self.items.append(note)


def legend() -> str:
    """Every kind and what it means, as plain text (`gatewatch show --help`)."""
    return "note kinds:\n" + "\n".join(f"  {k:<26} {v}" for k, v in KINDS.items())
