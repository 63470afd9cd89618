"""Tool names Gemini can take: Anthropic allows 128 characters and a leading digit or dash, Gemini only
`[A-Za-z_][A-Za-z0-9_.:-]{0,63}`. A name that fits is kept; any other becomes a readable prefix plus a short
hash of the whole name, the same on every call, and `ToolNames` maps it back in answers."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

MAX_LEN = 64
VALID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
_HASH_LEN = 8


@lru_cache(maxsize=4096)
def to_gemini(name: str) -> str:
    """The name as Gemini will see it: itself when valid, else `<cleaned prefix>_<8 hex of sha256>`.
    The hash covers the original name, so two names that clean to the same prefix stay apart."""
    if VALID.match(name):
        return name
    cleaned = _BAD_CHARS.sub("_", name)
    if not cleaned or not (cleaned[0].isascii() and (cleaned[0].isalpha() or cleaned[0] == "_")):
        cleaned = "_" + cleaned
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LEN]
    return f"{cleaned[: MAX_LEN - _HASH_LEN - 1]}_{digest}"


class ToolNames:
    """The names of one request both ways: client → Gemini (`out`) and Gemini → client (`back`)."""

    def __init__(self) -> None:
        self.mapped: dict[str, str] = {}
        """Gemini name → client name, only for the names that had to change."""

    def out(self, name: str) -> str:
        g = to_gemini(name)
        if g != name:
            self.mapped[g] = name
        return g

    def back(self, name: str) -> str:
        return self.mapped.get(name, name)
