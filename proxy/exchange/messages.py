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
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import SecretStr

from proxy.config import GatewaySettings
from proxy.errors import GatewayError, invalid_request
from proxy.exchange.recorder import Call, new_id
from proxy.translate.request import billing_header

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


@dataclass(frozen=True, slots=True)
class ReplayAsk:
    """A stored call sent again (`POST /gatewatch/replay`, behind the gateway's token): to this target, at
    this model (None: the target's own), recorded as `replay_of` the original."""

    of: str
    target: str
    model: str | None = None


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


SHUTDOWN = "gatewatch is shutting down"
"""The cancel message of a call ended by a shutdown past `gateway.shutdown_grace`."""
MAX_DEPTH = 48
"""Deepest JSON nesting accepted in a body. orjson reads 1,024 levels but writes 255, and the record nests
the body a few levels further down: deeper bodies are refused up front, never served and then lost."""
_BEARER = re.compile(r"^bearer\s+", re.IGNORECASE)
_NOT_MARK = bytes(b for b in range(256) if b not in b'"[]{}')
_PAIR = re.compile(rb"\[\]|\{\}")
_ESCAPE = re.compile(rb"\\.", re.S)
_STRING = re.compile(rb'"[^"]*"')


def is_shutdown(exc: BaseException) -> bool:
    return bool(exc.args) and exc.args[0] == SHUTDOWN


def shutting_down() -> GatewayError:
    return GatewayError(
        529, "gatewatch is shutting down (gateway.shutdown_grace passed); retry", "overloaded_error"
    )


def _given(headers: Mapping[str, str]) -> list[str]:
    return [headers.get("x-api-key", ""), _BEARER.sub("", headers.get("authorization", "")).strip()]


def authorized(token: SecretStr | None, headers: Mapping[str, str]) -> bool:
    if token is None:
        return True
    want = token.get_secret_value().encode()
    given = [g.encode("utf-8", "surrogateescape") for g in _given(headers) if g]
    return any(hmac.compare_digest(g, want) for g in given)


def auth_error(token: SecretStr | None, headers: Mapping[str, str]) -> GatewayError | None:
    """401 for a missing or wrong token, and for a credential that is not ASCII (no key is)."""
    if any(g and not g.isascii() for g in _given(headers)):
        return GatewayError(
            401,
            "x-api-key / authorization holds non-ASCII characters: not a valid key or token",
            "authentication_error",
            retryable=False,
        )
    if not authorized(token, headers):
        return GatewayError(
            401,
            "this gateway requires its token: set ANTHROPIC_AUTH_TOKEN (or "
            "ANTHROPIC_API_KEY) to the value of gateway.auth_token / GATEWATCH_TOKEN",
            "authentication_error",
            retryable=False,
        )
    return None


def depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep a (valid) JSON text nests, strings skipped, counted up to `limit` + 1. Each pass deletes the
    innermost pairs (`[]`, `{}`), so the passes count the levels: all in C, a few passes for a usual body."""
    # escapes gone (one regex pass: a backslash and the byte after it), every `"` left opens or closes a string;
    # keep only quotes and brackets, then drop the strings. (Two `replace` passes over the whole body for `\\`
    # and `\"` cost several times the JSON parse of a 57 KB body.)
    marks = (_ESCAPE.sub(b"", raw) if b"\\" in raw else raw).translate(None, _NOT_MARK)
    brackets = _STRING.sub(b"", marks)
    level = 0
    while brackets and level <= limit:
        brackets = _PAIR.sub(b"", brackets)
        level += 1
    return level


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
    err = auth_error(settings.auth_token, request.headers)
    if err is not None:
        raise err
    raw, body = await read_json(request, settings)
    # a body with no more brackets than the limit can't nest past it: two counts in C, not depth's passes
    deepest = depth(raw) if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH else 0
    if deepest > MAX_DEPTH:
        call.refused_body(len(raw), f"body not kept: nested more than {MAX_DEPTH} levels deep")
        raise invalid_request(
            f"request body nests more than {MAX_DEPTH} levels deep; the gateway accepts at most {MAX_DEPTH}"
        )
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
    call.claude_code(
        request.headers.get("x-claude-code-agent-id"),
        billing_header(body.get("system"))[1],
        request.headers.get("x-claude-code-parent-agent-id"),
    )
    return inbound


async def read_json(request: web.Request, settings: GatewaySettings) -> tuple[bytes, dict[str, Any]]:
    try:
        if (
            request.content.is_eof()
        ):  # the whole body came with the headers (a usual call): nothing to wait for
            raw = await request.read()
        else:
            async with asyncio.timeout(settings.client_timeout):
                raw = await request.read()
    except TimeoutError:
        raise GatewayError(
            408,
            f"the request body did not arrive within {settings.client_timeout:g}s (gateway.client_timeout)",
            "invalid_request_error",
            retryable=False,
        ) from None
    except (HttpProcessingError, RequestPayloadError) as exc:  # a body that does not decode (bad gzip)
        cause = exc.__cause__ or exc
        raise invalid_request(
            f"the request body could not be read: {type(cause).__name__}: {cause}"
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
            texts = [b.get("text") for b in c if isinstance(b, dict) and b.get("type") == "text"]
            texts = [
                t
                for t in texts
                if isinstance(t, str) and t and not t.lstrip().startswith("<system-reminder>")
            ]
            if texts:
                return str(texts[-1])[:PREVIEW_CHARS]
            for b in c:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    return f"[tool result {_result_text(b.get('content'))[: PREVIEW_CHARS - 14]}]"
    return ""


def _result_text(content: Any) -> str:
    """A tool result's content as a person reads it: its text, whether a string or a list of blocks (every
    `Agent` result), other blocks named by their type; never a Python repr."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else str(content)
    parts = []
    for b in content:
        if isinstance(b, dict) and isinstance(b.get("text"), str):
            parts.append(b["text"])
        elif isinstance(b, dict):
            parts.append(f"[{b.get('type', 'block')}]")
    return " ".join(p.strip() for p in parts if p.strip())


def session_id(metadata: Any, headers: Mapping[str, str]) -> str | None:
    """Claude Code's session: `metadata.user_id` is a JSON-encoded string holding session_id."""
    if isinstance(metadata, dict):
        uid = metadata.get("user_id")
        if isinstance(uid, str) and uid.startswith("{"):
            try:
                try:
                    doc = orjson.loads(uid)  # several times json's speed on Claude Code's small object
                except ValueError:
                    doc = json.loads(uid)  # what orjson refuses and json reads (NaN, huge integers)
                sid = doc.get("session_id")
                if sid:
                    return str(sid)
            except (ValueError, AttributeError):
                pass
    return headers.get("x-claude-code-session-id")
