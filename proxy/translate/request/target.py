"""What translation needs to know about the upstream model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """The upstream as translation sees it: the relay builds it from the target's config, whichever provider
    serves it."""

    model: str
    max_tokens: int | None = None
    schema_mode: str = "openapi"
