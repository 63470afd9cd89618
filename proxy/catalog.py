"""What a model really takes: its context window and output ceiling (for `/v1/models`, the context meter and
the statusline). Gemini's own figures, not Claude's 200k that Claude Code would otherwise assume."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .translate.models import facts, generation

GEMINI_WINDOW = 1_048_576
"""Gemini 2.0, 2.5 and 3: 1,048,576 input tokens"""
CLAUDE_WINDOW = 200_000
CLAUDE_MAX_OUTPUT = 64_000


@dataclass(frozen=True, slots=True)
class Limits:
    context_window: int
    """input tokens the model takes"""
    max_output: int


def limits(model: str | None) -> Limits | None:
    """The model's real limits; None for a name we can't read."""
    if not model:
        return None
    m = model.lower().removeprefix("models/").split("/")[-1]
    if "gemini" in m:
        g = generation(m)
        window = 32_768 if 0 < g < 1.5 else GEMINI_WINDOW
        if re.search(r"gemini-1\.5-pro", m):
            window = 2_097_152
        return Limits(window, facts(m).max_output)
    if m.startswith("claude"):
        return Limits(CLAUDE_WINDOW, CLAUDE_MAX_OUTPUT)
    return None


def window(model: str | None) -> int | None:
    lim = limits(model)
    return lim.context_window if lim else None
