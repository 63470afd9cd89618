"""Every provider kind and wire dialect the gateway knows, each declared once, as data.

A kind is what `provider = "…"` names in the config: which class builds its URLs and headers, which dialect
carries its calls, which config keys authenticate it, and what OpenTelemetry, Kong and the price library call
it. A dialect is how a call is carried: its relay (the package that translates, maps errors and reads usage)
and how an upstream request reads in `gatewatch show`. Everything that used to keep a table of kinds reads
this one: the config (validation, Kong import), pricing, the providers, the relays, OTel, the Kong export,
inspection, the models list and the query language.

Code is named, not imported: `"module:attribute"` (as `pkgutil.resolve_name` reads it), resolved by the layer
that runs it (`proxy.providers.make`, `proxy.exchange.attempts`, `proxy.reports.inspection`). So this module imports nothing of the
gateway's and sits below everything that reads it, the config included.

A new Gemini-speaking provider is its module under `proxy/providers/` plus one `Kind` below; a new dialect is
its relay package under `proxy/exchange/relay/` plus one `Dialect` (docs/extending-providers.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

Credential = Literal["service_account", "api_key", "client_or_api_key"]
"""What authenticates a kind's calls, and so which config keys it needs (checked when the config loads):
`service_account`: service_account_json and a project_id (given, or the key's own); `api_key`: api_key, never a
service-account key; `client_or_api_key`: api_key if given, else the client's own key passed through."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How calls are carried to an upstream and answered back."""

    name: str
    relay: str
    """`module:attribute` of the relay (`proxy.exchange.relay.Relay`): the package holding the dialect's
    translation, its error mapping and how it reads usage"""
    translated: bool
    """the request is translated (so the answer's id is the gateway's own, not the upstream's)"""
    operation: str
    """`gen_ai.operation.name` of an attempt upstream (OpenTelemetry)"""
    view: str | None = None
    """`module:attribute` putting an upstream request in the common shape `gatewatch show` diffs against the
    client's (`proxy.reports.inspection`); None: the body is compared as it is"""


@dataclass(frozen=True, slots=True)
class Kind:
    """One provider kind: `provider = "<name>"` in the config."""

    name: str
    provider: str
    """`module:Class` of its `proxy.providers.Provider`: URL shape, auth, credential checks"""
    dialect: str
    """the name of its `Dialect`"""
    credential: Credential
    otel: str
    """`gen_ai.provider.name` (OpenTelemetry GenAI semantic conventions)"""
    kong: str
    """Kong's provider name: in the Kong file-log export, and what a Kong config's `model.provider` maps from"""
    pricing: str | None
    """the price library's provider id (genai-prices); None: guessed from the model's name"""


DIALECTS: dict[str, Dialect] = {}
KINDS: dict[str, Kind] = {}
"""the registry, in declaration order (the order error messages list them in)"""


def register(*entries: Kind | Dialect) -> Callable[[], None]:
    """Add entries (a kind's dialect must be known by then); returns what takes them out again."""
    added: list[Kind | Dialect] = []

    def remove() -> None:
        for e in reversed(added):
            table: dict[str, Kind] | dict[str, Dialect] = KINDS if isinstance(e, Kind) else DIALECTS
            table.pop(e.name, None)

    for e in entries:
        problem = _problem(e)
        if problem is not None:
            remove()
            raise ValueError(problem)
        if isinstance(e, Kind):
            KINDS[e.name] = e
        else:
            DIALECTS[e.name] = e
        added.append(e)
    return remove


def _problem(e: Kind | Dialect) -> str | None:
    if e.name in (KINDS if isinstance(e, Kind) else DIALECTS):
        return f"{type(e).__name__.lower()} {e.name!r} is already registered"
    if isinstance(e, Kind) and e.dialect not in DIALECTS:
        return f"kind {e.name!r}: no dialect {e.dialect!r} (dialects: {', '.join(DIALECTS)})"
    return None


@contextmanager
def registered(*entries: Kind | Dialect) -> Iterator[None]:
    """The entries registered for the duration of a `with` block (a test's toy provider)."""
    remove = register(*entries)
    try:
        yield
    finally:
        remove()


def kind(name: str | None) -> Kind | None:
    """The kind of that name; None for None or a kind no longer known (an old record's)."""
    return KINDS.get(name) if name else None


def dialect_of(name: str | None) -> Dialect | None:
    """The dialect a kind speaks; None when the kind is not known."""
    k = kind(name)
    return DIALECTS.get(k.dialect) if k is not None else None


def otel_name(name: str) -> str:
    """`gen_ai.provider.name` of a kind (its own name when not known)."""
    k = kind(name)
    return k.otel if k is not None else name


def kong_name(name: str | None) -> str:
    """Kong's provider name of a kind (its own name when not known, "" for none)."""
    k = kind(name)
    return k.kong if k is not None else (name or "")


def pricing_id(name: str | None) -> str | None:
    """The price library's provider id of a kind; None: guessed from the model's name."""
    k = kind(name)
    return k.pricing if k is not None else None


# -- what gatewatch ships ----------------------------------------------------------------------------------------
register(
    Dialect(
        "gemini",
        relay="proxy.exchange.relay.gemini:relay",
        translated=True,
        operation="generate_content",
        view="proxy.reports.inspection:gemini_view",
    ),
    Dialect("anthropic", relay="proxy.exchange.relay.anthropic:relay", translated=False, operation="chat"),
    Kind(
        "vertex",
        provider="proxy.providers.vertex:VertexProvider",
        dialect="gemini",
        credential="service_account",
        otel="gcp.vertex_ai",
        kong="gemini",
        pricing="google",
    ),
    Kind(
        "gemini",
        provider="proxy.providers.gemini:GeminiProvider",
        dialect="gemini",
        credential="api_key",
        otel="gcp.gemini",
        kong="gemini",
        pricing="google",
    ),
    Kind(
        "anthropic",
        provider="proxy.providers.anthropic:AnthropicProvider",
        dialect="anthropic",
        credential="client_or_api_key",
        otel="anthropic",
        kong="anthropic",
        pricing="anthropic",
    ),
    Kind(
        "vertex-anthropic",
        provider="proxy.providers.anthropic:VertexAnthropicProvider",
        dialect="anthropic",
        credential="service_account",
        otel="gcp.vertex_ai",
        kong="vertex-anthropic",  # Kong has no such provider: the export names it as gatewatch does
        # Google's table also prices Claude on Vertex; the model's own maker's prices are what was used so far
        pricing="anthropic",
    ),
)
