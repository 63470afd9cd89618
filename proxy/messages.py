"""The inbound Messages API: the gateway's token, the body read and validated, what the record shows of the
request (preview, session), and errors in Anthropic's shape."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from pydantic import SecretStr

from .config import GatewaySettings
from .errors import GatewayError, invalid_request
from .recorder import Call, new_id
from .translate.request import billing_header

PATH = re.compile(r"^(?:/.*)?/v1/messages(?P<count>/count_tokens)?/?$")
PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class Inbound:
    """A request that passed the gate: its raw bytes (for byte-faithful passthrough) and parsed body."""

    request: web.Request
    raw: bytes
    body: dict[str, Any]
    count: bool

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream")) and not self.count


def error_response(err: GatewayError, rid: str) -> web.Response:
    """The error as Anthropic answers it: `request_id` in the body and a `request-id` header, always."""
    rid = rid or "req_" + new_id()
    body = err.to_bytes() if err.raw is not None else orjson.dumps({**err.body(), "request_id": rid})
    return web.Response(
        status=err.status,
        body=body,
        content_type="application/json",
        headers={"request-id": rid, **err.headers},
    )


def authorized(token: SecretStr | None, headers: Mapping[str, str]) -> bool:
    if token is None:
        return True
    want = token.get_secret_value().encode()
    given = [headers.get("x-api-key", ""), headers.get("authorization", "").removeprefix("Bearer ").strip()]
    return any(hmac.compare_digest(g.encode(), want) for g in given if g)


def client_headers(token: SecretStr | None, headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers as forwarded to a passthrough upstream: the gateway's own token stays here."""
    out = dict(headers)
    if token is not None:
        t = token.get_secret_value()
        for k in [k for k, v in out.items() if k.lower() in ("x-api-key", "authorization") and t in v]:
            del out[k]
    return out


async def accept(request: web.Request, settings: GatewaySettings, call: Call, count: bool) -> Inbound:
    """Check the token, read and validate the body, and tell the call what was asked."""
    if not authorized(settings.auth_token, request.headers):
        raise GatewayError(
            401,
            "this gateway requires its token: set ANTHROPIC_AUTH_TOKEN (or "
            "ANTHROPIC_API_KEY) to the value of gateway.auth_token / GATEWATCH_TOKEN",
            "authentication_error",
            retryable=False,
        )
    raw, body = await read_json(request, settings)
    call.request_read(raw, body)
    validate(body, count)
    inbound = Inbound(request, raw, body, count)
    metadata = body.get("metadata")
    tools = body.get("tools")
    call.accepted(
        model=inbound.model,
        stream=inbound.stream,
        metadata=metadata if isinstance(metadata, dict) else None,
        session_id=session_id(metadata, request.headers),
        preview=last_user_text(body.get("messages")),
        tools_offered=len(tools) if isinstance(tools, list) else 0,
    )
    call.claude_code(request.headers.get("x-claude-code-agent-id"), billing_header(body.get("system"))[1])
    return inbound


async def read_json(request: web.Request, settings: GatewaySettings) -> tuple[bytes, dict[str, Any]]:
    try:
        async with asyncio.timeout(settings.client_timeout):
            raw = await request.read()
    except TimeoutError:
        raise GatewayError(
            408,
            f"the request body did not arrive within {settings.client_timeout:g}s (gateway.client_timeout)",
            "invalid_request_error",
            retryable=False,
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise GatewayError(
            413,
            f"request body is larger than the gateway's limit of {settings.max_body_bytes} bytes "
            "(gateway.max_body_bytes)",
            "request_too_large",
            retryable=False,
        ) from None
    if not raw:
        raise invalid_request("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("request body must be a JSON object")
    return raw, body


def validate(body: Mapping[str, Any], count: bool) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid_request("model: Field required (a string)")
    if not isinstance(body.get("messages"), list):
        raise invalid_request("messages: Field required (a list)")
    if not count:
        mt = body.get("max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            raise invalid_request("max_tokens: Field required (a positive integer)")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise invalid_request("stream: must be a boolean")
    for key, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1)):
        v = body.get(key)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi):
            raise invalid_request(f"{key}: must be a number between {lo} and {hi}")
    tk = body.get("top_k")
    if tk is not None and (not isinstance(tk, int) or isinstance(tk, bool) or tk < 1):
        raise invalid_request("top_k: must be a positive integer")


def last_user_text(messages: Any) -> str:
    """The preview: the last thing the user said (skipping Claude Code's system reminders)."""
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c[:PREVIEW_CHARS]
        if isinstance(c, list):
            texts = [b.get("text", "") for b in c if isinstance(b, dict) and b.get("type") == "text"]
            texts = [t for t in texts if t and not t.lstrip().startswith("<system-reminder>")]
            if texts:
                return str(texts[-1])[:PREVIEW_CHARS]
            for b in c:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    return f"[tool result {str(b.get('content'))[: PREVIEW_CHARS - 14]}]"
    return ""


def session_id(metadata: Any, headers: Mapping[str, str]) -> str | None:
    """Claude Code's session: `metadata.user_id` is a JSON-encoded string holding session_id."""
    if isinstance(metadata, dict):
        uid = metadata.get("user_id")
        if isinstance(uid, str) and uid.startswith("{"):
            try:
                sid = json.loads(uid).get("session_id")
                if sid:
                    return str(sid)
            except (ValueError, AttributeError):
                pass
    return headers.get("x-claude-code-session-id")
