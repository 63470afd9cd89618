"""A finished call's record in the terms of the OpenTelemetry GenAI semantic conventions: span attributes, as
pure functions (no I/O, no OpenTelemetry import), for `otel.py` to export.

The names are those released in `opentelemetry-semantic-conventions` (0.66b2); `tests/test_otel.py` holds them
to that release.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy import registry
from proxy.record import Attempt, Record


def call_error(rec: Record) -> str | None:
    """`error.type` of a call: Anthropic's error type, `cancelled`, or None when it was answered."""
    if rec.cancelled:
        return "cancelled"
    if rec.error_type or (rec.status is not None and rec.status >= 400):
        return rec.error_type or str(rec.status)
    return None


def chat_attributes(rec: Record) -> dict[str, Any]:
    """The inbound call's span: what was asked, who answered, what it cost in tokens."""
    out: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": rec.request_model}
    if rec.provider:
        out["gen_ai.provider.name"] = registry.otel_name(rec.provider)
    if rec.response_model and rec.tried_targets:
        out["gen_ai.response.model"] = rec.response_model
    if rec.response_id:
        out["gen_ai.response.id"] = rec.response_id
    if rec.stop_reason:
        out["gen_ai.response.finish_reasons"] = [rec.stop_reason]
    if rec.session_id:
        out["gen_ai.conversation.id"] = rec.session_id
    out.update(usage_attributes(rec))
    if rec.request_mode == "stream" and rec.usage.time_to_first_token is not None:
        out["gen_ai.response.time_to_first_chunk"] = rec.usage.time_to_first_token / 1000
    error = call_error(rec)
    if error:
        out["error.type"] = error
    return out


def usage_attributes(rec: Record) -> dict[str, int]:
    u = rec.usage
    if not (u.input_tokens or u.output_tokens or u.cache_read_tokens or u.cache_creation_tokens):
        return {}
    out = {
        # the conventions count cached tokens in input_tokens (Anthropic's own input_tokens leaves them out)
        "gen_ai.usage.input_tokens": u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens,
        "gen_ai.usage.output_tokens": u.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": u.cache_read_tokens,
    }
    if u.cache_creation_tokens:
        out["gen_ai.usage.cache_creation.input_tokens"] = u.cache_creation_tokens
    return out


def attempt_attributes(rec: Record, a: Attempt, answering: bool) -> dict[str, Any]:
    """One upstream attempt's span; the answering one carries the answer's model, id and usage."""
    dialect = registry.dialect_of(a.provider)
    translated = dialect is not None and dialect.translated
    out: dict[str, Any] = {
        "gen_ai.operation.name": dialect.operation if dialect is not None else "chat",
        "gen_ai.provider.name": registry.otel_name(a.provider),
        "gen_ai.request.model": a.model,
        "server.address": a.host,
        "server.port": a.port,
    }
    if rec.session_id:
        out["gen_ai.conversation.id"] = rec.session_id
    # a translated answer's id is the gateway's own; an upstream's own answer's id is the upstream's
    rid = a.response_id or (rec.response_id if answering and not translated else None)
    if rid:
        out["gen_ai.response.id"] = rid
    if answering:
        if rec.response_model:
            out["gen_ai.response.model"] = rec.response_model
        out.update(usage_attributes(rec))
    if a.error is not None or (a.status is not None and a.status >= 400):
        out["error.type"] = str(a.status) if a.status and a.status >= 400 else "_OTHER"
    elif answering and call_error(rec):
        out["error.type"] = call_error(rec)  # failed after the answer began (cut off, cancelled)
    return out


def content_attributes(rec: Record) -> dict[str, str]:
    """Prompt and answer in the conventions' message shape (only when captured: `capture_content`, and only
    what the record kept under `log_payloads`). The request body holds no credential: those travel in headers."""
    out: dict[str, str] = {}
    body = rec.client_request if isinstance(rec.client_request, dict) else {}
    system = body.get("system")
    if system:
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        out["gen_ai.system_instructions"] = orjson.dumps(_parts(blocks)).decode()
    messages = body.get("messages")
    if isinstance(messages, list):
        out["gen_ai.input.messages"] = orjson.dumps(
            [
                {"role": m.get("role"), "parts": _parts(m.get("content"))}
                for m in messages
                if isinstance(m, dict)
            ]
        ).decode()
    if isinstance(rec.response, dict) and rec.response.get("type") == "message":
        answer = {
            "role": "assistant",
            "parts": _parts(rec.response.get("content")),
            "finish_reason": rec.stop_reason,
        }
        out["gen_ai.output.messages"] = orjson.dumps([answer]).decode()
    return out


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for b in content if isinstance(content, list) else []:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            parts.append({"type": "text", "content": b.get("text", "")})
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": b.get("thinking", "")})
        elif kind == "tool_use":
            parts.append(
                {"type": "tool_call", "id": b.get("id"), "name": b.get("name"), "arguments": b.get("input")}
            )
        elif kind == "tool_result":
            parts.append(
                {"type": "tool_call_response", "id": b.get("tool_use_id"), "response": b.get("content")}
            )
        else:
            parts.append({"type": str(kind)})  # images, documents: their kind, not their bytes
    return parts
