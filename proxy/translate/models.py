"""The model-facts table: what gatewatch knows of each Gemini model — its window, its output ceiling (and the
lower one of a non-streaming call where Google sets one), how it takes thinking (a budget on 2.x, a level on 3
and later, which levels), whether it takes Google Search beside function tools, and where Vertex AI serves it.

One table feeds translation (caps, the thinking mapping), `GET /v1/models` and the context meter
(`catalog`), and the Vertex provider's default location. Figures from Google's model pages (late 2026);
a name the table does not know gets the rules of its generation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

WINDOW = 1_048_576
"""Gemini 2.0 to 4: 1,048,576 tokens (on gemini-4 a limit shared by input and output)"""
GLOBAL_MULTI = ("global", "us", "eu")
"""the `global` endpoint and the `us`/`eu` multi-regions (hosts `aiplatform.{us,eu}.rep.googleapis.com`)"""
GLOBAL = ("global",)
REGIONAL = ("us-central1", "global")
"""2.x: the regions (us-central1 first, gatewatch's old default) and the global endpoint"""


@dataclass(frozen=True, slots=True)
class ModelFacts:
    generation: float
    max_output: int
    budget_range: tuple[int, int] = (0, 24576)
    """thinkingBudget bounds on 2.x; a minimum above 0 means thinking can't be switched off"""
    levels: tuple[str, ...] = ()
    """thinkingLevel values on 3+ (lowest first); empty on 2.x"""
    search_with_functions: bool = False
    window: int = WINDOW
    """input tokens the model takes"""
    max_output_oneshot: int | None = None
    """the output ceiling of a non-streaming call, where Google sets a lower one (gemini-4 Argon, Carbon)"""
    default_level: str | None = None
    """the level Gemini uses when none is sent"""
    locations: tuple[str, ...] = REGIONAL
    """where Vertex AI serves it, the default first"""
    known: bool = False
    """a row of the table (not a generation's rules)"""

    @property
    def uses_level(self) -> bool:
        return bool(self.levels)

    def output_cap(self, stream: bool) -> int:
        """The most a call can ask for: a non-streaming call may have a lower ceiling."""
        return self.max_output if stream else (self.max_output_oneshot or self.max_output)


L3 = ("LOW", "MEDIUM", "HIGH")
L4 = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
LX = ("LOW", "MEDIUM", "HIGH", "XHIGH")


def _g3(gen: float, levels: tuple[str, ...], default: str, where: tuple[str, ...] = GLOBAL) -> ModelFacts:
    return ModelFacts(gen, 65536, (0, 0), levels, True, default_level=default, locations=where, known=True)


TABLE: tuple[tuple[str, ModelFacts], ...] = (
    # gemini-4: a 1,048,576-token limit for input and output together; 65,536 out per call, 32,768 for a
    # non-streaming one on Argon and Carbon (Hydrogen and Neon: 65,536 either way)
    (
        r"gemini-4-(argon|carbon)",
        ModelFacts(4, 65536, (0, 0), L3, True, WINDOW, 32768, "MEDIUM", GLOBAL_MULTI, True),
    ),
    (
        r"gemini-4-(hydrogen|neon)",
        ModelFacts(4, 65536, (0, 0), LX, True, WINDOW, None, "HIGH", GLOBAL_MULTI, True),
    ),
    (r"gemini-4", ModelFacts(4, 65536, (0, 0), L3, True, WINDOW, 32768, "MEDIUM", GLOBAL_MULTI, True)),
    # 3.7 and 3.8 Flash: no MINIMAL (Google refuses it); global and multi-region
    (r"gemini-3\.[78]-flash(?!-lite)", _g3(3.8, L3, "MEDIUM", GLOBAL_MULTI)),
    (r"gemini-3(\.\d)?-flash", _g3(3.5, L4, "HIGH")),
    (r"gemini-3\.\d-pro", _g3(3.1, L3, "HIGH")),
    (r"gemini-3(\.0)?-pro", _g3(3.0, ("LOW", "HIGH"), "HIGH")),
    (r"gemini-2\.5-pro", ModelFacts(2.5, 65536, (128, 32768), known=True)),
    (r"gemini-2\.5-flash", ModelFacts(2.5, 65536, (0, 24576), known=True)),
    (r"gemini-2\.0-flash", ModelFacts(2.0, 8192, (0, 0), known=True)),
)
_TABLE = tuple((re.compile(p), f) for p, f in TABLE)

ALIASES = {
    "gemini-flash-latest": "gemini-3.8-flash",
    "gemini-flash-lite-latest": "gemini-3.5-flash-lite",
    "gemini-pro-latest": "gemini-3.1-pro-preview",
}
"""Google's moving names, as genai-prices resolves them (late 2026)"""


def generation(model: str) -> float:
    """gemini-2.5-flash → 2.5, gemini-3-pro-preview → 3.0; 0 for a name without a version."""
    m = re.search(r"gemini-(\d+(?:\.\d+)?)", model)
    return float(m.group(1)) if m else 0.0


@lru_cache(
    maxsize=256
)  # a pure function of the name, asked once per call: the table's regexes run once per model
def facts(model: str) -> ModelFacts:
    name = model.lower().removeprefix("models/").split("/")[-1]
    name = ALIASES.get(name, name)
    for pattern, row in _TABLE:
        if pattern.match(name):
            g = generation(name)
            return row if g == row.generation or not g else _with_generation(row, g)
    g = generation(name)
    if g >= 3:  # a later model the table does not know yet: the newest rules of its line
        if "pro" in name:
            return ModelFacts(g, 65536, (0, 0), L3, True, locations=GLOBAL)
        return ModelFacts(g, 65536, (0, 0), L4, True, locations=GLOBAL)
    if g >= 2.5:
        return ModelFacts(g, 65536, (128, 32768) if "pro" in name else (0, 24576))
    if g >= 1.5 and name.startswith("gemini-1.5-pro"):
        return ModelFacts(g, 8192, (0, 0), window=2_097_152)
    if g >= 1.5:
        return ModelFacts(g, 8192, (0, 0))
    if g > 0:  # 1.0: 32k window
        return ModelFacts(g, 8192, (0, 0), window=32_768)
    return ModelFacts(g, 65536)  # a name we can't read (a tuned model): the 2.5 shape


def _with_generation(row: ModelFacts, g: float) -> ModelFacts:
    from dataclasses import replace

    return replace(row, generation=g)
