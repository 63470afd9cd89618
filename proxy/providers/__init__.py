"""One module per upstream: its URLs, its auth headers, its defaults, what its credential is called in errors."""

from __future__ import annotations

from ..config import TargetConfig
from .anthropic import AnthropicProvider, VertexAnthropicProvider
from .base import Dialect, PassthroughProvider, Provider
from .gemini import GeminiProvider
from .vertex import VertexProvider

KINDS: dict[str, type[Provider]] = {
    "vertex": VertexProvider,
    "gemini": GeminiProvider,
    "anthropic": AnthropicProvider,
    "vertex-anthropic": VertexAnthropicProvider,
}
"""`provider = "…"` in the config → its class."""


def make(target: TargetConfig) -> Provider:
    return KINDS[target.provider](target)


__all__ = ["KINDS", "Dialect", "PassthroughProvider", "Provider", "make"]
