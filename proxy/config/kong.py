"""Read a Kong decK file (or a single plugin entry) with `ai-proxy-advanced` / `ai-proxy` and `file-log`
into a gatewatch config. Whatever we can't honour is named in one error, never silently ignored."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, Mapping

import yaml

from proxy import registry
from proxy.config import Config, ConfigError, from_mapping, scrub, secret_values

_ENV = re.compile(r"\$\{\{\s*env\s+\"([A-Za-z_][A-Za-z0-9_]*)\"\s*\}\}")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ALGORITHMS = {"priority", "round-robin", "lowest-latency", "lowest-usage"}
_PLUGIN_KEYS = {
    "llm_format",
    "targets",
    "balancer",
    "max_request_body_size",
    "model_name_header",
    "response_streaming",
    "genai_category",
    "vectordb",
    "embeddings",
}
_TARGET_KEYS = {"route_type", "auth", "model", "logging", "weight", "description"}
_AUTH_KEYS = {
    "header_name",
    "header_value",
    "param_name",
    "param_value",
    "param_location",
    "gcp_use_service_account",
    "gcp_service_account_json",
    "allow_override",
}
_MODEL_OPTION_KEYS = {
    "max_tokens",
    "input_cost",
    "output_cost",
    "gemini",
    "anthropic_version",
    "upstream_url",
}
_BALANCER_KEYS = {
    "algorithm",
    "retries",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "slots",
    "latency_strategy",
    "tokens_count_strategy",
    "failover_criteria",
}


def _resolve(value: Any, variables: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """`${{ env "DECK_X" }}` (decK) and `${name}` (a `variables:` entry, else an environment variable)."""
    if isinstance(value, dict):
        return {k: _resolve(v, variables, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, variables, env) for v in value]
    if not isinstance(value, str):
        return value

    def env_lookup(name: str) -> str:
        if name in env:
            return env[name]
        return env.get(name.removeprefix("DECK_"), "")

    def var(m: re.Match[str]) -> str:
        name = m.group(1)
        spec = variables.get(name)
        if isinstance(spec, dict):
            spec = spec.get("value", spec.get("env"))
        if isinstance(spec, str):
            ref = spec.strip()
            ref = ref[2:-1] if ref.startswith("${") and ref.endswith("}") else ref.lstrip("$")
            return env_lookup(ref)
        return env_lookup(name) or env_lookup(name.upper())

    return _VAR.sub(var, _ENV.sub(lambda m: env_lookup(m.group(1)), value))


def _plugins(doc: Any) -> list[dict[str, Any]]:
    """Every plugin entry of a document: a single entry, a list of them, or a decK file's (top level,
    services, their routes, routes)."""
    if isinstance(doc, dict) and "name" in doc and "config" in doc:
        return [doc]
    if isinstance(doc, list):
        return [p for p in doc if isinstance(p, dict)]
    if not isinstance(doc, dict):
        return []
    if isinstance(doc.get("entities"), dict):  # Kong's docs wrap examples as `entities: {plugins: …}`
        return _plugins(doc["entities"])
    holders = [doc]
    for svc in doc.get("services") or []:
        holders += [svc, *(svc.get("routes") or [])]
    holders += doc.get("routes") or []
    return [p for h in holders for p in h.get("plugins") or [] if isinstance(p, dict)]


def _unsupported(given: dict[str, Any], known: set[str], where: str, problems: list[str]) -> None:
    problems += [f"{where}.{k}: not supported" for k in given if k not in known]


def _gemini_options(opts: dict[str, Any], credential: str) -> dict[str, Any]:
    gem = opts.get("gemini") or {}
    if credential == "service_account":  # Vertex AI: a project and a location
        return {
            "project_id": gem.get("project_id"),
            "location_id": gem.get("location_id"),
            "api_endpoint": gem.get("api_endpoint"),
        }
    return {"api_endpoint": gem.get("api_endpoint")}


def _anthropic_options(opts: dict[str, Any], credential: str) -> dict[str, Any]:
    return {
        "api_endpoint": opts.get("upstream_url"),
        "anthropic_version": opts.get("anthropic_version") or None,
    }


_KONG_OPTIONS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "gemini": _gemini_options,
    "anthropic": _anthropic_options,
}
"""the Kong providers read, each with its own `model.options` (Kong's schema); which of our kinds each becomes
is the kinds' `kong` name in `proxy.registry`"""


def _credential(auth: dict[str, Any], credential: str) -> dict[str, Any]:
    """A target's credential keys from Kong's `auth`, for the kind's credential (`registry.Credential`)."""
    if credential == "service_account":
        key = auth.get("gcp_service_account_json") or os.environ.get("GCP_SERVICE_ACCOUNT", "")
        return {"service_account_json": key}
    if credential == "api_key":
        return {"api_key": auth.get("param_value") or auth.get("header_value")}
    return {"api_key": auth.get("header_value") or None}  # else the client's own key


def _kind(provider: str, auth: dict[str, Any], opts: dict[str, Any]) -> registry.Kind | None:
    """Our kind for a Kong provider: among the kinds Kong calls so, the one with a service-account key when
    Kong's auth or options give one (Vertex AI), else the other."""
    kinds = [k for k in registry.KINDS.values() if k.kong == provider]
    wants_sa = bool(auth.get("gcp_use_service_account") or (opts.get("gemini") or {}).get("project_id"))
    chosen = [k for k in kinds if (k.credential == "service_account") == wants_sa] or kinds
    return chosen[0] if chosen else None


def _target(t: dict[str, Any], i: int, problems: list[str], where: str) -> dict[str, Any]:
    _unsupported(t, _TARGET_KEYS, where, problems)
    if t.get("route_type", "llm/v1/chat") != "llm/v1/chat":
        problems.append(f"{where}.route_type: only llm/v1/chat is supported, got {t.get('route_type')!r}")
    model = t.get("model") or {}
    auth = t.get("auth") or {}
    _unsupported(auth, _AUTH_KEYS, f"{where}.auth", problems)
    opts = model.get("options") or {}
    _unsupported(opts, _MODEL_OPTION_KEYS, f"{where}.model.options", problems)
    provider = model.get("provider")
    name = model.get("name")
    if not name:
        problems.append(f"{where}.model.name: required")
    out: dict[str, Any] = {"name": t.get("description") or f"{provider}-{name}-{i}", "model": name or "?"}
    read = _KONG_OPTIONS.get(provider) if isinstance(provider, str) else None
    kind = _kind(str(provider), auth, opts) if read is not None else None
    if read is None or kind is None:
        problems.append(
            f"{where}.model.provider: {provider!r} is not supported ({' or '.join(_KONG_OPTIONS)})"
        )
    else:
        out["provider"] = kind.name
        out.update(read(opts, kind.credential))
        out.update(_credential(auth, kind.credential))
    # the how-to writes max_tokens beside `options` rather than inside it; take either
    out["max_tokens"] = opts.get("max_tokens") or model.get("max_tokens") or None
    if opts.get("input_cost") is not None and opts.get("output_cost") is not None:
        out["input_cost"], out["output_cost"] = opts["input_cost"], opts["output_cost"]
    out["weight"] = t.get("weight") or None
    return {k: v for k, v in out.items() if v is not None}


def _balancer(bal: dict[str, Any], where: str, problems: list[str], raw: dict[str, Any]) -> None:
    """ai-proxy-advanced's balancer into `[balancer]` and the `[gateway]` timeouts."""
    _unsupported(bal, _BALANCER_KEYS, f"{where}.config.balancer", problems)
    if bal.get("algorithm"):
        if bal["algorithm"] not in _ALGORITHMS:
            problems.append(
                f"{where}.config.balancer.algorithm: {bal['algorithm']!r} is not supported "
                f"({', '.join(sorted(_ALGORITHMS))})"
            )
        else:
            raw["balancer"]["algorithm"] = bal["algorithm"]
    if bal.get("retries") is not None:
        raw["balancer"]["retries"] = bal["retries"]
    if bal.get("connect_timeout"):
        raw["gateway"]["connect_timeout"] = bal["connect_timeout"] / 1000  # Kong writes milliseconds
    if bal.get("read_timeout"):
        raw["gateway"]["first_byte_timeout"] = bal["read_timeout"] / 1000


def _plugin_targets(
    plugin: dict[str, Any], where: str, problems: list[str], raw: dict[str, Any]
) -> list[dict[str, Any]]:
    """One AI plugin's checks and settings; returns its Kong targets (ai-proxy has one, inline)."""
    cfg = plugin.get("config") or {}
    if cfg.get("llm_format", "openai") != "anthropic":
        problems.append(
            f"{where}.config.llm_format: must be anthropic (Claude Code speaks the Messages API), "
            f"got {cfg.get('llm_format', 'openai (the default)')!r}"
        )
    if cfg.get("max_request_body_size"):
        raw["gateway"]["max_body_bytes"] = cfg["max_request_body_size"]
    if plugin["name"] == "ai-proxy":
        single = {k: cfg[k] for k in ("route_type", "auth", "model", "logging") if k in cfg}
        rest = {k: v for k, v in cfg.items() if k not in single and k not in _PLUGIN_KEYS}
        _unsupported(rest, set(), f"{where}.config", problems)
        return [single]
    _unsupported(cfg, _PLUGIN_KEYS, f"{where}.config", problems)
    _balancer(cfg.get("balancer") or {}, where, problems, raw)
    return list(cfg.get("targets") or [])


def _documents(text: str, source: str, env: Mapping[str, str]) -> list[Any]:
    """The YAML documents, `variables` and environment references resolved. Several documents (`---`) are
    read as one: the how-to gives the AI plugin and file-log separately."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_error(exc)}") from None
    variables: dict[str, Any] = {}
    for d in docs:
        if isinstance(d, dict) and isinstance(d.get("variables"), dict):
            variables.update(d["variables"])
    resolved: list[Any] = _resolve(docs, variables, env)
    return resolved


def from_kong(
    text: str, source: str, env: Mapping[str, str] | None = None, *, credentials: bool = True
) -> Config:
    env = os.environ if env is None else env
    docs = _documents(text, source, env)
    problems: list[str] = []
    targets: list[dict[str, Any]] = []
    raw: dict[str, Any] = {"gateway": {}, "balancer": {}}
    log_payloads: list[bool] = []
    plugins = [p for d in docs for p in _plugins(d)]
    ai = [p for p in plugins if p.get("name") in ("ai-proxy-advanced", "ai-proxy")]
    if not ai:
        raise ConfigError(f"{source}: no ai-proxy-advanced or ai-proxy plugin found")
    for n, plugin in enumerate(ai):
        where = f"plugins[{plugin['name']}]" if len(ai) == 1 else f"plugins[{plugin['name']} #{n}]"
        for i, t in enumerate(_plugin_targets(plugin, where, problems, raw)):
            targets.append(_target(t, len(targets), problems, f"{where}.config.targets[{i}]"))
            log_payloads.append(bool((t.get("logging") or {}).get("log_payloads", False)))
    for p in plugins:
        if p.get("name") == "file-log" and (p.get("config") or {}).get("path"):
            raw["log"] = {"file": p["config"]["path"]}
    if problems:
        raise ConfigError(
            scrub(
                f"{source}: this Kong configuration uses what gatewatch does not support:\n  "
                + "\n  ".join(problems),
                secret_values(docs),
            )
        )
    raw["targets"] = targets
    raw["gateway"]["log_payloads"] = any(log_payloads)
    return from_mapping(raw, source, env, credentials=credentials)


def _yaml_error(exc: yaml.YAMLError) -> str:
    """Where and what, never the offending line: PyYAML quotes it, and it may hold an API key."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return where + " ".join(p for p in (exc.context, exc.problem) if p)
    return type(exc).__name__
