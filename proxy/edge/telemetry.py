"""Claude Code's own telemetry, received: OTLP/HTTP logs (`POST /v1/logs`, protobuf or JSON) on the gateway's
own address, so `OTEL_EXPORTER_OTLP_ENDPOINT=<the gateway>` is all the setup. Metrics and traces
(`/v1/metrics`, `/v1/traces`: Claude Code sends them when asked to) are accepted and left unread.

Of the events Claude Code exports, two matter here: `api_request` (its `request_id` is the `request-id` the
gateway answered with, so it joins the record; it carries `prompt.id`, `cost_usd` — Claude Code's estimate
at Claude's prices — and `query_source`) and `user_prompt` (`prompt.id`, and the prompt's text when
`OTEL_LOG_USER_PROMPTS=1`). `events` turns a body into plain dicts; the store journals and joins them
(`proxy/store/insight.py`). Protobuf bodies are read with `opentelemetry-proto` (the `[otel]` extra),
imported only when one arrives.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from aiohttp import web

from proxy.errors import GatewayError

PATHS = frozenset({"/v1/logs", "/v1/metrics", "/v1/traces"})
PROTOBUF = "application/x-protobuf"
REDACTED_PROMPT = "<REDACTED>"
"""what Claude Code sends as the prompt's text unless OTEL_LOG_USER_PROMPTS=1"""
TEXT_CHARS = 2000
"""a turn's label keeps this much of the prompt"""


class Unreadable(Exception):
    """A body that is not OTLP in the format its content type says."""


def _value(v: Any) -> Any:
    """An OTLP AnyValue (as JSON, or protobuf turned into the same dict) → a Python value."""
    if not isinstance(v, dict):
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:  # int64 travels as a string in OTLP/JSON
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    return None


def _attrs(items: Any) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value")) for a in items or [] if isinstance(a, dict) and "key" in a}


def _records(doc: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any], Any]]:
    """(resource attributes, log attributes, body) of each log record."""
    for rl in doc.get("resourceLogs") or []:
        resource = _attrs((rl.get("resource") or {}).get("attributes"))
        for sl in rl.get("scopeLogs") or []:
            for lr in sl.get("logRecords") or []:
                yield resource, _attrs(lr.get("attributes")), lr


def _number(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _when(lr: dict[str, Any]) -> float | None:
    for key in ("timeUnixNano", "observedTimeUnixNano"):
        try:
            ns = int(lr.get(key) or 0)
        except (TypeError, ValueError):
            continue
        if ns:
            return ns / 1e9
    return None


def events(doc: dict[str, Any], keep_text: bool) -> list[dict[str, Any]]:
    """The `api_request` and `user_prompt` events of an OTLP logs document, as the store takes them.
    `keep_text`: the prompt's text is kept (the gateway's `log_payloads`). Pure."""
    out: list[dict[str, Any]] = []
    for resource, attrs, lr in _records(doc):
        name = str(attrs.get("event.name") or _value(lr.get("body")) or "")
        name = name.removeprefix("claude_code.")
        session = attrs.get("session.id") or resource.get("session.id")
        at = _when(lr)
        if name == "api_request" and attrs.get("request_id"):
            out.append(
                {
                    "event": "api_request",
                    "request_id": str(attrs["request_id"]),
                    "prompt_id": attrs.get("prompt.id"),
                    "session_id": session,
                    "cost_usd": _number(attrs.get("cost_usd")),
                    "query_source": attrs.get("query_source"),
                    "at": at,
                }
            )
        elif name == "user_prompt" and attrs.get("prompt.id"):
            text = attrs.get("prompt")
            keep = keep_text and isinstance(text, str) and text and text != REDACTED_PROMPT
            length = attrs.get("prompt_length")
            out.append(
                {
                    "event": "user_prompt",
                    "prompt_id": str(attrs["prompt.id"]),
                    "session_id": session,
                    "text": text[:TEXT_CHARS] if keep and isinstance(text, str) else None,
                    "length": int(length)
                    if isinstance(length, (int, float, str)) and str(length).isdigit()
                    else None,
                    "at": at,
                }
            )
    return out


def decode(body: bytes, content_type: str, signal: str) -> dict[str, Any]:
    """An OTLP/HTTP body as OTLP/JSON's dict (protobuf is decoded and turned into the same shape)."""
    if body[:2] == b"\x1f\x8b":  # gzip the server did not undo
        body = gzip.decompress(body)
    if content_type == PROTOBUF:
        try:
            from google.protobuf import json_format  # type: ignore[import-untyped]
            from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
            from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        except ImportError as exc:
            raise Unreadable(
                "OTLP protobuf needs gatewatch's [otel] extra (pip install 'gatewatch[otel]'); or set "
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"
            ) from exc
        if signal != "logs":
            return {}
        try:
            msg = ExportLogsServiceRequest.FromString(body)
        except DecodeError as exc:
            raise Unreadable(f"not an OTLP protobuf ExportLogsServiceRequest: {exc}") from None
        doc: dict[str, Any] = json_format.MessageToDict(msg)
        return doc
    try:
        parsed = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as exc:
        raise Unreadable(f"not OTLP/JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise Unreadable("not OTLP/JSON: the body is not an object")
    return parsed


def _error(status: int, message: str, content_type: str) -> web.Response:
    # OTLP/HTTP answers errors with a google.rpc.Status; the JSON form says the same for people
    err = GatewayError(status, message, "invalid_request_error")
    if content_type == PROTOBUF:
        return web.Response(status=status, body=message.encode(), content_type="text/plain")
    return web.json_response({"code": 3, "message": err.message}, status=status)


async def receive(
    request: web.Request, keep_text: bool, deliver: Callable[[list[dict[str, Any]]], None] | None
) -> web.Response:
    """One OTLP/HTTP export: decoded, its events handed to `deliver` (the store), answered as OTLP answers."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in (PROTOBUF, "application/json"):
        return _error(415, f"OTLP/HTTP takes {PROTOBUF} or application/json, not {ctype or 'nothing'}", ctype)
    signal = request.path.rsplit("/", 1)[-1]
    raw = await request.read()
    try:
        if request.headers.get("content-encoding", "").lower() == "deflate":
            raw = zlib.decompress(raw)
        doc = decode(raw, ctype, signal)
    except (Unreadable, OSError, zlib.error) as exc:
        return _error(400, str(exc), ctype)
    if signal == "logs" and deliver is not None:
        found = events(doc, keep_text)
        if found:
            deliver(found)
    # an empty Export…ServiceResponse: zero bytes in protobuf, {} in JSON
    if ctype == PROTOBUF:
        return web.Response(body=b"", content_type=PROTOBUF)
    return web.json_response({})
