"""The door: who may call at all. Web pages (a foreign `Origin`, a rebound `Host`, a CORS-simple body) are
refused before the token is checked, and refusals are recorded only up to a rate, then counted.

A browser sends `Origin` on every cross-site POST; Claude Code and the SDKs never do. A DNS-rebinding page
reaches 127.0.0.1 under its own name, so while no token is set only the bound address and loopback names are
accepted as `Host`. `text/plain`, form and multipart bodies are what a page can POST without a CORS
preflight, so they are refused too.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from proxy.config import GatewaySettings
from proxy.errors import GatewayError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
WILDCARD = frozenset({"0.0.0.0", "::", ""})


def host_name(host: str) -> str:
    """`Host` without its port: `[::1]:8000` → `::1`, `localhost:8000` → `localhost`."""
    h = host.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h[1:]
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_allowed(host: str, bound: str) -> bool:
    """Loopback names and addresses, and the bound address; any IP literal when bound to every interface
    (rebinding needs a name, never an address)."""
    name = host_name(host)
    if not name or name in LOOPBACK_NAMES or name == host_name(bound):
        return True
    ip = _ip(name)
    if ip is None:
        return False
    return ip.is_loopback or bound in WILDCARD


_ALLOWED: dict[tuple[str, str], bool] = {}
"""(Host, bound address) → `host_allowed`: a client sends the same Host on every call, so each is decided once
(bounded: a client inventing names only fills it to `_ALLOWED_MAX`)"""
_ALLOWED_MAX = 256


def _host_allowed(host: str, bound: str) -> bool:
    key = (host, bound)
    known = _ALLOWED.get(key)
    if known is None:
        known = host_allowed(host, bound)
        if len(_ALLOWED) < _ALLOWED_MAX:
            _ALLOWED[key] = known
    return known


def check(
    method: str, headers: Mapping[str, str], settings: GatewaySettings, bound: str
) -> GatewayError | None:
    """The refusal for a request that must not get in, or None."""
    origin = headers.get("origin")
    if origin is not None and origin not in settings.allowed_origins:
        return GatewayError(
            403,
            f"requests from a web page (Origin: {origin[:100]}) are refused; list the origin in "
            "gateway.allowed_origins to allow it",
            "permission_error",
            retryable=False,
        )
    host = headers.get("host")
    if settings.auth_token is None and host is not None and not _host_allowed(host, bound):
        return GatewayError(
            403,
            f"Host {host[:100]!r} is not this gateway's address; without gateway.auth_token only "
            "loopback names are accepted (a DNS-rebinding page would use its own name)",
            "permission_error",
            retryable=False,
        )
    if method == "POST":
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype in SIMPLE_TYPES:
            return GatewayError(
                415,
                f"Content-Type {ctype} is not accepted; send application/json",
                "invalid_request_error",
                retryable=False,
            )
    return None


@dataclass
class Refusals:
    """Refused calls: recorded while under `rate` per second (a token bucket with a burst of `rate`), then
    only counted, so a flood of unauthenticated requests costs a counter, not the disk."""

    rate: float
    recorded: int = 0
    counted: int = 0
    """refused and not recorded (over the rate, or not a Messages call)"""
    _tokens: float = field(default=-1.0, repr=False)
    _at: float = field(default=0.0, repr=False)

    def allow(self) -> bool:
        now = time.monotonic()
        if self._tokens < 0:
            self._tokens, self._at = self.rate, now
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            self.recorded += 1
            return True
        self.counted += 1
        return False
