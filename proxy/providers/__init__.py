"""One module per upstream: its URLs, its auth headers, what its credential is called in errors."""

from __future__ import annotations

from ..config import TargetConfig
from .anthropic import AnthropicProvider, VertexAnthropicProvider
from .base import Provider
from .gemini import GeminiProvider
from .vertex import VertexProvider


def make(target: TargetConfig) -> Provider:
    if target.provider == "vertex":
        return VertexProvider(target)
    if target.provider == "anthropic":
        return AnthropicProvider(target)
    if target.provider == "vertex-anthropic":
        return VertexAnthropicProvider(target)
    return GeminiProvider(target)


__all__ = ["Provider", "make"]
