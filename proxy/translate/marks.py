"""Thought signatures as the client holds them: a Gemini signature leaves the gateway wrapped in a marker of
our own, so one that comes back is known to be Gemini's; anything else (Claude's, another gateway's) is
foreign and never reaches Gemini, which would refuse it as "Corrupted thought signature"."""

from __future__ import annotations

import hashlib
from typing import Any

MARK = "gw1."
"""Not a base64 character: no Anthropic or Gemini signature starts with it. The signature belongs to the
part that follows its thinking block (or to a trailing empty part when none does)."""
MARK_PREV = "gw1p."
"""The signature belongs to the text part just before its thinking block (Gemini signed a text part)."""
SYNTHETIC = "gw-none"
"""A thinking block that came with no signature: ours, and nothing to send back."""
SKIP = "skip_thought_signature_validator"
"""Google's documented value for function calls Gemini did not produce (gemini-3 and later)."""


def wrap(sig: str | None, prev: bool = False) -> str:
    """The signature the client is given for a Gemini signature (or for none)."""
    if not sig:
        return SYNTHETIC
    return (MARK_PREV if prev else MARK) + sig


def unwrap(sig: Any) -> tuple[str | None, bool, bool]:
    """A client-held signature → (Gemini's signature or None, whether a foreign one was dropped, whether it
    belongs to the part before)."""
    if not isinstance(sig, str) or not sig or sig.startswith(SYNTHETIC):
        return None, False, False
    for mark in (MARK, MARK_PREV):
        if sig.startswith(mark) and len(sig) > len(mark):
            return sig[len(mark) :], False, mark == MARK_PREV
    return None, True, False


def textkey(text: str) -> str:
    """What a text block is known by when the gateway keeps its text-part signatures (`TextSignatures`)."""
    return "t:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def callkey(tool_use_id: str) -> str:
    """What a tool_use block is known by when a signed empty part followed its call."""
    return "c:" + tool_use_id
