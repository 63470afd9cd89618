"""The connection level, below the handler: a header-read timeout, a cap on connections waiting for a
request, and aiohttp's own rejections (bad chunking, oversized headers, Content-Length with
Transfer-Encoding) answered in Anthropic's error shape and counted.

aiohttp times out none of these by itself: a connection that sends half a request line lives until the
keep-alive timeout, and its parser's errors are answered in plain text. `Runner` is an `AppRunner` whose
server makes `Connection`s, aiohttp's `RequestHandler` with those three additions.
"""

from __future__ import annotations

import asyncio
import fcntl
import sys
import termios
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

IDLE_MIN_S = 2.0
"""A connection waiting less than this is never closed to make room."""
SCAN_EVERY_S = 0.1
"""At most one look for idle connections to close per this many seconds."""


@dataclass
class ConnectionStats:
    header_timeouts: int = 0
    """connections cut off because their request headers took longer than `header_timeout`"""
    idle_closed: int = 0
    """connections waiting for a request closed because more than `max_idle_connections` waited"""
    rejected: int = 0
    """requests aiohttp's parser refused (answered 4xx in Anthropic's shape, never reaching the handler)"""


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    max_idle: int


def error_body(status: int, message: str) -> bytes:
    from proxy.exchange.recorder import new_id  # the request id's shape, one place

    etype = "request_too_large" if status == 413 else "invalid_request_error" if status < 500 else "api_error"
    return orjson.dumps(
        {"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_" + new_id()}
    )


class Connection(RequestHandler):
    """One client connection (aiohttp's handler) with a header deadline and Anthropic-shaped rejections."""

    _gw_timer: asyncio.TimerHandle | None = None
    _gw_since = 0.0
    """loop time of the connection, or of its last request's headers"""

    def _gw_server(self) -> GuardedServer | None:
        m = self._manager
        return m if isinstance(m, GuardedServer) else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self._gw_server()
        if server is None:
            return
        self._gw_since = self._loop.time()
        self._arm(server)
        server.close_idle(self)

    def _idle(self) -> bool:
        """Waiting for a request (none parsed and none being handled)."""
        return not self._request_in_progress and not self._messages

    def _idle_for(self, now: float) -> float:
        """How long it has waited for a request; 0 when one is being handled, or when bytes sit unread in
        the socket (a busy loop has not read them yet: that client is not idle, the gateway is slow)."""
        if not self._idle() or now - self._gw_since < IDLE_MIN_S or self._unread():
            return 0.0
        return now - self._gw_since

    def _unread(self) -> bool:
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return False
        try:
            buf = bytearray(4)
            fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
        except (OSError, ValueError):
            return False
        return int.from_bytes(buf, sys.byteorder) > 0

    def _arm(self, server: GuardedServer) -> None:
        if self._gw_timer is None:
            self._gw_timer = self._loop.call_later(server.limits.header_timeout, self._header_deadline)

    def _disarm(self) -> None:
        if self._gw_timer is not None:
            self._gw_timer.cancel()
            self._gw_timer = None

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        server = self._gw_server()
        if server is None:
            return
        if self._request_count != before:  # a request's headers are complete
            self._gw_since = self._loop.time()
            self._disarm()
        elif self._idle():  # the first bytes of the next request on a kept-alive connection
            self._arm(server)

    def _header_deadline(self) -> None:
        self._gw_timer = None
        server = self._gw_server()
        if server is None or not self._idle() or self.transport is None:
            return
        if self._unread():  # the headers are here, the loop has not read them yet: not the client's fault
            self._arm(server)
            return
        server.stats.header_timeouts += 1
        t = server.limits.header_timeout
        body = error_body(408, f"the request headers did not arrive within {t:g}s (gateway.header_timeout)")
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's rejections (and a handler's escaped exception) in Anthropic's error shape, counted and
        logged at debug level only (a client sending junk must not fill the log)."""
        if request.writer.output_size > 0:  # as aiohttp's own: the answer has begun, the connection is broken
            raise ConnectionError("the response has begun; cannot send an error response")
        server = self._gw_server()
        if server is not None:
            server.stats.rejected += 1
        if status >= 500:
            self.log_exception("error handling a request from %s", request.remote, exc_info=exc)
        else:
            self.log_debug("refused a malformed request from %s: %s", request.remote, message)
        text = message or (HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "")
        out = web.Response(
            status=status,
            body=error_body(
                status, f"malformed request: {text}" if status < 500 else "gatewatch internal error"
            ),
            content_type="application/json",
        )
        out.force_close()
        return out


class GuardedServer(Server):
    """aiohttp's server making `Connection`s; holds the limits and the counts."""

    limits: Limits
    stats: ConnectionStats
    _scanned = float("-inf")

    def __call__(self) -> RequestHandler:
        return Connection(self, loop=self._loop, **self._kwargs)

    def close_idle(self, newcomer: RequestHandler) -> None:
        """More than `max_idle` connections waiting for a request: close those that waited longest (half-open
        slow-header connections among them), never one younger than IDLE_MIN_S (a burst of real clients
        connects all at once) nor the one that just arrived."""
        if len(self._connections) <= self.limits.max_idle:
            return
        now = self._loop.time()
        if now - self._scanned < SCAN_EVERY_S:  # a burst of connections costs one scan, not one each
            return
        self._scanned = now
        idle = sorted(
            (c._idle_for(now), id(c), c)
            for c in self._connections
            if c is not newcomer and isinstance(c, Connection) and c._idle_for(now) >= IDLE_MIN_S
        )
        excess = len(idle) + 1 - self.limits.max_idle
        for _, _, c in reversed(idle[len(idle) - max(0, excess) :] if excess > 0 else []):
            self.stats.idle_closed += 1
            c.force_close()


class Runner(web.AppRunner):
    """An `AppRunner` whose server is a `GuardedServer`."""

    def __init__(self, app: web.Application, limits: Limits, stats: ConnectionStats, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits
        self._stats = stats

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = (
            GuardedServer  # the same object, making `Connection`s (aiohttp has no factory hook)
        )
        assert isinstance(server, GuardedServer)
        server.limits, server.stats = self._limits, self._stats
        return server
