"""The `claude-…` ids `GET /v1/models` offers, one per target and one per route: Claude Code's model discovery
keeps only ids that contain `claude` or `anthropic`, so a target's own model name (`gemini-3.8-flash`) would
never reach its `/model` picker. A call naming one of these ids is served by that target (or route)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

PREFIX = "claude-gw-"


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Routed(Protocol):
    @property
    def model(self) -> str: ...


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def target_id(name: str) -> str:
    """`vertex-flash` → `claude-gw-vertex-flash`: stable while the target keeps its name."""
    return PREFIX + _slug(name)


def route_id(pattern: str, index: int) -> str:
    """`claude-*haiku*` → `claude-gw-haiku-route`: the glob's words, without the `claude` every route has."""
    words = _slug(re.sub(r"claude|anthropic|[*?\[\]]", " ", pattern, flags=re.IGNORECASE))
    return f"{PREFIX}{words or str(index + 1)}-route"


def ids(targets: Sequence[_Named], routes: Sequence[_Routed]) -> dict[str, tuple[str, int]]:
    """id → ("target", index) or ("route", index); a route id that would repeat a target's is numbered."""
    out: dict[str, tuple[str, int]] = {}
    for i, t in enumerate(targets):
        out.setdefault(target_id(t.name), ("target", i))
    for i, r in enumerate(routes):
        rid = route_id(r.model, i)
        if rid in out:
            rid = f"{PREFIX}route-{i + 1}"
        out.setdefault(rid, ("route", i))
    return out
