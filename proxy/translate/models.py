"""What translation must know per Gemini model: its output ceiling, how it takes thinking (a budget on 2.x,
a level on 3 and later), and whether it takes Google Search beside function tools."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelFacts:
    generation: float
    max_output: int
    budget_range: tuple[int, int] = (0, 24576)
    """thinkingBudget bounds on 2.x; a minimum above 0 means thinking can't be switched off"""
    levels: tuple[str, ...] = ()
    """thinkingLevel values on 3+ (lowest first); empty on 2.x"""
    search_with_functions: bool = False

    @property
    def uses_level(self) -> bool:
        return bool(self.levels)


def generation(model: str) -> float:
    """gemini-2.5-flash → 2.5, gemini-3-pro-preview → 3.0; 0 for a name without a version."""
    m = re.search(r"gemini-(\d+(?:\.\d+)?)", model)
    return float(m.group(1)) if m else 0.0


def facts(model: str) -> ModelFacts:
    g = generation(model)
    if g >= 3:
        # Gemini 3 Pro takes LOW and HIGH only, later pros MEDIUM too; only the flash line goes down to MINIMAL.
        if re.search(r"gemini-3(\.0)?-pro", model):
            levels: tuple[str, ...] = ("LOW", "HIGH")
        elif "pro" in model:
            levels = ("LOW", "MEDIUM", "HIGH")
        else:
            levels = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
        return ModelFacts(g, 65536, (0, 0), levels, search_with_functions=True)
    if g >= 2.5:
        if "pro" in model:
            return ModelFacts(g, 65536, (128, 32768))
        return ModelFacts(g, 65536, (0, 24576))
    if g > 0:  # 2.0, 1.5: no thinking, 8k of output
        return ModelFacts(g, 8192, (0, 0))
    return ModelFacts(g, 65536)  # a name we can't read (a tuned model): the 2.5 shape
