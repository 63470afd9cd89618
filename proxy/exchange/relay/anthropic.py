"""The Anthropic dialect: forward the Messages request unchanged (the Anthropic API, Claude on Vertex AI) and
watch what passes for the record: usage, blocks, time to first token."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from proxy.errors import GatewayError, credential_refused
from proxy.exchange import upstream
from proxy.exchange.messages import client_headers
from proxy.exchange.recorder import Call
from proxy.exchange.relay import Leg, midstream_error
from proxy.providers import PassthroughProvider


def _error(provider: PassthroughProvider) -> upstream.ErrorMapper:
    def on_error(status: int, data: bytes, headers: Mapping[str, str]) -> GatewayError:
        """An Anthropic-speaking upstream's error goes back as it came, status and body."""
        try:
            err = orjson.loads(data)["error"]
            message, type_ = str(err.get("message", "")), str(err.get("type", "api_error"))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            message, type_ = f"upstream answered HTTP {status}: {data[:200]!r}", None
        if status in (401, 403) and provider.own_credential:
            # the gateway's key, not the client's login: its failure, in its words (see credential_refused)
            verb = "lacks permission" if status == 403 else "was rejected"
            return credential_refused(f"{provider.credential} {verb} ({message})", provider.fix)
        if status == 401:
            message = f"{provider.credential} was rejected ({message})"
        kept = {k: v for k, v in headers.items() if k.lower() in ("retry-after", "request-id")}
        ge = GatewayError(status, message, type_, kept)
        if type_ is not None and status != 401:
            ge.raw = data
        return ge

    return on_error


async def relay(leg: Leg) -> web.StreamResponse:
    p, call, inbound = leg.provider, leg.call, leg.inbound
    assert isinstance(p, PassthroughProvider)
    request, count, stream = inbound.request, inbound.count, inbound.stream
    action = "countTokens" if count else ("streamGenerateContent" if stream else "generateContent")
    url = p.request_url(count, stream, request.query_string)
    payload = p.request_body(inbound.raw, inbound.body, count)
    headers = await p.request_headers(client_headers(leg.settings.auth_token, request.headers))
    if payload is not inbound.raw:
        call.upstream_request(orjson.loads(payload))
    with call.attempt(p, action):
        resp = await upstream.post(leg.session, p.name, url, payload, headers, leg.timeouts, _error(p))
        call.answered(resp.status)
        ctype = resp.headers.get("content-type", "application/json")
        if not stream:
            try:
                data = await upstream.read_all(resp, p.name, leg.timeouts)
            finally:
                resp.release()
        else:
            return await _stream(leg, resp, ctype)
    call.answered_whole()
    call.responding()
    call.body_size(len(data))
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        msg = None
    if isinstance(msg, dict):
        if count:
            call.counted(int(msg.get("input_tokens") or 0), False, msg)
        else:
            call.anthropic_usage(msg.get("usage") or {})
            call.response_model(msg.get("model"))
            if isinstance(msg.get("content"), list):
                call.message(msg)
    return web.Response(body=data, headers={"content-type": ctype, "request-id": call.id})


async def _stream(leg: Leg, resp: Any, ctype: str) -> web.StreamResponse:
    call, p = leg.call, leg.provider
    out = web.StreamResponse(
        status=200, headers={"content-type": ctype, "cache-control": "no-cache", "request-id": call.id}
    )
    await out.prepare(leg.inbound.request)
    call.responding()
    seen = Observer(call)
    try:
        with upstream.Body(resp, p.name, leg.timeouts) as body:
            while True:
                chunk = await body.read()
                if not chunk:
                    break
                body.advanced()
                await out.write(chunk)
                call.chunk()
                call.sent([], len(chunk))
                seen.feed(chunk)
    except (Exception, asyncio.CancelledError) as exc:
        err = midstream_error(exc, True)
        call.failed_midstream(err)
        await out.write(
            b"\n\nevent: error\ndata: " + orjson.dumps({**err.body(), "request_id": call.id}) + b"\n\n"
        )
    finally:
        resp.release()
        call.message(seen.message)
    return out  # aiohttp ends the body after the record is handed over (see relay.gemini.stream)


class Observer:
    """Follows an Anthropic SSE stream passing through, assembling the message the client receives."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.content: list[dict[str, Any]] = []
        self.message: dict[str, Any] = {"content": self.content}
        self._buf = b""

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk
        *frames, self._buf = self._buf.split(b"\n\n")
        for frame in frames:
            self._event(frame)

    def _event(self, frame: bytes) -> None:
        data = None
        for line in frame.split(b"\n"):
            if line.startswith(b"data:"):
                data = line[5:].strip()
        if not data:
            return
        try:
            ev = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(ev, dict):
            return
        kind = ev.get("type")
        self.call.sent([(str(kind), ev)], 0, [data])
        content, call = self.content, self.call
        if kind == "message_start":
            m = ev.get("message") or {}
            call.anthropic_usage(m.get("usage") or {})
            call.response_model(m.get("model"))
            self.message.update({k: v for k, v in m.items() if k not in ("content", "usage")})
        elif kind == "content_block_start":
            content.append(dict(ev.get("content_block") or {}))
        elif kind == "content_block_delta" and content:
            call.first_token()
            d = ev.get("delta") or {}
            block = content[-1]
            if d.get("type") == "text_delta":
                block["text"] = block.get("text", "") + d.get("text", "")
            elif d.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + d.get("thinking", "")
            elif d.get("type") == "input_json_delta":
                block["_json"] = block.get("_json", "") + d.get("partial_json", "")
        elif kind == "content_block_stop" and content and "_json" in content[-1]:
            try:
                content[-1]["input"] = orjson.loads(content[-1].pop("_json") or b"{}")
            except orjson.JSONDecodeError:
                pass
        elif kind == "message_delta":
            call.anthropic_usage(ev.get("usage") or {})
            self.message["stop_reason"] = (ev.get("delta") or {}).get("stop_reason")
        elif kind == "error":
            err = ev.get("error") or {}
            call.failed_upstream(err.get("type", "api_error"), err.get("message"))
