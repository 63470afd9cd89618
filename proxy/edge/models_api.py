"""`GET /v1/models` and `/v1/models/{id}` in the shape of Anthropic's Models API: the ids this gateway serves
(each target's model), with the real limits of the model that answers them. Claude Code asks for it at start-up
(`CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1`, `GET /v1/models?limit=1000`); the SDK's `models.list()` pages
through it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from proxy import registry
from proxy.config import Config, TargetConfig
from proxy.errors import GatewayError, invalid_request
from proxy.exchange import discovery
from proxy.providers import provider_class
from proxy.record.pricing import find, model_price
from proxy.translate.catalog import limits
from proxy.translate.models import facts

PATH = re.compile(r"^(?:/.*)?/v1/models(?:/(?P<id>[^/]+))?/?$")
EPOCH = "1970-01-01T00:00:00Z"
"""the release date when it is unknown, as the API allows"""


def _support(on: bool) -> dict[str, bool]:
    return {"supported": on}


def capabilities(model: str) -> dict[str, Any]:
    """Anthropic's `capabilities` object, as far as the model (and this gateway's translation) has each one:
    thinking and effort are mapped onto Gemini's levels or budgets, images and PDFs become Gemini parts,
    web search becomes Google Search; batches, citations, code execution, context management and
    structured outputs have no translation here."""
    f = facts(model)
    thinks = f.uses_level or f.budget_range[1] > 0
    search = f.generation >= 2
    effort = {k: _support(thinks) for k in ("low", "medium", "high", "max", "xhigh")}
    return {
        "batch": _support(False),
        "citations": _support(False),
        "code_execution": _support(False),
        "context_management": _support(False),
        "effort": {"supported": thinks, **effort},
        "image_input": _support(True),
        "pdf_input": _support(True),
        "server_tools": {
            "supported": search,
            "web_search": _support(search),
            "code_execution": _support(False),
        },
        "structured_outputs": _support(False),
        "thinking": {
            "supported": thinks,
            "types": {
                "adaptive": _support(thinks),
                "enabled": _support(thinks),
                "disabled": _support(True),  # sent as the model's least thinking where it can't stop
                "between_tools": _support(False),
            },
        },
    }


def _price(model: str, provider: str | None) -> str:
    """The genai-prices figures, input and output per 1M tokens (the base of a tiered price)."""
    p = model_price(model, provider=provider)
    if p is None:
        return "price unknown"
    i, o = (v if isinstance(v, Decimal) else getattr(v, "base", None) for v in (p.input_mtok, p.output_mtok))
    if i is None or o is None:
        return "price unknown"
    tiers = "" if isinstance(p.input_mtok, Decimal) else ", more for long prompts"
    return f"${i}/${o} per Mtok{tiers}"


def _entry(config: Config, t: TargetConfig, model_id: str, display: str, served_by: str) -> dict[str, Any]:
    lim = limits(t.model)
    max_tokens = lim.max_output if lim else None
    if t.max_tokens is not None:
        max_tokens = min(t.max_tokens, max_tokens) if max_tokens else t.max_tokens
    region = provider_class(t.provider).region(t)
    where = f"{t.provider}, {region}" if region else t.provider
    price = _price(t.model, registry.pricing_id(t.provider))
    window = f"{lim.context_window:,}" if lim else "unknown"
    entry: dict[str, Any] = {
        "type": "model",
        "id": model_id,
        "display_name": display,
        # the picker shows about three lines: the served model and its price first
        "description": f"{t.model} ({where}) · {price} · window {window}"
        + (f" · max output {max_tokens:,}" if max_tokens else "")
        + f" · gatewatch {served_by}",
        "created_at": EPOCH,
        "lifecycle": "active",
        "max_input_tokens": lim.context_window if lim else None,
        "max_tokens": max_tokens,
    }
    if "gemini" in t.model.lower():
        entry["capabilities"] = capabilities(t.model)
    return entry


def _name(model: str) -> str:
    found = find(model)
    return found[1].name or model if found else model


def catalogue(config: Config) -> list[dict[str, Any]]:
    """First a `claude-gw-…` id per target and per route (what Claude Code's discovery keeps), then one entry
    per distinct model a target serves, in target order (`*` passthroughs list only their target id)."""
    out: dict[str, dict[str, Any]] = {}
    for model_id, (kind, i) in discovery.ids(config.targets, config.routes).items():
        if kind == "target":
            t = config.targets[i]
            if t.model == "*":
                continue  # the client's own model: nothing of ours to describe
            out[model_id] = _entry(config, t, model_id, f"{_name(t.model)} · {t.name}", f"target {t.name}")
        else:
            r = config.routes[i]
            first = next((t for t in config.targets if t.name in r.targets and t.model != "*"), None)
            if first is not None:
                display = f"{_name(first.model)} · route {r.model}"
                out[model_id] = _entry(
                    config, first, model_id, display, f"route {r.model} ({', '.join(r.targets)})"
                )
    for t in config.targets:
        if t.model == "*" or t.model in out:
            continue
        entry = _entry(config, t, t.model, f"{t.model} ({t.provider}, via gatewatch)", f"target {t.name}")
        out[t.model] = entry
    return list(out.values())


def one(config: Config, model_id: str) -> dict[str, Any]:
    for m in catalogue(config):
        if m["id"] == model_id:
            return m
    raise GatewayError(404, f"model: {model_id} is not served by this gateway", "not_found_error")


def page(config: Config, query: Mapping[str, str]) -> dict[str, Any]:
    """A page as the API gives it: `limit` (1-1000, default 20), `after_id` / `before_id` cursors."""
    raw = query.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        raise invalid_request(f"limit: must be an integer from 1 to 1000, not {raw!r}") from None
    if not 1 <= limit <= 1000:
        raise invalid_request(f"limit: must be from 1 to 1000, not {limit}")
    models = catalogue(config)
    ids = [m["id"] for m in models]
    start, end = 0, len(models)
    if "after_id" in query and query["after_id"] in ids:
        start = ids.index(query["after_id"]) + 1
    if "before_id" in query and query["before_id"] in ids:
        end = ids.index(query["before_id"])
        start = max(start, end - limit)
    data = models[start:end][:limit]
    return {
        "data": data,
        "has_more": start + len(data) < end or ("before_id" in query and start > 0),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
