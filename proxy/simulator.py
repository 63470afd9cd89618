"""A Gemini-speaking upstream on loopback: both URL shapes (Vertex AI and the Gemini API), their auth, an
OAuth token endpoint, SSE streaming, scripted replies and faults.

It backs `gatewatch demo` and the benchmarks; the test suite wraps it with Google's proto types as validator.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

_VERTEX = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/google/models/"
    r"(?P<model>[^/:]+):(?P<action>\w+)$"
)
_GEMINI = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<action>\w+)$")
_SIGNING_KEY = secrets.token_bytes(32)


def issue_signature() -> str:
    """A thought signature as Gemini hands them out: opaque base64 that only its issuer can verify."""
    nonce = secrets.token_bytes(24)
    return base64.b64encode(nonce + hmac.digest(_SIGNING_KEY, nonce, "sha256")[:16]).decode()


def genuine_signature(sig: str) -> bool:
    """Whether this simulator issued `sig` (what Google checks before it says "Corrupted thought signature")."""
    try:
        raw = base64.b64decode(sig, validate=True)
    except ValueError:
        return False
    return len(raw) == 40 and hmac.compare_digest(
        hmac.digest(_SIGNING_KEY, raw[:24], "sha256")[:16], raw[24:]
    )


@dataclass
class Reply:
    """One scripted upstream answer."""

    parts: list[dict[str, Any]] = field(default_factory=list)
    finish: str | None = "STOP"
    usage: dict[str, Any] | None = None
    status: int = 200
    error_status: str = ""
    error_message: str = ""
    error_details: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    """Send these bytes as the body, whatever else is set (junk, HTML)."""
    chunks: int = 3
    """How many SSE chunks a text is cut into."""
    chunk_delay: float = 0.0
    delay: float = 0.0
    """Seconds before the response headers."""
    head_delay: float = 0.0
    """Seconds of silence after a stream's headers, before its first chunk (a model thinking at length)."""
    stall_after: int | None = None
    """Stop sending (but keep the connection open) after this many chunks."""
    cut_after: int | None = None
    """Close the stream after this many chunks, with no finish reason."""
    prompt_tokens: int | None = None
    cached_tokens: int = 0
    model_version: str | None = None
    grounding: dict[str, Any] | None = None
    """`groundingMetadata` on the candidate (the last chunk of a stream), as Google Search grounding gives it."""
    """The `modelVersion` answered (default: the model asked for), as Google names an alias's target."""

    @classmethod
    def text(cls, text: str, **kw: Any) -> "Reply":
        return cls(parts=[{"text": text}], **kw)

    @classmethod
    def call(
        cls, name: str, args: dict[str, Any], signature: bool = True, text: str = "", **kw: Any
    ) -> "Reply":
        parts: list[dict[str, Any]] = [{"text": text}] if text else []
        fc: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if signature:
            fc["thoughtSignature"] = issue_signature()
        parts.append(fc)
        return cls(parts=parts, **kw)

    @classmethod
    def thinking(cls, thought: str, text: str, **kw: Any) -> "Reply":
        sig = issue_signature()
        return cls(parts=[{"text": thought, "thought": True}, {"text": text, "thoughtSignature": sig}], **kw)

    @classmethod
    def error(
        cls,
        status: int,
        google_status: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        **kw: Any,
    ) -> "Reply":
        return cls(
            status=status, error_status=google_status, error_message=message, error_details=details, **kw
        )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    action: str
    model: str


IMPLICIT_CACHE_MIN_TOKENS = 1024
"""Google's implicit cache starts at this many prompt tokens"""


def prompt_bytes(body: Any) -> bytes:
    """The prefix Google's implicit cache keys on: systemInstruction, tools, then each content, serialised as it
    came (orjson keeps the key order sent), so a serialisation that is not byte-stable misses as at Google."""
    if not isinstance(body, dict):
        return b""
    parts = [orjson.dumps(body.get("systemInstruction")), orjson.dumps(body.get("tools"))]
    parts += [orjson.dumps(c) for c in body.get("contents") or []]
    return b"".join(parts)


def _common(a: bytes, b: bytes) -> int:
    """The longest common prefix's length. Written again here, not imported from `proxy.insight.prefix`: the
    fake Google must not share code with the detector it tests, or a bug in one would hide in both."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class ImplicitCache:
    """Gemini's implicit cache as the simulator plays it (`sim.implicit_cache = ImplicitCache()`): a prompt's
    prefix is compared with the recent prompts of the same model; the longest shared one is cached when it is
    at least IMPLICIT_CACHE_MIN_TOKENS long (tokens are bytes / 4, as `promptTokenCount` is counted here)."""

    RECENT = 32
    """prompts remembered per model"""

    def __init__(self) -> None:
        self.recent: dict[str, deque[bytes]] = {}
        self.hits: list[int] = []

    def __call__(self, model: str, body: Any) -> int:
        data = prompt_bytes(body)
        recent = self.recent.setdefault(model, deque(maxlen=self.RECENT))
        best = max((_common(data, old) for old in recent), default=0)
        recent.append(data)
        tokens = best // 4
        cached = tokens if tokens >= IMPLICIT_CACHE_MIN_TOKENS else 0
        self.hits.append(cached)
        return cached


def _words(parts: list[dict[str, Any]]) -> int:
    n = 0
    for p in parts:
        if "text" in p:
            n += max(1, len(p["text"].split()))
        elif "functionCall" in p:
            n += 5 + len(json.dumps(p["functionCall"].get("args", {}))) // 8
    return n


class GeminiSimulator:
    """The upstream. `script(...)` queues replies; with none queued, `responder(body)` makes one."""

    def __init__(
        self,
        api_key: str = "sim-api-key",
        validator: Callable[[str, str, Any, str], str | None] | None = None,
        responder: Callable[[Any], Reply] | None = None,
        middlewares: list[Middleware] | None = None,
        keep: int | None = None,
    ):
        self.api_key = api_key
        self.keep = keep
        """how many received requests `received` holds (the newest); None: every one (tests read them back).
        A long-lived upstream (the demo, the benchmarks' stand-in) keeps few: every kept body is thousands of
        objects each full collection scans, and the stand-in's own pauses were being measured as the gateway's"""
        self.validator = validator
        self.responder = responder or (lambda body: Reply.text("Hello from the simulated Gemini."))
        self.middlewares = middlewares or []
        self.queue: deque[Reply] = deque()
        self.received: list[Received] = []
        self.requests: list[str] = []
        """every request's method, path and query, whatever its route (what a door test counts)"""
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.model_gets = 0
        """GET models/{model} calls (a gateway checking its API key at start)"""
        self.public_keys: dict[
            str, Any
        ] = {}  # client_email → RSA public key (verified when cryptography is there)
        self.token_lifetime = 3600
        self.caches: dict[str, dict[str, Any]] = {}
        self.implicit_cache: Callable[[str, Any], int] | None = None
        """Gemini's implicit cache, when set: `(model, body)` → the cached tokens of that prompt (the test suite's
        `ImplicitCache`); it sees every prompt answered"""
        self.require_auth = True
        """False for benchmarks against peers that pass the key their own way."""
        self.url = ""
        self._runner: web.AppRunner | None = None

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    # -- server --------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[self._counted, *self.middlewares]
        )
        app.router.add_post("/token", self._token)
        # Gemini API context caching, as some gateways turn Anthropic cache_control into it
        app.router.add_get("/{tail:.*cachedContents}", self._list_caches)
        app.router.add_post("/{tail:.*cachedContents}", self._create_cache)
        app.router.add_get("/v1beta/models/{model}", self._get_model)  # models.get: what a key check asks
        app.router.add_post("/{tail:.*}", self._generate)
        return app

    @web.middleware
    async def _counted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.raw_path}")
        return await handler(request)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- context caching (minimal) -------------------------------------------------------------------------
    async def _list_caches(self, request: web.Request) -> web.Response:
        return web.json_response({"cachedContents": list(self.caches.values())})

    async def _create_cache(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = f"cachedContents/{secrets.token_hex(6)}"
        entry = {
            "name": name,
            "model": body.get("model", ""),
            "displayName": body.get("displayName", ""),
            "usageMetadata": {"totalTokenCount": 1000},
            "expireTime": "2099-01-01T00:00:00Z",
        }
        self.caches[name] = entry
        return web.json_response(entry)

    async def _get_model(self, request: web.Request) -> web.Response:
        self.model_gets += 1
        refused = self._auth(request, vertex=False) if self.require_auth else None
        if refused is not None:
            return refused
        model = request.match_info["model"]
        if not model.startswith("gemini-"):
            return self._google_error(
                404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not supported"
            )
        return web.json_response(
            {"name": f"models/{model}", "displayName": model, "inputTokenLimit": 1048576}
        )

    # -- OAuth ---------------------------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        assertion = str(form.get("assertion", ""))
        try:
            head, payload, sig = assertion.split(".")
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "malformed JWT"}, status=400
            )
        key = self.public_keys.get(claims.get("iss", ""))
        if key is None:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "unknown service account"}, status=400
            )
        if not self._verify(key, f"{head}.{payload}".encode(), sig):
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
            )
        # google-auth signs for Google's token audience even when the key's token_uri points elsewhere
        audiences = {f"{self.url}/token", "https://oauth2.googleapis.com/token"}
        if claims.get("aud") not in audiences or "cloud-platform" not in str(claims.get("scope", "")):
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = "ya29.sim-" + secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_lifetime
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    @staticmethod
    def _verify(key: Any, signed: bytes, sig: str) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            key.verify(
                base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)),
                signed,
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            return True
        except (InvalidSignature, ValueError):
            return False

    # -- generate ------------------------------------------------------------------------------------------
    @staticmethod
    def _google_error(
        status: int,
        google_status: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        err: dict[str, Any] = {"code": status, "message": message, "status": google_status}
        if details:
            err["details"] = details
        return web.Response(
            status=status, body=orjson.dumps({"error": err}), content_type="application/json", headers=headers
        )

    def _auth(self, request: web.Request, vertex: bool) -> web.Response | None:
        if vertex:
            auth = request.headers.get("authorization", "")
            tok = auth.removeprefix("Bearer ")
            if not auth.startswith("Bearer ") or self.tokens.get(tok, 0) < time.time():
                return self._google_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                )
            return None
        key = request.headers.get("x-goog-api-key")
        if key is None:
            return self._google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers. "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if key != self.api_key:
            return self._google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )
        return None

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        m = _VERTEX.match(request.path)
        vertex = m is not None
        m = m or _GEMINI.match(request.path)
        if m is None:
            return self._google_error(404, "NOT_FOUND", f"unknown path {request.path}")
        denied = self._auth(request, vertex) if self.require_auth else None
        if denied is not None:
            return denied
        action, model = m.group("action"), m.group("model")
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        self._receive(Received(request.path, dict(request.headers), body, action, model))
        problem = (
            self.validator("vertex" if vertex else "gemini", action, body, model) if self.validator else None
        )
        if problem:
            return self._google_error(400, "INVALID_ARGUMENT", problem)
        if action == "countTokens":
            return web.json_response({"totalTokens": max(1, len(raw) // 4)})
        if action not in ("generateContent", "streamGenerateContent"):
            return self._google_error(404, "NOT_FOUND", f"unknown action {action}")
        reply = self.queue.popleft() if self.queue else self.responder(body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        refusal = self._refusal(reply)
        if refusal is not None:
            return refusal
        usage = self._usage(reply, model, body, len(raw))
        if action == "generateContent":
            return web.Response(
                body=orjson.dumps(self._whole(reply, model, usage)), content_type="application/json"
            )
        if request.query.get("alt") != "sse":
            return self._google_error(400, "INVALID_ARGUMENT", "this simulator streams only with alt=sse")
        return await self._stream(request, reply, reply.model_version or model, usage)

    def _receive(self, received: Received) -> None:
        if self.keep is None:
            self.received.append(received)
        elif self.keep > 0:
            self.received.append(received)
            if len(self.received) >= 2 * self.keep:  # trimmed in halves: amortised O(1) per request
                del self.received[: len(self.received) - self.keep]

    def _refusal(self, reply: Reply) -> web.Response | None:
        """A scripted raw body or error, answered as it is; None for an answer."""
        if reply.raw is not None:
            return web.Response(
                status=reply.status,
                body=reply.raw,
                headers=reply.headers,
                content_type="text/html" if reply.raw.lstrip().startswith(b"<") else "application/json",
            )
        if reply.status != 200:
            return self._google_error(
                reply.status, reply.error_status, reply.error_message, reply.error_details, reply.headers
            )
        return None

    def _usage(self, reply: Reply, model: str, body: Any, size: int) -> dict[str, Any]:
        """`usageMetadata`: the scripted one, else counted (a token per 4 bytes of prompt, per word of answer)
        with the scripted or implicitly cached tokens."""
        if reply.usage:
            return reply.usage
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else max(1, size // 4)
        out_tokens = _words(reply.parts)
        thoughts = sum(max(1, len(p["text"].split())) for p in reply.parts if p.get("thought"))
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": out_tokens - thoughts,
            "thoughtsTokenCount": thoughts,
            "totalTokenCount": prompt + out_tokens,
        }
        cached = reply.cached_tokens
        if not cached and self.implicit_cache is not None:
            cached = min(self.implicit_cache(model, body), prompt)
        if cached:
            usage["cachedContentTokenCount"] = cached
        return usage

    @staticmethod
    def _whole(reply: Reply, model: str, usage: dict[str, Any]) -> dict[str, Any]:
        """A generateContent answer."""
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": reply.parts}}
        if reply.finish is not None:
            candidate["finishReason"] = reply.finish
        candidate["index"] = 0
        if reply.grounding:
            candidate["groundingMetadata"] = reply.grounding
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": reply.model_version or model,
            "responseId": secrets.token_hex(8),
        }

    @staticmethod
    def _split(parts: list[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
        """Cut text parts into about n chunks; function calls arrive whole, as Gemini sends them."""
        pieces: list[list[dict[str, Any]]] = []
        for p in parts:
            if "text" in p and len(p["text"]) > 1 and n > 1:
                text = p["text"]
                step = max(1, -(-len(text) // n))
                for i in range(0, len(text), step):
                    q = {k: v for k, v in p.items() if k != "thoughtSignature"}
                    q["text"] = text[i : i + step]
                    if "thoughtSignature" in p and i + step >= len(text):
                        q["thoughtSignature"] = p["thoughtSignature"]
                    pieces.append([q])
            else:
                pieces.append([p])
        return pieces or [[]]

    async def _stream(
        self, request: web.Request, reply: Reply, model: str, usage: dict[str, Any]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        pieces = self._split(reply.parts, reply.chunks)
        rid = secrets.token_hex(8)  # every chunk of one answer carries its id, as Gemini's do
        if reply.head_delay:
            await asyncio.sleep(reply.head_delay)
        for i, parts in enumerate(pieces):
            if reply.stall_after is not None and i >= reply.stall_after:
                await asyncio.sleep(3600)
            if reply.cut_after is not None and i >= reply.cut_after:
                return resp
            last = i == len(pieces) - 1
            chunk: dict[str, Any] = {
                "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
                "modelVersion": model,
                "responseId": rid,
            }
            chunk["usageMetadata"] = usage if last else {"promptTokenCount": usage.get("promptTokenCount", 0)}
            if last and reply.finish:
                chunk["candidates"][0]["finishReason"] = reply.finish
            if last and reply.grounding:
                chunk["candidates"][0]["groundingMetadata"] = reply.grounding
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
            if reply.chunk_delay and not last:
                await asyncio.sleep(reply.chunk_delay)
        await resp.write_eof()
        return resp
