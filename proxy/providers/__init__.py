"""One module per upstream: its URLs, its auth headers, its defaults, what its credential is called in errors.

Which class serves which `provider = "…"` is the kind's entry in `proxy.registry`."""

from __future__ import annotations

import pkgutil

from proxy import registry
from proxy.config import TargetConfig
from proxy.providers.base import PassthroughProvider, Provider


def provider_class(kind: str) -> type[Provider]:
    """The class of a registered kind (its entry's `provider`, imported on first use)."""
    entry = registry.kind(kind)
    if entry is None:
        raise KeyError(f"no provider kind {kind!r} (kinds: {', '.join(registry.KINDS)})")
    cls = pkgutil.resolve_name(entry.provider)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"kind {kind!r}: {entry.provider} is not a Provider class")
    return cls


def make(target: TargetConfig) -> Provider:
    return provider_class(target.provider)(target)


__all__ = ["PassthroughProvider", "Provider", "make", "provider_class"]
