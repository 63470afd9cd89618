"""Thought signatures remembered by tool_use id, for clients (Claude Code) that drop thinking blocks."""

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
