"""The gateway's configuration: a TOML file with ${VAR} expansion, or the seed's environment variables."""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from proxy import registry


class ConfigError(Exception):
    """A configuration problem, phrased as: where, which key, what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatewaySettings(_Strict):
    host: str = "127.0.0.1"
    """Address to bind; loopback unless told otherwise."""
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    """Bodies above this are answered 413 request_too_large."""
    connect_timeout: float = Field(10, gt=0)
    first_byte_timeout: float = Field(300, gt=0)
    """Seconds to wait for the upstream's response headers and first chunk."""
    idle_timeout: float = Field(60, gt=0)
    """Silence between stream chunks after which the call is failed (Claude Code would wait forever)."""
    ping_interval: float = Field(10, gt=0)
    """Seconds of upstream silence after which an SSE `ping` is sent to the client."""
    log_payloads: bool = True
    """Keep request and response bodies in the store."""
    auth_token: SecretStr | None = None
    """Clients must present this token (x-api-key or Authorization: Bearer); also GATEWATCH_TOKEN."""
    client_timeout: float = Field(30, gt=0)
    """Seconds a client may take to send its request body (slow-body clients are cut off)."""
    shutdown_grace: float = Field(30, ge=0)
    """On stop: seconds calls in flight may take to finish before they are cancelled."""
    header_timeout: float = Field(10, gt=0)
    """Seconds a client may take to send a request's line and headers (slow-header clients are cut off)."""
    keepalive_timeout: float = Field(75, gt=0)
    """Seconds an idle keep-alive connection is kept open between requests."""
    max_idle_connections: int = Field(256, ge=1)
    """Connections waiting for a request beyond this are closed, oldest first (so idle or half-open
    connections can't use up the file descriptors real calls need)."""
    max_viewers: int = Field(16, ge=1)
    """Consoles watching `/gatewatch/events` at once; one more is answered 503 until one leaves."""
    allowed_origins: list[str] = []
    """Browser origins (e.g. "http://localhost:3000") allowed to call the gateway. Requests carrying any
    other `Origin` header are refused: a web page must not spend the user's quota."""
    refused_records_per_s: float = Field(20, gt=0)
    """Refused calls (401, 403, 415) are recorded, their headers cut short, up to this rate; past it they are
    only counted (in /health and the store's stats)."""
    metrics: bool = True
    """Serve `GET /metrics` (Prometheus text format, behind auth_token when one is set); false: no route and
    no counting."""

    @field_validator("auth_token", mode="before")
    @classmethod
    def _blank_token(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v


class TargetConfig(_Strict):
    name: str
    provider: str
    """A kind of `proxy.registry` (vertex, gemini, anthropic, vertex-anthropic, …)."""
    model: str
    """The upstream model. For `anthropic`, "*" forwards the model the client asked for."""
    weight: int = Field(100, ge=1, le=65535)
    """Share of traffic (round-robin) or rank (priority: higher first)."""
    connect_timeout: float | None = Field(None, gt=0)
    first_byte_timeout: float | None = Field(None, gt=0)
    idle_timeout: float | None = Field(None, gt=0)
    """Per-target overrides of the [gateway] timeouts."""
    max_tokens: int | None = Field(None, gt=0)
    """Cap on maxOutputTokens sent upstream (Claude Code asks for 32k-128k)."""
    project_id: str | None = None
    location_id: str | None = None
    api_endpoint: str | None = None
    """Host (or scheme://host:port) replacing the provider's default."""
    service_account_json: SecretStr | None = None
    """A service-account key: a file path or the JSON itself (vertex)."""
    api_key: SecretStr | None = None
    """An API key (gemini; for anthropic, used instead of the client's own key)."""
    anthropic_version: str | None = None
    """anthropic: the anthropic-version header when the client sends none; vertex-anthropic: the body's
    anthropic_version (default vertex-2023-10-16)."""
    schema_mode: Literal["openapi", "json_schema"] = "openapi"
    """How tool schemas are sent: Google's OpenAPI subset (`parameters`) or `parametersJsonSchema`."""
    input_cost: float | None = None
    """Price per 1M input tokens, overriding the price library (with output_cost)."""
    output_cost: float | None = None
    cached_cost: float | None = None
    """Price per 1M cache-read tokens (default: input_cost)."""
    cache_write_cost: float | None = None
    """Price per 1M cache-write tokens (default: 1.25 x input_cost)."""
    price_multiplier: float = Field(1.0, gt=0)
    """Scales the library's price: 1.1 for a Vertex regional endpoint of a model Google prices 10% higher
    there than on the global endpoint."""

    @field_validator("project_id", "location_id", "api_endpoint", mode="before")
    @classmethod
    def _blank_is_unset(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("provider")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if registry.kind(v) is None:
            names = [repr(k) for k in registry.KINDS]
            raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]}")
        return v

    @property
    def forwards_client_key(self) -> bool:
        """The target calls with the client's own key (a kind that may, given no `api_key` of its own)."""
        k = registry.kind(self.provider)
        return k is not None and k.credential == "client_or_api_key" and self.api_key is None

    @model_validator(mode="after")
    def _provider_needs(self, info: ValidationInfo) -> "TargetConfig":
        if info.context and not info.context.get("credentials", True):
            return self  # a reader of the history (stats, export, show, prune) never calls this target
        kind = registry.kind(self.provider)
        assert kind is not None  # `_known_kind` passed
        _CREDENTIALS[kind.credential](self)
        return self


def _needs_service_account(t: TargetConfig) -> None:
    key = t.service_account_json.get_secret_value().strip() if t.service_account_json else ""
    if not key:  # before project_id: a missing key is the cause, the project only its consequence
        raise ValueError(
            f"provider '{t.provider}' needs service_account_json (a key file path or the key JSON)"
        )
    if credential_kind(key) == "api_key":
        raise ValueError(
            'service_account_json holds an API key (AIza…), not a service-account key: use provider = "gemini" '
            "with api_key"
        )
    if not key.startswith("{") and not Path(key).expanduser().is_file():
        raise ValueError(f"service_account_json: no key file at {key}")
    if not t.project_id:
        # the key names its own project: used when none is given (GCP_PROJECT_ID unset)
        t.project_id = key_project(key)
    if not t.project_id:
        raise ValueError(
            f"provider '{t.provider}' needs project_id (GCP_PROJECT_ID, or a service-account key that names its "
            "project_id)"
        )


def _needs_api_key(t: TargetConfig) -> None:
    if not t.api_key or not t.api_key.get_secret_value().strip():
        raise ValueError(f"provider '{t.provider}' needs api_key")
    if credential_kind(t.api_key.get_secret_value()) == "service_account":
        # never sent to Google as an API key: it holds a private key
        raise ValueError(
            'api_key holds a service-account key, not an API key: use provider = "vertex" with '
            "service_account_json"
        )


_CREDENTIALS: dict[registry.Credential, Callable[[TargetConfig], None]] = {
    "service_account": _needs_service_account,
    "api_key": _needs_api_key,
    "client_or_api_key": lambda t: None,  # the client's own key when the config gives none
}
"""what each kind of credential (`registry.Credential`) needs of a target's keys"""


def credential_kind(value: str) -> Literal["service_account", "api_key", "unknown"]:
    """What a credential is, from the value itself: a service-account key (its JSON, or the path of a file
    holding it) or a Gemini API key (`AIza…`). Never raises, never quotes the value."""
    text = value.strip()
    if text.startswith("AIza"):
        return "api_key"
    if text.startswith("{"):
        return "service_account"
    if "\n" not in text and len(text) < 4096:
        try:
            p = Path(text).expanduser()
            if p.is_file() and p.read_text(encoding="utf-8", errors="replace").lstrip().startswith("{"):
                return "service_account"
        except OSError:
            pass
        if text.endswith(".json") or "/" in text:
            return "service_account"  # a key file that can't be read: load_key will say why
    return "unknown"


def key_project(value: str) -> str | None:
    """The `project_id` inside a service-account key (JSON or a file path), when it can be read."""
    text = value.strip()
    try:
        if not text.startswith("{"):
            text = Path(text).expanduser().read_text(encoding="utf-8")
        info = json.loads(text)
    except (OSError, ValueError):
        return None
    project = info.get("project_id") if isinstance(info, dict) else None
    return project if isinstance(project, str) and project.strip() else None


class BalancerSettings(_Strict):
    algorithm: Literal["priority", "round-robin", "lowest-latency", "lowest-usage"] = "priority"
    retries: int | None = Field(None, ge=0)
    """Further targets tried after a failed one (default: every remaining target)."""
    failure_threshold: int = Field(3, ge=1)
    """Consecutive failures after which a target is cooled down."""
    cooldown: float = Field(30, gt=0)
    """Seconds a failing target is left out (it is tried again afterwards)."""


class RouteConfig(_Strict):
    model: str
    """A glob over the requested model name, e.g. "claude-*haiku*"."""
    targets: list[str]
    """Target names, tried by the balancer in this set."""


class StoreSettings(_Strict):
    path: str | None = None
    """SQLite file; default $XDG_DATA_HOME/gatewatch/gatewatch.db."""
    url: str | None = None
    """A PostgreSQL database (postgresql://user:pass@host:5432/db) shared by several gateways, instead of a
    SQLite file; needs `pip install 'gatewatch[postgres]'`."""

    @model_validator(mode="after")
    def _one_store(self) -> "StoreSettings":
        if self.url is not None and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("url must be a PostgreSQL URL: postgresql://user:password@host:5432/database")
        if self.url is not None and self.path is not None:
            raise ValueError("give path (a SQLite file) or url (PostgreSQL), not both")
        return self


class BudgetSettings(_Strict):
    daily_usd: float | None = Field(None, gt=0)
    """Refuse calls once today's spend (local day, every session) has reached this many USD."""
    session_usd: float | None = Field(None, gt=0)
    """Refuse a Claude Code session's calls once its spend has reached this many USD."""
    warn_at: float = Field(0.8, gt=0, le=1)
    """Share of a cap at which the console warns."""
    store_wait: float = Field(1.0, gt=0, le=30)
    """Seconds a call waits for the store to admit it; past that the budget counts on its own (degraded)."""

    @property
    def active(self) -> bool:
        return self.daily_usd is not None or self.session_usd is not None


class LogSettings(_Strict):
    file: str | None = None
    """Also append each record, in Kong file-log format, to this file."""


class OtelSettings(_Strict):
    """OpenTelemetry GenAI export (`gatewatch[otel]`); the standard `OTEL_*` variables fill what is unset here."""

    enabled: bool | None = None
    """true: export (an error at start when the extra is missing); false: never; unset: export when
    OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_ variant) is set and the extra is installed."""
    endpoint: str | None = None
    """The collector's OTLP/HTTP base URL (e.g. "http://127.0.0.1:4318"); else OTEL_EXPORTER_OTLP_ENDPOINT."""
    headers: dict[str, str] = {}
    """Headers sent to the collector (its own credential, say); else OTEL_EXPORTER_OTLP_HEADERS."""
    capture_content: bool | None = None
    """Put prompts and answers on the spans (needs `gateway.log_payloads`); else
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true; off by default."""
    max_queue_size: int = Field(2048, ge=1)
    """Spans waiting for the exporter beyond this are dropped and counted, never waited for."""
    metrics_interval: float | None = Field(None, gt=0)
    """Seconds between metric exports; else OTEL_METRIC_EXPORT_INTERVAL (ms), else 60."""


class Config(_Strict):
    gateway: GatewaySettings = GatewaySettings()
    targets: list[TargetConfig] = []
    balancer: BalancerSettings = BalancerSettings()
    routes: list[RouteConfig] = []
    store: StoreSettings = StoreSettings()
    log: LogSettings = LogSettings()
    budget: BudgetSettings = BudgetSettings()
    otel: OtelSettings = OtelSettings()
    source: str = "defaults"
    """Where this config came from (a path, or 'environment'); for messages."""

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        names = [t.name for t in self.targets]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"target names must be unique: {sorted(dup)} repeated")
        for i, r in enumerate(self.routes):
            unknown = [n for n in r.targets if n not in names]
            if unknown or not r.targets:
                raise ValueError(
                    f"routes[{i}] ({r.model}): unknown target(s) {unknown or '(none given)'}; "
                    f"targets are {names}"
                )
        return self

    def secrets(self) -> list[str]:
        """Every credential in this config, so writers can prove none of them leaks."""
        out = [self.gateway.auth_token.get_secret_value()] if self.gateway.auth_token else []
        for t in self.targets:
            for s in (t.api_key, t.service_account_json):
                if s is not None and s.get_secret_value():
                    out.append(s.get_secret_value())
        out += [v for v in self.otel.headers.values() if v]  # a collector's own credential
        return out


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(
    value: Any,
    env: Mapping[str, str],
    unset: dict[tuple[str | int, ...], list[str]] | None = None,
    at: tuple[str | int, ...] = (),
) -> Any:
    """Replace ${VAR} in every string; an unset variable becomes empty (as Kong's vault does), and is noted in
    `unset` under the key it was found at, so an error about that key can name the variable."""
    if isinstance(value, str):

        def var(m: re.Match[str]) -> str:
            if m.group(1) not in env and unset is not None:
                unset.setdefault(at, []).append(m.group(1))
            return env.get(m.group(1), "")

        return _VAR.sub(var, value)
    if isinstance(value, list):
        return [expand(v, env, unset, (*at, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: expand(v, env, unset, (*at, k)) for k, v in value.items()}
    return value


def _fields_at(loc: list[str | int]) -> list[str]:
    """The keys the config model takes at `loc` (for a misspelt key's "did you mean")."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = (
            model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        )
        if field is None:
            return []
        ann = field.annotation
        for arg in getattr(ann, "__args__", ()) or (ann,):  # list[TargetConfig], X | None
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                ann = arg
        model = ann
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f for f in model.model_fields if f != "source"]
    return []


def _describe(
    exc: ValidationError,
    source: str,
    raw: dict[str, Any],
    unset: dict[tuple[str | int, ...], list[str]] | None = None,
) -> str:
    lines = []
    for e in exc.errors():
        loc = list(e["loc"])
        key = ""
        for part in loc:
            if isinstance(part, int) and key.endswith("targets"):
                name = ""
                try:
                    name = raw["targets"][part].get("name", "")
                except (KeyError, IndexError, AttributeError, TypeError):
                    pass
                key += f"[{part}]" + (f" ({name})" if name else "")
            else:
                key += ("." if key else "") + str(part)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(loc[-1]), _fields_at(loc[:-1]), n=1)
            msg = f"unknown key (did you mean {near[0]}?)" if near else "unknown key"
        # a key left empty by an unset ${VAR} is the real cause of "needs …": name the variable
        for where, names in (unset or {}).items():
            if list(where[: len(loc)]) == loc and len(where) > len(loc) and str(where[-1]) in msg:
                msg += f" ({where[-1]} = ${{{names[0]}}}, and {names[0]} is not set)"
            elif list(where) == loc:
                msg += f" (${{{names[0]}}} is not set)"
        lines.append(f"{source}: {key or '(top level)'}: {msg}")
    return "\n".join(lines)


_SECRET_KEY = re.compile(r"key|token|secret|auth|password|credential|header_value|service_account", re.I)


def secret_values(value: Any, secret: bool = False) -> list[str]:
    """Every string held under a key that names a credential, at any depth (for scrubbing messages)."""
    if isinstance(value, str):
        if _is_path(value):  # a key file's path says where the secret is, not what it is
            return []
        return [value] if secret and len(value) >= 8 else []
    if isinstance(value, dict):
        return [
            s for k, v in value.items() for s in secret_values(v, secret or bool(_SECRET_KEY.search(str(k))))
        ]
    if isinstance(value, list):
        return [s for v in value for s in secret_values(v, secret)]
    return []


def _is_path(value: str) -> bool:
    v = value.strip()
    return "\n" not in v and v.startswith(("/", "~", "./", "../")) and v.endswith(".json")


def scrub(message: str, secrets: list[str]) -> str:
    """`message` with every secret (and its first line, for a multi-line key) replaced."""
    for sec in sorted(secrets, key=len, reverse=True):
        for piece in (sec, sec.strip().splitlines()[0] if sec.strip() else ""):
            if len(piece) >= 8:
                message = message.replace(piece, "REDACTED")
    return message


def from_mapping(
    raw: dict[str, Any], source: str, env: Mapping[str, str] | None = None, *, credentials: bool = True
) -> Config:
    """`credentials=False`: for a command that only reads the history: the targets' keys are not checked (a
    key's variable unset in this shell is no reason to refuse `stats`)."""
    env = os.environ if env is None else env
    unset: dict[tuple[str | int, ...], list[str]] = {}
    data = expand(raw, env, unset)
    data["source"] = source
    if env.get("GATEWATCH_TOKEN") and not (data.get("gateway") or {}).get("auth_token"):
        data.setdefault("gateway", {})["auth_token"] = env["GATEWATCH_TOKEN"]
    try:
        return Config.model_validate(data, context={"credentials": credentials})
    except ValidationError as exc:
        raise ConfigError(scrub(_describe(exc, source, data, unset), secret_values(data))) from None


DEFAULT_MODEL = "gemini-3.8-flash"
"""`serve`'s model when GEMINI_MODEL is unset: a current Flash, GA, on Vertex's `global` endpoint by default
(`translate.models` places it; the seed's gemini-2.5 line is deprecated on Vertex from 2026-10-20)."""


def from_env(env: Mapping[str, str] | None = None, *, credentials: bool = True) -> Config:
    """The seed's variables. What GEMINI_API_KEY holds decides the provider: a service-account key (its JSON or
    a file path) → a Vertex target, in GCP_PROJECT_ID or else the key's own project; an API key (`AIza…`, or
    anything that is not a key file) → a Gemini API target, whatever GCP_PROJECT_ID says."""
    env = os.environ if env is None else env
    key = env.get("GEMINI_API_KEY", "").strip()
    model = env.get("GEMINI_MODEL", "").strip() or DEFAULT_MODEL
    targets: list[dict[str, Any]] = []
    if key and credential_kind(key) == "service_account":
        targets.append(
            {
                "name": "vertex",
                "provider": "vertex",
                "model": model,
                "project_id": env.get("GCP_PROJECT_ID", ""),  # blank: the key's own project_id
                "location_id": env.get("GEMINI_LOCATION_ID", ""),  # blank: the provider's default
                "api_endpoint": env.get("GEMINI_API_ENDPOINT", ""),
                "service_account_json": key,
            }
        )
    elif key:
        targets.append(
            {
                "name": "gemini",
                "provider": "gemini",
                "model": model,
                "api_key": key,
                "api_endpoint": env.get("GEMINI_API_ENDPOINT", ""),
            }
        )
    return from_mapping({"targets": targets}, "environment", env, credentials=credentials)


def load(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    credentials: bool = True,
) -> Config:
    """Load `path`, else ./gatewatch.toml when present, else the environment. `credentials=False` for a
    reader of the history: see `from_mapping`."""
    if path is None and Path("gatewatch.toml").is_file():
        path = "gatewatch.toml"
    if path is None:
        return from_env(env, credentials=credentials)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    if p.suffix in (".yaml", ".yml", ".json"):
        from proxy.config.kong import from_kong

        return from_kong(text, str(p), env, credentials=credentials)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return from_mapping(raw, str(p), env, credentials=credentials)
