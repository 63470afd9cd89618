"""Anthropic's `thinking` (and `output_config.effort`) → Gemini's thinkingConfig: a budget on 2.x, a level on 3
and later."""

from __future__ import annotations

from typing import Any

from proxy.errors import invalid_request
from proxy.translate.models import ModelFacts

EFFORT_BUDGET = {"low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}
"""Thinking budget (Gemini 2.5) per `output_config.effort` when thinking is adaptive; "high" without one."""
EFFORT_LEVEL = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "xhigh": "XHIGH", "max": "XHIGH"}
"""Thinking level (Gemini 3+) per effort, before it is fitted to the levels the model takes."""
LEVEL_ORDER = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")
ANSWER_FLOOR = 1024
"""Output tokens always left for the answer by a thinking budget (thoughts count toward maxOutputTokens)."""


def thinking_config(
    thinking: Any, output_config: Any, model: ModelFacts, max_out: int
) -> tuple[dict[str, Any] | None, bool]:
    """→ (thinkingConfig or None, whether the client wants thinking blocks back). No `thinking` means no
    thinking, as on Anthropic: off where the model allows, else its least."""
    if thinking is None:
        thinking = {"type": "disabled"}
    if not isinstance(thinking, dict):
        raise invalid_request("thinking: must be an object")
    kind = thinking.get("type")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    budget = _budget_asked(kind, thinking, effort)
    on = kind != "disabled"
    # Claude Code's `display: omitted` means it shows no thinking text: don't pay to stream it.
    include = on and thinking.get("display") != "omitted"
    if model.uses_level:  # Gemini 3+: a level, never a budget beside it
        cfg: dict[str, Any] = {"thinkingLevel": fit_level(_level_wanted(kind, effort, budget), model.levels)}
        return (cfg | {"includeThoughts": True} if include else cfg), on
    lo, hi = model.budget_range
    if hi == 0:  # a model that does not think (2.0, 1.5)
        return None, False
    cfg = {"thinkingBudget": _fit_budget(budget, lo, hi, max_out)}
    return (cfg | {"includeThoughts": include} if on else cfg), on


def _budget_asked(kind: Any, thinking: dict[str, Any], effort: Any) -> int:
    """The budget the client asked for: its own, its effort's, or none."""
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 0:
            raise invalid_request("thinking.budget_tokens: must be a positive integer")
        return budget
    if kind == "adaptive":
        return EFFORT_BUDGET.get(str(effort or "high"), EFFORT_BUDGET["high"])
    if kind == "disabled":
        return 0
    raise invalid_request(f"thinking.type: must be enabled, adaptive or disabled, got {kind!r}")


def _level_wanted(kind: Any, effort: Any, budget: int) -> str:
    if kind == "adaptive":
        return EFFORT_LEVEL.get(str(effort or "high"), "HIGH")
    if kind == "enabled":
        return "LOW" if budget <= 1024 else "MEDIUM" if budget <= 8192 else "HIGH"
    return "MINIMAL"


def _fit_budget(budget: int, lo: int, hi: int, max_out: int) -> int:
    """Thoughts count toward maxOutputTokens: leave the answer a quarter of it, and never less than the floor;
    a model that can't stop thinking (2.5 pro) gets its least."""
    room = max_out - max(ANSWER_FLOOR, max_out // 4)
    return max(lo, max(0, min(budget, hi, room)))


def fit_level(want: str, levels: tuple[str, ...]) -> str:
    """The level asked for if the model takes it, else the nearest above, else its highest."""
    rank = LEVEL_ORDER.index(want)
    return next((lv for lv in levels if LEVEL_ORDER.index(lv) >= rank), levels[-1])
