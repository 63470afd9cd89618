"""`GET /v1/models` and `/v1/models/{id}` in the shape of Anthropic's Models API: the ids this gateway serves
(each target's model), with the real limits of the model that answers them. Claude Code asks for it at start-up
(`CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1`, `GET /v1/models?limit=1000`); the SDK's `models.list()` pages
through it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .catalog import limits
from .config import Config
from .errors import GatewayError, invalid_request

PATH = re.compile(r"^(?:/.*)?/v1/models(?:/(?P<id>[^/]+))?/?$")
EPOCH = "1970-01-01T00:00:00Z"
"""the release date when it is unknown, as the API allows"""


def catalogue(config: Config) -> list[dict[str, Any]]:
    """One entry per distinct model a target serves, in target order (`*` passthroughs list nothing)."""
    out: dict[str, dict[str, Any]] = {}
    for t in config.targets:
        if t.model == "*" or t.model in out:
            continue
        lim = limits(t.model)
        max_tokens = lim.max_output if lim else None
        if t.max_tokens is not None:
            max_tokens = min(t.max_tokens, max_tokens) if max_tokens else t.max_tokens
        out[t.model] = {
            "type": "model",
            "id": t.model,
            "display_name": f"{t.model} ({t.provider}, via gatewatch)",
            "created_at": EPOCH,
            "lifecycle": "active",
            "max_input_tokens": lim.context_window if lim else None,
            "max_tokens": max_tokens,
        }
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
