"""The record of one exchange: what the store keeps and what subscribers are shown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import unquote_plus

import orjson
from pydantic import BaseModel, Field, PrivateAttr, field_validator
from pydantic_core import PydanticUndefined

from proxy.translate.notes import Note, from_text

SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "cookie", "proxy-authorization", "set-cookie"}
)
SECRET_WORDS = ("key", "token", "secret", "auth", "cookie", "password")
"""A header whose name contains one of these is a credential, whatever its exact name (`api-key`,
`x-auth-token`, `anthropic-api-key`…)."""
SECRET_PARAMS = frozenset({"key", "api_key", "access_token", "token"})
"""Query parameters that carry credentials (Google's `?key=`)."""
SECRET_PARAM_WORDS = (
    "key",
    "token",
    "secret",
    "auth",
    "password",
    "passwd",
    "pwd",
    "sig",
    "credential",
    "code",
)
"""A query parameter whose name (decoded, any case) contains one of these is a credential: `access_token`,
`api_key`, `sig`, `X-Goog-Signature`, `X-Amz-Credential`, `client_secret`, an OAuth `code`…"""
REDACTED = "REDACTED"
HEADERS_KEPT = 32
HEADER_CHARS = 256
"""A refused call's record keeps this many headers, each cut to this many characters."""


def safe_text(value: str) -> str:
    """Text that can be stored: bytes that were not UTF-8 (kept by the HTTP parser as surrogate escapes)
    become `\\xNN`, never an error that loses the record."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_secret_header(name: str) -> bool:
    n = name.lower()
    return n in SECRET_HEADERS or any(w in n for w in SECRET_WORDS)


_NAMES: dict[str, tuple[str, bool]] = {}
"""header name as sent → (its stored name, whether it is a credential): a client sends the same dozen names on
every call, so each is decided once (bounded: a client inventing names only fills it to `_NAMES_MAX`)"""
_NAMES_MAX = 1024


def redact_headers(headers: Any) -> dict[str, str]:
    """Lower-cased headers with every credential replaced; the only way headers enter a record."""
    out: dict[str, str] = {}
    names = _NAMES
    for k, v in headers.items():
        known = names.get(k)
        if known is None:
            lk = safe_text(k.lower())
            known = (lk, is_secret_header(lk))
            if len(names) < _NAMES_MAX:
                names[k] = known
        out[known[0]] = REDACTED if known[1] else safe_text(v)
    return out


def redact_query(query: str) -> str:
    """The query string with credential parameters (`key=…`) replaced."""
    if not query:
        return query
    parts = []
    for part in query.split("&"):
        name, sep, _ = part.partition("=")
        parts.append(f"{name}={REDACTED}" if sep and is_secret_param(name) else part)
    return safe_text("&".join(parts))


def is_secret_param(name: str) -> bool:
    n = unquote_plus(name).lower()
    return n in SECRET_PARAMS or any(w in n for w in SECRET_PARAM_WORDS)


def cut_headers(headers: dict[str, str]) -> dict[str, str]:
    """A refused call's headers: the first HEADERS_KEPT, each value at most HEADER_CHARS long."""
    out = {k[:HEADER_CHARS]: v[:HEADER_CHARS] for k, v in list(headers.items())[:HEADERS_KEPT]}
    if len(headers) > HEADERS_KEPT:
        out["x-gatewatch-cut"] = f"{len(headers) - HEADERS_KEPT} more headers not kept"
    return out


def payload(value: Any) -> Any:
    """A payload field as Python objects: a live stream's record holds its events and chunks as the JSON
    that crossed the wire (`orjson.Fragment`, written to the store as is), a stored record as lists."""
    if isinstance(value, orjson.Fragment):
        return orjson.loads(orjson.dumps(value))
    return value


M = TypeVar("M", bound="Live")


class Live(BaseModel):
    """A model the gateway fills while a call is in flight: `live` makes one without validation, a field is
    written as a plain attribute, and `head` and `dumps` write it as JSON without pydantic's serializer.

    A call's record takes some 45 field writes and three models: through pydantic's own paths (its Python
    `__setattr__`, the validator, `model_dump`) that was some 60 µs of the loop's time per call. No model here
    validates assignments, so a write is `object.__setattr__` (a field's value lives in the instance's
    `__dict__`): the one thing it skips is `model_fields_set`, which nothing here reads. What `live` makes equals
    what the constructor makes from the same values, and `dumps(head())` what `model_dump` gives:
    tests/test_record_live.py holds them side by side."""

    if not TYPE_CHECKING:
        __setattr__ = object.__setattr__

    @classmethod
    def live(cls: type[M], **values: Any) -> M:
        """A new instance from values already of their fields' types (the gateway's own, never a client's or a
        file's): no validation. Every field not given takes its default; a required one must be given."""
        defaults, factories = _plan(cls)
        d = defaults.copy()  # every field, in the fields' order (a dict keeps a key's place when it is set)
        for name, make in factories:
            d[name] = make()
        d.update(values)
        m = cls.__new__(cls)
        _set = object.__setattr__
        _set(m, "__dict__", d)
        _set(m, "__pydantic_fields_set__", set(values))
        _set(m, "__pydantic_extra__", None)
        _set(m, "__pydantic_private__", dict.fromkeys(cls.__private_attributes__) or None)
        return m

    def head(self, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The fields but `exclude`, for `dumps`: its JSON is `model_dump(mode="json", exclude=exclude)`'s."""
        return {k: v for k, v in self.__dict__.items() if k not in exclude}


def _fields(value: Any) -> Any:
    if isinstance(value, Live):
        return value.__dict__
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """`orjson.dumps`, a `Live` model written as its fields (a `Note`, a dataclass, orjson writes itself)."""
    return orjson.dumps(value, default=_fields)


_PLANS: dict[type, tuple[dict[str, Any], list[tuple[str, Any]]]] = {}


def _plan(cls: type[Live]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """A model's defaults in its fields' order (None in a factory's place) and its default factories."""
    plan = _PLANS.get(cls)
    if plan is None:
        defaults: dict[str, Any] = {}
        factories: list[tuple[str, Any]] = []
        for name, f in cls.__pydantic_fields__.items():
            if f.default_factory is not None:
                defaults[name] = None
                factories.append((name, f.default_factory))
            else:
                defaults[name] = None if f.default is PydanticUndefined else f.default
        plan = _PLANS[cls] = (defaults, factories)
    return plan


class Attempt(Live):
    """One try of one target (Kong's `tried_targets` entry, plus what happened)."""

    target: str
    provider: str
    model: str
    host: str = ""
    port: int = 443
    upstream_scheme: str = "https"
    upstream_uri: str = ""
    route_type: str = "llm/v1/chat"
    status: int | None = None
    error: str | None = None
    latency_ms: float | None = None
    started_ms: float | None = None
    """ms after the call's arrival that this attempt began (its span's start)"""
    response_id: str | None = None
    """the upstream's own id of its answer (Gemini's `responseId`)"""


class Usage(Live):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    thinking_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    """USD; None when the model's price is unknown (never a silent 0)."""
    time_per_token: float | None = None
    """ms of generation per output token."""
    time_to_first_token: float | None = None
    """ms until the first real content token."""
    time_to_first_byte: float | None = None
    """ms until the upstream's first byte."""
    estimated: bool = False
    """count_tokens answered by a local estimate, or a cut stream's output tokens estimated (not Google's)."""


@dataclass(slots=True)
class Bodies:
    """The bodies of a call, held in memory until it is stored whatever `log_payloads` says, for the findings
    made on the writer's side (`proxy/insight`); never serialised."""

    client: Any = None
    upstream: Any = None
    answer: Any = None


class Record(Live):
    id: str
    kind: Literal["messages", "count_tokens"] = "messages"
    started_at: float
    """epoch seconds"""
    ended_at: float | None = None
    client_ip: str = ""
    user_agent: str = ""
    session_id: str | None = None
    method: str = "POST"
    path: str = ""
    query: str = ""
    status: int | None = None
    request_model: str = ""
    request_mode: Literal["oneshot", "stream"] = "oneshot"
    response_model: str | None = None
    target: str | None = None
    provider: str | None = None
    tried_targets: list[Attempt] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage.live)
    latency_ms: float | None = None
    llm_latency_ms: float | None = None
    stop_reason: str | None = None
    response_id: str | None = None
    """the id of the message the client received (`msg_…`)"""
    error_type: str | None = None
    error_message: str | None = None
    cancelled: bool = False
    stream_chunks: int = 0
    """upstream chunks received so far (progress of a stream in flight)"""
    tools_used: list[str] = Field(default_factory=list)
    """tools the model called in this answer"""
    tools_offered: int = 0
    preview: str = ""
    """the last user text, trimmed"""
    response_text: str = ""
    request_headers: dict[str, str] = Field(default_factory=dict)
    response_headers: dict[str, str] = Field(default_factory=dict)
    request_size: int = 0
    response_size: int = 0
    metadata: dict[str, Any] | None = None
    cc_version: str | None = None
    """Claude Code's version, from the billing header it sends as its first system block (not sent upstream)"""
    cc_is_subagent: bool | None = None
    agent_id: str | None = None
    """Claude Code's sub-agent, from `x-claude-code-agent-id` (None: the main agent)"""
    parent_agent_id: str | None = None
    """the sub-agent that spawned this one, from `x-claude-code-parent-agent-id` (None: spawned by the main
    agent, or the main agent itself)"""
    spawned: list[str] = Field(default_factory=list)
    """the prompts of the sub-agents this answer started (its `Agent`/`Task` tool_use inputs), trimmed"""
    notes: list[Note] = Field(default_factory=list)
    """What the gateway decided that changed the call's meaning (`translate.notes`): a dropped field, a cap,
    an injected signature, an empty answer asked again…"""
    replay_of: str | None = None
    """the record this call sent again (`gatewatch replay`); None: a client's own call"""
    prompt_id: str | None = None
    """Claude Code's `prompt.id` (its telemetry, joined by request id): the user prompt this call served"""
    cc_cost: float | None = None
    """Claude Code's own estimate of this call's cost (its telemetry's `cost_usd`, priced as a Claude model)"""
    query_source: str | None = None
    """what in Claude Code made the call (its telemetry's `query_source`)"""
    client_request: Any = None
    upstream_request: Any = None
    upstream_response: Any = None
    response: Any = None
    events: Any = None
    """the events the client got (a list; in a live record of a stream, an `orjson.Fragment` of that list's
    JSON: read it with `payload`)"""

    _bodies: Bodies | None = PrivateAttr(default=None)
    # made on first use: a default_factory would cost every Record (a million replayed, read, validated) ~100 µs

    @property
    def bodies(self) -> Bodies:
        # read from pydantic's own slot: `self._bodies` goes through BaseModel.__getattr__, in Python, per use
        private = self.__pydantic_private__
        b: Bodies | None = private["_bodies"] if private else None
        if b is None:
            b = Bodies()
            if private is None:
                private = {}
                object.__setattr__(self, "__pydantic_private__", private)
            private["_bodies"] = b
        return b

    @field_validator("notes", mode="before")
    @classmethod
    def _legacy_notes(cls, value: Any) -> Any:
        """Notes an older gatewatch stored as text are read as notes of the kind their words name."""
        if isinstance(value, list):
            return [from_text(v) if isinstance(v, str) else v for v in value]
        return value
