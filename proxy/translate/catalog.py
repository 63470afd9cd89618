"""What a model really takes: its context window and output ceiling (for `/v1/models`, the context meter and
the statusline). Gemini's own figures, not Claude's 200k that Claude Code would otherwise assume."""

from __future__ import annotations

# No dataclasses or translate import at module level: `gatewatch statusline` imports this, and every
# millisecond of import is one Claude Code waits for after each message.

GEMINI_WINDOW = 1_048_576
"""Gemini 2.0, 2.5 and 3: 1,048,576 input tokens"""
CLAUDE_WINDOW = 200_000
CLAUDE_MAX_OUTPUT = 64_000


class Limits:
    __slots__ = ("context_window", "max_output")

    def __init__(self, context_window: int, max_output: int) -> None:
        self.context_window = context_window
        """input tokens the model takes"""
        self.max_output = max_output

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and (self.context_window, self.max_output) == (
            other.context_window,
            other.max_output,
        )

    def __hash__(self) -> int:
        return hash((self.context_window, self.max_output))

    def __repr__(self) -> str:
        return f"Limits({self.context_window}, {self.max_output})"


def _name(model: str) -> str:
    return model.lower().removeprefix("models/").split("/")[-1]


def window(model: str | None) -> int | None:
    """The input tokens the model takes; None for a name we can't read."""
    if not model:
        return None
    m = _name(model)
    if "gemini" in m:
        from proxy.translate.models import facts

        return facts(m).window
    if m.startswith("claude"):
        return CLAUDE_WINDOW
    return None


def limits(model: str | None) -> Limits | None:
    """The model's real limits (window and output ceiling); None for a name we can't read."""
    win = window(model)
    if model is None or win is None:
        return None
    if "gemini" in _name(model):
        from proxy.translate.models import facts

        return Limits(win, facts(_name(model)).max_output)
    return Limits(win, CLAUDE_MAX_OUTPUT)
