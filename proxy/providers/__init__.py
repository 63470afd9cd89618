"""One module per upstream: its URLs, its auth headers, its defaults, what its credential is called in errors."""

from __future__ import annotations

from proxy.config import TargetConfig
from proxy.providers.anthropic import AnthropicProvider, VertexAnthropicProvider
from proxy.providers.base import Dialect, PassthroughProvider, Provider
from proxy.providers.gemini import GeminiProvider
from proxy.providers.vertex import VertexProvider

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
