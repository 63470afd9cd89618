"""The aiohttp gateway: routes, request parsing, the upstream call, Anthropic responses and SSE, the record."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
import uuid
from collections import OrderedDict
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web

from . import pricing, providers
from .config import Config
from .errors import GatewayError, from_google, invalid_request
from .events import Bus, CallFinished, CallProgressed, CallStarted
from .record import Attempt, Record, log, redact_headers
from .routing import Router
from .translate import request as treq
from .translate import response as tresp
from .translate.stream import StreamTranslator, sse

_MESSAGES_PATH = re.compile(r"^(?:/.*)?/v1/messages(?P<count>/count_tokens)?/?$")
_SIGNATURE_CACHE = 20_000  # tool_use id → thought signature, for clients that drop thinking blocks
_PREVIEW_CHARS = 200


def _new_id() -> str:
    return uuid.uuid4().hex[:24]


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c[:_PREVIEW_CHARS]
        if isinstance(c, list):
            texts = [b.get("text", "") for b in c if isinstance(b, dict) and b.get("type") == "text"]
            texts = [t for t in texts if t and not t.lstrip().startswith("<system-reminder>")]
            if texts:
                return texts[-1][:_PREVIEW_CHARS]
            for b in c:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    return f"[tool result {str(b.get('content'))[: _PREVIEW_CHARS - 14]}]"
    return ""


def _session_id(metadata: Any, headers: Any) -> str | None:
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


class Gateway:
    """One gateway: its config, its upstream session, its hub. `app()` gives the aiohttp application."""

    def __init__(
        self, config: Config, bus: Bus | None = None, on_record: Callable[[Record], None] | None = None
    ):
        self.config = config
        self.bus = bus or Bus()
        self.on_record = on_record
        self.providers = [providers.make(t) for t in config.targets]
        self.router = Router(self.providers, config.balancer, config.routes)
        self.signatures: OrderedDict[str, str] = OrderedDict()
        self.session: aiohttp.ClientSession | None = None
        self.in_flight: dict[str, Record] = {}
        self.started_at = time.time()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.gateway.max_body_bytes)
        app.cleanup_ctx.append(self._session_ctx)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _session_ctx(self, app: web.Application) -> AsyncIterator[None]:
        g = self.config.gateway
        timeout = aiohttp.ClientTimeout(total=None, connect=g.connect_timeout, sock_connect=g.connect_timeout)
        # Upstream keep-alive matters: a TLS handshake per call would dwarf the gateway's own cost.
        self.session = aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=256),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )
        yield
        await self.session.close()

    # -- routing -------------------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method == "HEAD" and path in ("/", ""):
            return web.Response(status=200)  # Claude Code probes the base URL
        if path == "/health" and request.method == "GET":
            if not self._authorized(request.headers):
                return self._error_response(
                    GatewayError(401, "this gateway requires its token", "authentication_error"), ""
                )
            return web.json_response(self.health())
        m = _MESSAGES_PATH.match(path)
        if m:
            if request.method != "POST":
                return self._error_response(
                    GatewayError(
                        405, f"{request.method} is not allowed on {path}; use POST", "invalid_request_error"
                    ),
                    "",
                )
            return await self.handle(request, count=bool(m.group("count")))
        return self._error_response(
            GatewayError(404, f"no route for {request.method} {path}", "not_found_error"), ""
        )

    def health(self) -> dict[str, Any]:
        states = self.router.health()
        cooling = [n for n, st in states.items() if st["state"] != "ok"]
        return {
            "status": "ok" if not cooling else ("down" if len(cooling) == len(states) else "degraded"),
            "uptime_s": round(time.time() - self.started_at, 1),
            "in_flight": len(self.in_flight),
            "targets": [
                {"name": p.name, "provider": p.kind, "model": p.model, "host": p.where()[2], **states[p.name]}
                for p in self.providers
            ],
        }

    def timeouts(self, provider: providers.Provider) -> tuple[float, float, float]:
        """(connect, first byte, idle) for this target: its own, else the gateway's."""
        g, t = self.config.gateway, provider.target
        return (
            t.connect_timeout or g.connect_timeout,
            t.first_byte_timeout or g.first_byte_timeout,
            t.idle_timeout or g.idle_timeout,
        )

    @staticmethod
    def _error_response(err: GatewayError, rid: str) -> web.Response:
        headers = {"request-id": rid, **err.headers} if rid else dict(err.headers)
        return web.Response(
            status=err.status, body=err.to_bytes(), content_type="application/json", headers=headers
        )

    # -- one exchange --------------------------------------------------------------------------------------
    async def handle(self, request: web.Request, count: bool) -> web.StreamResponse:
        t0 = time.perf_counter()
        rec = Record(
            id="req_" + _new_id(),
            kind="count_tokens" if count else "messages",
            started_at=time.time(),
            client_ip=request.remote or "",
            user_agent=request.headers.get("user-agent", ""),
            method=request.method,
            path=request.path,
            query=request.query_string,
            request_headers=redact_headers(request.headers),
        )
        self.in_flight[rec.id] = rec
        self.bus.emit(CallStarted(rec))
        resp: web.StreamResponse | None = None
        try:
            try:
                resp = await self._exchange(request, rec, count, t0)
            except GatewayError as err:
                rec.status, rec.error_type, rec.error_message = err.status, err.type, err.message
                resp = self._error_response(err, rec.id)
                rec.response = err.body() if self.config.gateway.log_payloads else None
                rec.response_size = len(resp.body or b"")
            return resp
        except asyncio.CancelledError:
            # The client went away: the upstream call was cancelled with us. Keep what we know.
            rec.cancelled = True
            rec.error_type = rec.error_type or "cancelled"
            rec.error_message = rec.error_message or "client disconnected before the answer was complete"
            raise
        except Exception as exc:  # a bug must still give the client an Anthropic error and leave a record
            log.exception("unexpected error in %s", rec.id)
            err = GatewayError(500, f"gatewatch internal error: {type(exc).__name__}", "api_error")
            rec.status, rec.error_type, rec.error_message = 500, err.type, err.message
            return self._error_response(err, rec.id)
        finally:
            rec.latency_ms = (time.perf_counter() - t0) * 1000
            rec.ended_at = time.time()
            if resp is not None:
                rec.response_headers = redact_headers(resp.headers)
            self.in_flight.pop(rec.id, None)
            self._price(rec)
            if self.on_record is not None:
                try:
                    self.on_record(rec)
                except Exception:
                    log.exception("recording %s failed", rec.id)
            self.bus.emit(CallFinished(rec))

    def _price(self, rec: Record) -> None:
        u = rec.usage
        u.total_tokens = u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_creation_tokens
        if rec.kind == "count_tokens":
            u.cost = 0.0  # counting is free on both Google APIs
            return
        if not u.total_tokens:  # nothing was billed (an error, a refusal before any token): known to cost 0
            u.cost = 0.0
            return
        target = next((p.target for p in self.providers if p.name == rec.target), None)
        override = None
        if target is not None and target.input_cost is not None and target.output_cost is not None:
            override = pricing.Price(
                target.input_cost,
                target.output_cost,
                target.cached_cost if target.cached_cost is not None else target.input_cost,
            )
        u.cost = pricing.cost(
            rec.response_model or rec.request_model,
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            override,
        )

    def _authorized(self, headers) -> bool:
        token = self.config.gateway.auth_token
        if token is None:
            return True
        want = token.get_secret_value().encode()
        given = [
            headers.get("x-api-key", ""),
            headers.get("authorization", "").removeprefix("Bearer ").strip(),
        ]
        return any(hmac.compare_digest(g.encode(), want) for g in given if g)

    def client_headers(self, headers) -> dict[str, str]:
        """The client's headers as forwarded to a passthrough upstream: the gateway's own token stays here."""
        token = self.config.gateway.auth_token
        out = dict(headers)
        if token is not None:
            t = token.get_secret_value()
            for k in [k for k, v in out.items() if k.lower() in ("x-api-key", "authorization") and t in v]:
                del out[k]
        return out

    async def _read_json(self, request: web.Request, rec: Record) -> tuple[bytes, dict]:
        try:
            async with asyncio.timeout(self.config.gateway.client_timeout):
                raw = await request.read()
        except TimeoutError:
            raise GatewayError(
                408,
                f"the request body did not arrive within {self.config.gateway.client_timeout:g}s "
                "(gateway.client_timeout)",
                "invalid_request_error",
                retryable=False,
            ) from None
        except web.HTTPRequestEntityTooLarge:
            limit = self.config.gateway.max_body_bytes
            raise GatewayError(
                413,
                f"request body is larger than the gateway's limit of {limit} bytes (gateway.max_body_bytes)",
                "request_too_large",
                retryable=False,
            ) from None
        rec.request_size = len(raw)
        if not raw:
            raise invalid_request("request body is empty; expected a JSON object")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise invalid_request(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise invalid_request("request body must be a JSON object")
        if self.config.gateway.log_payloads:
            rec.client_request = body
        return raw, body

    @staticmethod
    def _validate(body: dict, count: bool) -> None:
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
            if v is not None and (
                not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi
            ):
                raise invalid_request(f"{key}: must be a number between {lo} and {hi}")
        tk = body.get("top_k")
        if tk is not None and (not isinstance(tk, int) or isinstance(tk, bool) or tk < 1):
            raise invalid_request("top_k: must be a positive integer")

    async def _exchange(
        self, request: web.Request, rec: Record, count: bool, t0: float
    ) -> web.StreamResponse:
        if not self._authorized(request.headers):
            raise GatewayError(
                401,
                "this gateway requires its token: set ANTHROPIC_AUTH_TOKEN (or "
                "ANTHROPIC_API_KEY) to the value of gateway.auth_token / GATEWATCH_TOKEN",
                "authentication_error",
                retryable=False,
            )
        raw, body = await self._read_json(request, rec)
        self._validate(body, count)
        rec.request_model = body["model"]
        rec.request_mode = "stream" if body.get("stream") and not count else "oneshot"
        rec.metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
        rec.session_id = _session_id(body.get("metadata"), request.headers)
        rec.preview = _last_user_text(body.get("messages"))
        rec.tools_offered = len(body.get("tools") or []) if isinstance(body.get("tools"), list) else 0
        candidates = self.router.candidates(body["model"])
        if not candidates:
            raise GatewayError(
                503,
                "no upstream target is configured (set GEMINI_API_KEY or give --config)",
                "api_error",
                retryable=False,
            )
        for i, provider in enumerate(candidates):
            rec.target, rec.provider, rec.response_model = provider.name, provider.kind, provider.model
            rec.error_type = rec.error_message = None
            self.router.started(provider.name)
            try:
                resp = await self._attempt_target(request, provider, raw, body, rec, count, t0)
            except GatewayError as err:
                if err.retryable:
                    self.router.failure(provider.name)
                # A failure before any byte reached the client moves on to the next target.
                if not err.retryable or i == len(candidates) - 1:
                    raise
                log.info(
                    "%s: target %s failed (%s), trying %s",
                    rec.id,
                    provider.name,
                    err.message,
                    candidates[i + 1].name,
                )
                continue
            finally:
                self.router.finished(provider.name)
            if rec.error_type:  # failed after the stream began: no fallback, but it counts against the target
                self.router.failure(provider.name)
            else:
                self.router.success(
                    provider.name, rec.llm_latency_ms, rec.usage.input_tokens + rec.usage.output_tokens
                )
            return resp
        raise AssertionError("unreachable")

    async def _attempt_target(
        self,
        request: web.Request,
        provider: providers.Provider,
        raw: bytes,
        body: dict,
        rec: Record,
        count: bool,
        t0: float,
    ) -> web.StreamResponse:
        if provider.passthrough:
            return await self._passthrough(request, provider, raw, body, rec, count, t0)
        translated = treq.translate(
            body,
            treq.Target(provider.model, provider.target.max_tokens, provider.target.schema_mode),
            self.signatures,
        )
        if count:
            return await self._count(provider, translated, rec, t0)
        if self.config.gateway.log_payloads:
            rec.upstream_request = translated.body
        if self.bus.wants(CallProgressed):
            self.bus.emit(CallProgressed(rec))
        if rec.request_mode == "stream":
            return await self._stream(request, provider, translated, body, rec, t0)
        return await self._oneshot(provider, translated, body, rec, t0)

    def _attempt(self, provider: providers.Provider, action: str) -> Attempt:
        scheme, port, host, _ = provider.where()
        return Attempt(
            target=provider.name,
            provider=provider.kind,
            model=provider.model,
            host=host,
            port=port,
            upstream_scheme=scheme,
            upstream_uri=urlsplit(provider.url(action)).path,
        )

    async def _post(
        self,
        provider: providers.Provider,
        action: str,
        payload: dict | bytes,
        attempt: Attempt,
        url: str | None = None,
        headers: dict | None = None,
        passthrough: bool = False,
    ) -> aiohttp.ClientResponse:
        """POST upstream; returns a 200 response (caller closes it) or raises GatewayError."""
        connect, first_byte, idle = self.timeouts(provider)
        assert self.session is not None
        if headers is None:
            headers = {"content-type": "application/json", **await provider.headers()}
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect)
        try:
            async with asyncio.timeout(first_byte):
                resp = await self.session.post(
                    url or provider.url(action), data=data, headers=headers, timeout=timeout
                )
        except TimeoutError:
            raise GatewayError(
                504,
                f"upstream target '{provider.name}' sent no response within "
                f"{first_byte:g}s (first_byte_timeout)",
                "overloaded_error",
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise GatewayError(
                502,
                f"cannot connect to upstream target '{provider.name}' at "
                f"{exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}",
                "api_error",
                retryable=True,
            ) from None
        except aiohttp.ClientError as exc:
            raise GatewayError(
                502,
                f"upstream target '{provider.name}' failed: {type(exc).__name__}: {exc}",
                "api_error",
                retryable=True,
            ) from None
        attempt.status = resp.status
        if resp.status != 200:
            try:
                async with asyncio.timeout(idle):
                    data = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                data = b""
            finally:
                resp.release()
            if passthrough:
                raise self._passthrough_error(provider, resp, data)
            raise from_google(resp.status, data, provider.credential, resp.headers)
        return resp

    @staticmethod
    def _passthrough_error(provider, resp: aiohttp.ClientResponse, data: bytes) -> GatewayError:
        """An Anthropic-speaking upstream's error goes back as it came, status and body."""
        try:
            err = orjson.loads(data)["error"]
            message, type_ = str(err.get("message", "")), str(err.get("type", "api_error"))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            message, type_ = f"upstream answered HTTP {resp.status}: {data[:200]!r}", None
        if resp.status == 401:
            message = f"{provider.credential} was rejected ({message})"
        headers = {k: v for k, v in resp.headers.items() if k.lower() in ("retry-after", "request-id")}
        ge = GatewayError(resp.status, message, type_, headers)
        if type_ is not None and resp.status != 401:
            ge.raw = data
        return ge

    async def _read_all(self, resp: aiohttp.ClientResponse, provider: providers.Provider) -> bytes:
        try:
            async with asyncio.timeout(self.timeouts(provider)[1]):
                return await resp.read()
        except TimeoutError:
            raise GatewayError(
                504, f"upstream target '{provider.name}' stalled while sending its answer", "overloaded_error"
            ) from None
        except aiohttp.ClientError as exc:
            raise GatewayError(
                502,
                f"upstream target '{provider.name}' broke off its answer: {type(exc).__name__}",
                "api_error",
            ) from None

    def _remember(self, sigs: dict[str, str]) -> None:
        for k, v in sigs.items():
            self.signatures[k] = v
            self.signatures.move_to_end(k)
        while len(self.signatures) > _SIGNATURE_CACHE:
            self.signatures.popitem(last=False)

    def _usage_into(self, rec: Record, meta: dict | None) -> None:
        u = tresp.usage(meta)
        rec.usage.input_tokens = u["input_tokens"]
        rec.usage.output_tokens = u["output_tokens"]
        rec.usage.cache_read_tokens = u["cache_read_input_tokens"]
        rec.usage.thinking_tokens = u["thinking_tokens"]

    async def _count(self, provider, translated, rec: Record, t0: float) -> web.Response:
        payload = provider.count_body(translated.body)
        attempt = self._attempt(provider, "countTokens")
        rec.tried_targets.append(attempt)
        if self.config.gateway.log_payloads:
            rec.upstream_request = payload
        a0 = time.perf_counter()
        try:
            resp = await self._post(provider, "countTokens", payload, attempt)
            try:
                data = orjson.loads(await self._read_all(resp, provider))
            finally:
                resp.release()
            n = int(data.get("totalTokens", 0))
            if self.config.gateway.log_payloads:
                rec.upstream_response = data
        except (GatewayError, orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
            # /context fires ~25 counts at once; an estimate beats an error the user can't act on.
            attempt.error = (
                exc.message if isinstance(exc, GatewayError) else f"unreadable countTokens answer: {exc}"
            )
            n = max(1, len(orjson.dumps(payload)) // 4)
            rec.usage.estimated = True
        attempt.latency_ms = (time.perf_counter() - a0) * 1000
        rec.usage.input_tokens = n
        rec.status = 200
        out = {"input_tokens": n}
        rec.response = out if self.config.gateway.log_payloads else None
        body = orjson.dumps(out)
        rec.response_size = len(body)
        return web.Response(body=body, content_type="application/json", headers={"request-id": rec.id})

    async def _passthrough(
        self, request: web.Request, provider, raw: bytes, body: dict, rec: Record, count: bool, t0: float
    ) -> web.StreamResponse:
        """Forward to an Anthropic-speaking upstream unchanged; read what passes for the record."""
        stream = rec.request_mode == "stream"
        action = "countTokens" if count else ("streamGenerateContent" if stream else "generateContent")
        attempt = self._attempt(provider, action)
        rec.tried_targets.append(attempt)
        url = provider.request_url(count, stream, request.query_string)
        payload = provider.request_body(raw, body, count)
        headers = await provider.request_headers(self.client_headers(request.headers))
        if self.config.gateway.log_payloads and payload is not raw:
            rec.upstream_request = orjson.loads(payload)
        a0 = time.perf_counter()
        try:
            resp = await self._post(
                provider, action, payload, attempt, url=url, headers=headers, passthrough=True
            )
        except GatewayError as err:
            attempt.error = err.message
            attempt.latency_ms = (time.perf_counter() - a0) * 1000
            raise
        rec.usage.time_to_first_byte = (time.perf_counter() - t0) * 1000
        ctype = resp.headers.get("content-type", "application/json")
        if not stream:
            try:
                data = await self._read_all(resp, provider)
            finally:
                resp.release()
            attempt.latency_ms = rec.llm_latency_ms = (time.perf_counter() - a0) * 1000
            rec.status = 200
            rec.response_size = len(data)
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                msg = None
            if isinstance(msg, dict):
                if count:
                    rec.usage.input_tokens = int(msg.get("input_tokens") or 0)
                    if self.config.gateway.log_payloads:
                        rec.response = msg
                else:
                    self._anthropic_usage(rec, msg.get("usage") or {})
                    rec.response_model = msg.get("model") or rec.response_model
                    rec.usage.time_to_first_token = rec.llm_latency_ms
                    if rec.usage.output_tokens:
                        rec.usage.time_per_token = rec.llm_latency_ms / rec.usage.output_tokens
                    if isinstance(msg.get("content"), list):
                        self._finish_message(rec, msg)
            return web.Response(body=data, headers={"content-type": ctype, "request-id": rec.id})
        out = web.StreamResponse(
            status=200, headers={"content-type": ctype, "cache-control": "no-cache", "request-id": rec.id}
        )
        await out.prepare(request)
        rec.status = 200
        idle = self.timeouts(provider)[2]
        buf = b""
        events: list[Any] = []
        content: list[dict] = []
        msg: dict[str, Any] = {"content": content}
        try:
            while True:
                try:
                    async with asyncio.timeout(idle):
                        chunk = await resp.content.readany()
                except TimeoutError:
                    raise GatewayError(
                        504,
                        f"upstream target '{provider.name}' stalled: nothing for {idle:g}s (idle_timeout)",
                        "overloaded_error",
                    ) from None
                except aiohttp.ClientError as exc:
                    raise GatewayError(
                        502,
                        f"upstream target '{provider.name}' broke off the stream: {type(exc).__name__}",
                        "api_error",
                    ) from None
                if not chunk:
                    break
                await out.write(chunk)
                rec.response_size += len(chunk)
                rec.stream_chunks += 1
                buf += chunk
                *frames, buf = buf.split(b"\n\n")
                for frame in frames:
                    self._observe_event(frame, rec, msg, events, t0)
        except GatewayError as err:
            rec.error_type, rec.error_message = err.type, err.message
            await out.write(sse("error", err.body()))
        finally:
            resp.release()
            attempt.latency_ms = rec.llm_latency_ms = (time.perf_counter() - a0) * 1000
            if rec.usage.output_tokens:
                rec.usage.time_per_token = rec.llm_latency_ms / rec.usage.output_tokens
            if self.config.gateway.log_payloads:
                rec.events = events
            self._finish_message(rec, {**msg, "content": content})
        return out  # aiohttp ends the body after the record is handed over (see _stream)

    def _anthropic_usage(self, rec: Record, u: dict) -> None:
        for ours, theirs in (
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("cache_read_tokens", "cache_read_input_tokens"),
            ("cache_creation_tokens", "cache_creation_input_tokens"),
        ):
            if u.get(theirs) is not None:
                setattr(rec.usage, ours, int(u[theirs]))

    def _observe_event(self, frame: bytes, rec: Record, msg: dict, events: list, t0: float) -> None:
        """Follow an Anthropic SSE stream passing through: usage, blocks, time to first token."""
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
        if self.config.gateway.log_payloads:
            events.append({"event": ev.get("type"), "data": ev})
        kind = ev.get("type")
        content = msg["content"]
        if kind == "message_start":
            m = ev.get("message") or {}
            self._anthropic_usage(rec, m.get("usage") or {})
            rec.response_model = m.get("model") or rec.response_model
            msg.update({k: v for k, v in m.items() if k not in ("content", "usage")})
        elif kind == "content_block_start":
            content.append(dict(ev.get("content_block") or {}))
        elif kind == "content_block_delta" and content:
            if rec.usage.time_to_first_token is None:
                rec.usage.time_to_first_token = (time.perf_counter() - t0) * 1000
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
            self._anthropic_usage(rec, ev.get("usage") or {})
            msg["stop_reason"] = (ev.get("delta") or {}).get("stop_reason")
        elif kind == "error":
            err = ev.get("error") or {}
            rec.error_type, rec.error_message = err.get("type", "api_error"), err.get("message")

    async def _oneshot(self, provider, translated, body, rec: Record, t0: float) -> web.Response:
        attempt = self._attempt(provider, "generateContent")
        rec.tried_targets.append(attempt)
        a0 = time.perf_counter()
        try:
            resp = await self._post(provider, "generateContent", translated.body, attempt)
            rec.usage.time_to_first_byte = (time.perf_counter() - t0) * 1000
            try:
                raw = await self._read_all(resp, provider)
            finally:
                resp.release()
            try:
                data = orjson.loads(raw)
                if not isinstance(data, dict):
                    raise ValueError("not an object")
            except (orjson.JSONDecodeError, ValueError):
                raise GatewayError(
                    502,
                    f"upstream target '{provider.name}' answered 200 with a body that is not a "
                    f"Gemini response: {raw[:120]!r}",
                    "api_error",
                ) from None
        except GatewayError as err:
            attempt.error = err.message
            attempt.latency_ms = (time.perf_counter() - a0) * 1000
            raise
        attempt.latency_ms = rec.llm_latency_ms = (time.perf_counter() - a0) * 1000
        if self.config.gateway.log_payloads:
            rec.upstream_response = data
        sigs: dict[str, str] = {}
        msg = tresp.to_message(
            data, body["model"], "msg_" + _new_id(), tresp.IdSource(_new_id), translated.thinking, sigs
        )
        self._remember(sigs)
        self._usage_into(rec, data.get("usageMetadata"))
        rec.response_model = data.get("modelVersion") or provider.model
        rec.usage.time_to_first_token = rec.llm_latency_ms
        if rec.usage.output_tokens:
            rec.usage.time_per_token = rec.llm_latency_ms / rec.usage.output_tokens
        self._finish_message(rec, msg)
        out = orjson.dumps(msg)
        rec.status = 200
        rec.response_size = len(out)
        return web.Response(body=out, content_type="application/json", headers={"request-id": rec.id})

    def _finish_message(self, rec: Record, msg: dict) -> None:
        rec.stop_reason = msg.get("stop_reason")
        rec.tools_used = [b["name"] for b in msg["content"] if b.get("type") == "tool_use"]
        rec.response_text = "".join(b.get("text", "") for b in msg["content"] if b.get("type") == "text")[
            :4000
        ]
        if self.config.gateway.log_payloads:
            rec.response = msg

    async def _sse_chunks(self, resp: aiohttp.ClientResponse, provider) -> AsyncIterator[dict]:
        """Parse Gemini's SSE (`data: {...}` + blank line). Yields chunks; raises GatewayError on stall or junk."""
        _, first_byte, idle = self.timeouts(provider)
        data_lines: list[bytes] = []
        waited_first = True
        while True:
            limit = first_byte if waited_first else idle
            try:
                async with asyncio.timeout(limit):
                    line = await resp.content.readline()
            except TimeoutError:
                what = "first chunk" if waited_first else "next chunk"
                key = "first_byte_timeout" if waited_first else "idle_timeout"
                raise GatewayError(
                    504,
                    f"upstream target '{provider.name}' stalled: no {what} within {limit:g}s ({key})",
                    "overloaded_error",
                ) from None
            except aiohttp.ClientError as exc:
                raise GatewayError(
                    502,
                    f"upstream target '{provider.name}' broke off the stream: {type(exc).__name__}",
                    "api_error",
                ) from None
            if not line:  # EOF
                if data_lines:
                    yield self._parse_chunk(b"".join(data_lines), provider)
                return
            line = line.rstrip(b"\r\n")
            if not line:
                if data_lines:
                    waited_first = False
                    yield self._parse_chunk(b"".join(data_lines), provider)
                    data_lines = []
                continue
            if line.startswith(b"data:"):
                data_lines.append(line[5:].lstrip())

    @staticmethod
    def _parse_chunk(data: bytes, provider) -> dict:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise GatewayError(
                502,
                f"upstream target '{provider.name}' sent a stream chunk that is not JSON: {data[:120]!r}",
                "api_error",
            ) from None
        if not isinstance(chunk, dict):
            raise GatewayError(
                502,
                f"upstream target '{provider.name}' sent a stream chunk that is not an object",
                "api_error",
            )
        if isinstance(chunk.get("error"), dict):
            raise from_google(int(chunk["error"].get("code") or 500), data, provider.credential)
        return chunk

    async def _stream(
        self, request: web.Request, provider, translated, body, rec: Record, t0: float
    ) -> web.StreamResponse:
        g = self.config.gateway
        attempt = self._attempt(provider, "streamGenerateContent")
        rec.tried_targets.append(attempt)
        a0 = time.perf_counter()
        keep = g.log_payloads
        events: list[Any] = []
        chunks: list[dict] = []
        sigs: dict[str, str] = {}
        st = StreamTranslator(
            body["model"], "msg_" + _new_id(), tresp.IdSource(_new_id), translated.thinking, sigs
        )
        out: web.StreamResponse | None = None
        size = 0

        lock = asyncio.Lock()  # the pinger and the main loop both write; one frame at a time, one prepare
        last_activity = time.monotonic()

        async def send(evs: list[tuple[str, dict]]) -> None:
            nonlocal out, size
            async with lock:
                if out is None:
                    out = web.StreamResponse(
                        status=200,
                        headers={
                            "content-type": "text/event-stream; charset=utf-8",
                            "cache-control": "no-cache",
                            "request-id": rec.id,
                            "x-accel-buffering": "no",
                        },
                    )
                    out.enable_chunked_encoding()
                    await out.prepare(request)
                    rec.status = 200
                frame = b"".join(sse(e, d) for e, d in evs)
                size += len(frame)
                if keep:
                    events.extend({"event": e, "data": d} for e, d in evs)
                await out.write(frame)

        async def pinger() -> None:
            # A silent upstream still gets the client keep-alive pings; before the first chunk the stream
            # is opened so the client sees life. One timer per stream, not one per chunk.
            while True:
                await asyncio.sleep(g.ping_interval)
                if time.monotonic() - last_activity >= g.ping_interval * 0.9:
                    if out is None:
                        await send(st.open())
                    await send([("ping", {"type": "ping"})])

        try:
            resp = await self._post(provider, "streamGenerateContent", translated.body, attempt)
        except GatewayError as err:
            attempt.error = err.message
            attempt.latency_ms = (time.perf_counter() - a0) * 1000
            raise
        rec.usage.time_to_first_byte = (time.perf_counter() - t0) * 1000
        ping_task = asyncio.create_task(pinger())
        try:
            async for chunk in self._sse_chunks(resp, provider):
                last_activity = time.monotonic()
                if keep:
                    chunks.append(chunk)
                rec.stream_chunks += 1
                had_content = st.first_content
                evs = st.feed(chunk)
                if st.first_content and not had_content:
                    rec.usage.time_to_first_token = (time.perf_counter() - t0) * 1000
                if evs:
                    await send(evs)
                    if self.bus.wants(CallProgressed):
                        self.bus.emit(CallProgressed(rec))
            if st.finish is None and not st.blocked:
                raise GatewayError(
                    502,
                    f"upstream target '{provider.name}' ended the stream without a finish reason (cut off)",
                    "api_error",
                )
            await send(st.finish_events())
        except GatewayError as err:
            ping_task.cancel()
            attempt.error = err.message
            rec.error_type, rec.error_message = err.type, err.message
            if out is None:
                attempt.latency_ms = (time.perf_counter() - a0) * 1000
                raise
            # Already streaming: the status line is gone, so the error travels as an SSE event.
            await send([("error", err.body())])
        finally:
            ping_task.cancel()
            resp.release()
            attempt.latency_ms = rec.llm_latency_ms = (time.perf_counter() - a0) * 1000
            self._remember(sigs)
            self._usage_into(rec, st.usage_meta)
            if rec.usage.output_tokens:  # Kong's definition: generation latency / completion tokens
                rec.usage.time_per_token = rec.llm_latency_ms / rec.usage.output_tokens
            msg = st.message()
            self._finish_message(rec, msg)
            rec.response_size = size
            if keep:
                rec.events = events
                rec.upstream_response = chunks
        assert out is not None
        # No write_eof here: aiohttp ends the body once the handler has returned, which is after the
        # record was handed to the store, so a client that saw the end of its response has a record.
        return out


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class InsecureBind(Exception):
    """Binding beyond loopback without a token would open the upstream credentials to the network."""


async def start(gateway: Gateway, host: str, port: int, insecure: bool = False) -> tuple[web.AppRunner, int]:
    """Start listening; returns the runner and the bound port (port 0 picks a free one)."""
    if not is_loopback(host) and gateway.config.gateway.auth_token is None and not insecure:
        raise InsecureBind(
            f"refusing to listen on {host} without gateway.auth_token (or GATEWATCH_TOKEN): anyone "
            "who can reach it could spend your Gemini credentials. Set a token, or pass --insecure."
        )
    # handler_cancellation: a client that disconnects cancels its handler, and so its upstream call.
    runner = web.AppRunner(
        gateway.app(),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=gateway.config.gateway.shutdown_grace,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, bound
