"""Anthropic-format errors, and the mapping from Google's errors to them."""

from __future__ import annotations

import os
import re
import socket
from typing import Any

import orjson

# Anthropic error type for each HTTP status the gateway answers with.
_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    504: "overloaded_error",
    529: "overloaded_error",
}

# Google status name → (HTTP status we answer, Anthropic type). 503 becomes 529 because that is the status
# Claude Code treats as "overloaded, retry shortly".
_GOOGLE_STATUS = {
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "OUT_OF_RANGE": (400, "invalid_request_error"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (403, "permission_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error"),
    "INTERNAL": (500, "api_error"),
    "UNKNOWN": (500, "api_error"),
    "UNAVAILABLE": (529, "overloaded_error"),
    "DEADLINE_EXCEEDED": (504, "overloaded_error"),
    "CANCELLED": (500, "api_error"),
}
_HTTP_FALLBACK = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_RETRY_AFTER = 5  # seconds, when Google gives no RetryInfo
OVERLOADED_RETRY_AFTER = 2  # seconds: an overloaded (529) answer is worth retrying soon


class GatewayError(Exception):
    """An error answered to the client in the Anthropic format."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or _TYPE_FOR_STATUS.get(status, "api_error")
        self.headers = headers or {}
        if status in (429, 529) and "retry-after" not in self.headers:
            self.headers["retry-after"] = str(
                DEFAULT_RETRY_AFTER if status == 429 else OVERLOADED_RETRY_AFTER
            )
        # Retryable on another target: the failure says nothing about the request itself.
        self.retryable = retryable if retryable is not None else status in (408, 429, 500, 502, 503, 504, 529)
        self.raw: bytes | None = None
        """An upstream's own Anthropic-format error body, passed through verbatim."""
        self.upstream_status: int | None = None
        """The HTTP status the upstream answered, when this error is its answer."""
        self.credential = False
        """The gateway's own upstream credential failed (not the client's): the target is marked refused."""

    def body(self) -> dict[str, Any]:
        return error_body(self.type, self.message)

    def to_bytes(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.body())


def error_body(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


NOT_YOUR_LOGIN = "gatewatch's Google credential, not your Claude login"


def credential_refused(message: str, fix: str = "") -> GatewayError:
    """The gateway's upstream credential was refused and retrying with it can't help. Answered as the
    gateway's failure (502 `api_error`): Claude Code reads a 401/403 as its *own* login failing and tells the
    user to run /login. Retryable on another target; `x-should-retry: false` stops the client's retries."""
    text = f"{message} ({NOT_YOUR_LOGIN})"
    if fix:
        text += f"; to fix: {fix}"
    err = GatewayError(502, text, "api_error", {"x-should-retry": "false"}, retryable=True)
    err.credential = True
    return err


def invalid_request(message: str) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", retryable=False)


_OVERFLOW = re.compile(
    r"input token count \(?(\d+)\)? exceeds the maximum number of tokens allowed \(?(\d+)\)?"
)
_BAD_KEY = re.compile(r"API key not valid|API key expired|API_KEY_INVALID", re.IGNORECASE)


def _parse_duration(value: str) -> float | None:
    m = re.fullmatch(r"\s*([0-9.]+)s\s*", value or "")
    return float(m.group(1)) if m else None


def _google_error(body: bytes) -> dict[str, Any]:
    """Google's `error` object from a body, or {} (any body, even HTML)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(parsed, list) and parsed:  # streamGenerateContent without alt=sse wraps errors in a list
        parsed = parsed[0]
    err = parsed.get("error") if isinstance(parsed, dict) else None
    return dict(err) if isinstance(err, dict) else {}


def _classify(status: int, err: dict[str, Any]) -> tuple[str, int, str]:
    """(Google's status name, the HTTP status we answer, the Anthropic error type)."""
    google_status = err.get("status") or _HTTP_FALLBACK.get(
        status, "UNKNOWN" if status >= 500 else "INVALID_ARGUMENT"
    )
    http, type_ = _GOOGLE_STATUS.get(
        google_status, (status if status in _TYPE_FOR_STATUS else 500, "api_error")
    )
    if status == 503:
        http, type_ = 529, "overloaded_error"
    return google_status, http, type_


def _message(status: int, body: bytes, err: dict[str, Any], google_status: str) -> str:
    message = err.get("message")
    if message:
        return f"{google_status}: {message}"
    text = body[:300].decode("utf-8", "replace").strip()
    if text:
        return f"upstream answered HTTP {status} with a non-JSON body: {text!r}"
    return f"upstream answered HTTP {status}"


def _retry_after(err: dict[str, Any], headers: Any) -> str:
    """Seconds to wait, from Google's RetryInfo, else the Retry-After header, else DEFAULT_RETRY_AFTER."""
    retry = None
    for d in err.get("details") or []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo"):
            retry = _parse_duration(str(d.get("retryDelay", "")))
    if retry is None and headers is not None and headers.get("Retry-After", "").isdigit():
        retry = float(headers["Retry-After"])
    return str(max(1, round(retry if retry is not None else DEFAULT_RETRY_AFTER)))


def from_google(
    status: int, body: bytes, credential: str, headers: Any = None, fix: str = ""
) -> GatewayError:
    """Turn an upstream error response (any body, even HTML) into the Anthropic error Claude Code expects.

    `credential` names what authenticated the call, so an auth failure says which one failed; `fix` says
    what the operator changes when it is refused.
    """
    err = _google_error(body)
    google_status, http, type_ = _classify(status, err)
    reasons = {str(d.get("reason")) for d in err.get("details") or [] if isinstance(d, dict)}
    raw_message = str(err.get("message") or "")
    # The Gemini API answers a bad key with 400, sometimes without details; Vertex an expired token with 401.
    credential_failure = (
        http in (401, 403) or "API_KEY_INVALID" in reasons or bool(_BAD_KEY.search(raw_message))
    )
    overflow = _OVERFLOW.search(raw_message)
    if overflow and http == 400:
        # Claude Code compacts the conversation on exactly Anthropic's wording, and on nothing else.
        n, m = overflow.groups()
        return GatewayError(
            400, f"prompt is too long: {n} tokens > {m} maximum", "invalid_request_error", retryable=False
        )
    message = _message(status, body, err, google_status)
    if credential_failure:
        # Whatever Google calls it, the client can't fix it by retrying, and it is the gateway's key, not
        # the client's login: a 5xx in the gateway's words (see credential_refused).
        verb = "lacks permission" if http == 403 else "was rejected by the upstream"
        return credential_refused(f"{credential} {verb} ({message})", fix)
    out_headers = {"retry-after": _retry_after(err, headers)} if http == 429 else {}
    return GatewayError(http, message, type_, out_headers, retryable=http in (429, 500, 504, 529))


def os_reason(exc: BaseException) -> str:
    """What a failure to reach a host was, in words (`connection refused`, `name or service not known`, `timed
    out`): the errno's own text. asyncio words a refused connect as `Connect call failed ('127.0.0.1', 9)` (a
    tuple's repr, in the OSError's strerror too), which is no message for a person."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    text: str | None = None
    if isinstance(exc, socket.gaierror):  # a name lookup: its errno is getaddrinfo's, not the OS's
        text = exc.strerror
    elif isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        text = os.strerror(exc.errno)
    if text:
        return text[:1].lower() + text[1:]
    return str(exc) or type(exc).__name__
