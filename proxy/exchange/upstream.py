"""Upstream I/O: the POST with its timeouts, non-200 answers as errors, and bodies read as they arrive.

A streamed body is read in whatever pieces the socket gives (no line limit: one Gemini chunk can hold a
multi-megabyte function call) under one deadline per stream: a single timer that fails the pending read once
nothing arrived in time, moved forward by a float write per frame instead of a timeout context per read.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from proxy.config import GatewaySettings, TargetConfig
from proxy.errors import GatewayError, os_reason

ErrorMapper = Callable[[int, bytes, Mapping[str, str]], GatewayError]
"""(status, body, headers) of a non-200 answer → the error the client gets."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    first_byte: float
    """Until the response headers, and again until the first chunk of a stream."""
    idle: float
    """Between stream chunks."""

    @classmethod
    def of(cls, gateway: GatewaySettings, target: TargetConfig) -> Timeouts:
        """The target's own, else the gateway's."""
        return cls(
            target.connect_timeout or gateway.connect_timeout,
            target.first_byte_timeout or gateway.first_byte_timeout,
            target.idle_timeout or gateway.idle_timeout,
        )


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for a connect timeout (a frozen object: made once, not per call)."""
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect)


async def post(
    session: aiohttp.ClientSession,
    name: str,
    url: str,
    data: bytes,
    headers: Mapping[str, str],
    timeouts: Timeouts,
    on_error: ErrorMapper,
) -> aiohttp.ClientResponse:
    """POST to target `name`; returns a 200 response (the caller releases it) or raises GatewayError."""
    timeout = _client_timeout(timeouts.connect)
    try:
        async with asyncio.timeout(timeouts.first_byte):
            resp = await session.post(url, data=data, headers=headers, timeout=timeout)
    except TimeoutError:
        raise GatewayError(
            504,
            f"upstream target '{name}' sent no response within {timeouts.first_byte:g}s (first_byte_timeout)",
            "overloaded_error",
        ) from None
    except aiohttp.ClientConnectorError as exc:
        raise GatewayError(
            502,
            f"cannot connect to upstream target '{name}' at {exc.host}:{exc.port}: {os_reason(exc.os_error)}",
            "api_error",
            retryable=True,
        ) from None
    except aiohttp.ClientError as exc:
        raise GatewayError(
            502, f"upstream target '{name}' failed: {type(exc).__name__}: {exc}", "api_error", retryable=True
        ) from None
    if resp.status == 200:
        return resp
    try:
        async with asyncio.timeout(timeouts.idle):
            body = await resp.read()
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    finally:
        resp.release()
    err = on_error(resp.status, body, resp.headers)
    err.upstream_status = resp.status
    raise err


async def read_all(resp: aiohttp.ClientResponse, name: str, timeouts: Timeouts) -> bytes:
    """A whole (non-streamed) answer, within the first-byte timeout."""
    try:
        if resp.content.is_eof():  # the whole answer came with its headers: no timer to arm
            return await resp.read()
        async with asyncio.timeout(timeouts.first_byte):
            return await resp.read()
    except TimeoutError:
        raise GatewayError(
            504, f"upstream target '{name}' stalled while sending its answer", "overloaded_error"
        ) from None
    except aiohttp.ClientError as exc:
        raise GatewayError(
            502, f"upstream target '{name}' broke off its answer: {type(exc).__name__}", "api_error"
        ) from None


class Body:
    """A streamed upstream body under one deadline: `first_byte` until the first frame, then `idle` after each.

    Use as a context manager (it owns a timer). `waiting` and `last_frame` tell the pinger when the stream is
    silent.
    """

    def __init__(self, resp: aiohttp.ClientResponse, name: str, timeouts: Timeouts) -> None:
        self._content = resp.content
        self._name = name
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self.first = True
        self.waiting = False
        self.last_frame = self._loop.time()
        self._deadline = self.last_frame + timeouts.first_byte
        self._timer: asyncio.TimerHandle | None = None
        self._clean = True
        """no partial frame is held between reads (a frame the socket delivers whole can be taken as it is)"""

    def __enter__(self) -> Body:
        self._timer = self._loop.call_at(self._deadline, self._check)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if _TAKERS.pop(self._content, None) is not None:
            self._content.__class__ = aiohttp.StreamReader

    def take(self, taker: Callable[[bytes], bool]) -> bool:
        """From now on, a frame that arrives whole while `batches` waits with nothing held (the usual chunk of
        a long answer) is offered to `taker` (its data) as the socket delivers it, before it is queued: taken
        (True), it is done with and `batches` goes on waiting; else it is read as any other. So the usual chunk
        costs a call, not a wake of the reading task through its coroutines and aiohttp's future (bench/
        RESULTS.md, seventh pass). `taker` runs inside aiohttp's protocol: it never waits, and what it raises
        is raised by the waiting read. False (nothing will be offered) where aiohttp's reader is not the one
        this was written against."""
        content = self._content
        if type(content) is not aiohttp.StreamReader or not _OFFERABLE:
            return False
        content.__class__ = _Offering
        _TAKERS[content] = functools.partial(self._offered, taker)
        return True

    def _offered(self, taker: Callable[[bytes], bool], data: bytes) -> bool:
        """`data` as the socket delivered it, the reader waiting with nothing queued: taken by `taker` when it
        is exactly one single-line frame (as `batches`' usual read) and `taker` takes its data."""
        single = _single(data) if self._clean else None
        if single is None:
            return False
        try:
            if not taker(single):
                return False
        except Exception as exc:  # the taker's failure is the reading task's: raised where it waits
            self._content.set_exception(exc)
            return True
        self.advanced()
        return True

    def _check(self) -> None:
        now = self._loop.time()
        if now >= self._deadline:
            if self.waiting:  # silent for the whole allowance while we waited: fail the pending read
                self._content.set_exception(self._stalled())
                self._timer = None
                return
            # the client side held us up (a slow write), not the upstream: give it a full allowance from now
            self._deadline = now + (self._timeouts.first_byte if self.first else self._timeouts.idle)
        self._timer = self._loop.call_at(self._deadline, self._check)

    def _stalled(self) -> GatewayError:
        if self.first:
            what, limit, key = "first chunk", self._timeouts.first_byte, "first_byte_timeout"
        else:
            what, limit, key = "next chunk", self._timeouts.idle, "idle_timeout"
        return GatewayError(
            504,
            f"upstream target '{self._name}' stalled: no {what} within {limit:g}s ({key})",
            "overloaded_error",
        )

    def advanced(self) -> None:
        """A frame arrived: the deadline moves to `idle` from now."""
        self.last_frame = now = self._loop.time()
        self._deadline = now + self._timeouts.idle
        if self.first:  # the only time the deadline may move earlier (idle < first_byte): re-arm the timer
            self.first = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = self._loop.call_at(self._deadline, self._check)

    async def read(self) -> bytes:
        """Whatever has arrived (at least one byte), or b"" at the end."""
        self.waiting = True
        try:
            return await self._content.readany()
        except aiohttp.ClientError as exc:
            raise self._broken(exc) from None
        finally:
            self.waiting = False

    def _broken(self, exc: aiohttp.ClientError) -> GatewayError:
        return GatewayError(
            502, f"upstream target '{self._name}' broke off the stream: {type(exc).__name__}", "api_error"
        )

    async def events(self) -> AsyncIterator[bytes]:
        """The data of each SSE event (its `data:` lines joined), as soon as the frame is complete."""
        async for batch in self.batches():
            for payload in batch:
                yield payload

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """The events' data as `events`, a list per socket read: the frames that arrived together, so that the
        answer to them can go out in one write."""
        buf = b""
        readany = self._content.readany
        while True:
            # `read`, inlined: a stream of hundreds of chunks pays for each coroutine it goes through
            self.waiting = True
            self._clean = not buf
            try:
                data = await readany()
            except aiohttp.ClientError as exc:
                raise self._broken(exc) from None
            finally:
                self.waiting = False
            if not data:
                if buf.strip():
                    payload = _event_data(buf)
                    if payload:
                        self.advanced()
                        yield [payload]
                return
            if not buf:
                single = _single(data)
                if single is not None:  # the usual read: exactly one single-line frame
                    if self.first:
                        self.advanced()
                    else:  # `advanced`, inlined (once per chunk)
                        self.last_frame = now = self._loop.time()
                        self._deadline = now + self._timeouts.idle
                    yield [single]
                    continue
            if b"\r" in data or buf.endswith(b"\r"):  # CRLF framing: normalise (a CR may end one read)
                buf = (buf + data).replace(b"\r\n", b"\n")
                start = 0
            else:
                start = max(0, len(buf) - 1)
                buf = buf + data if buf else data
            if buf.find(b"\n\n", start) < 0:
                continue
            *frames, buf = buf.split(b"\n\n")
            payloads = [p for p in map(_event_data, frames) if p]
            if payloads:
                self.advanced()
                yield payloads


_TAKERS: dict[aiohttp.StreamReader, Callable[[bytes], bool]] = {}
"""the readers whose frames are offered (`Body.take`), and to whom"""
_OFFERABLE = {"_waiter", "_buffer", "_eof", "_exception"} <= set(
    getattr(aiohttp.StreamReader, "__slots__", ())
)
"""aiohttp's reader is the one `_Offering` was written against: its state in these slots"""


class _Offering(aiohttp.StreamReader):
    """aiohttp's reader, a body's frames offered first (`Body.take`). The same object (its class swapped: the
    same slots), so aiohttp's parser, which holds it, feeds it as before."""

    __slots__ = ()

    def feed_data(self, data: bytes, size: int = 0) -> bool:
        # offered only while the reading task waits with nothing queued and no end or error come (and is
        # not being cancelled): so a frame taken here is next in order, and one not taken is queued as it
        # would have been. A taken frame is not counted in `total_bytes` either: aiohttp's end of an HTTP
        # chunk then wakes nobody.
        waiter = self._waiter
        if (
            waiter is not None
            and not waiter.done()
            and not self._buffer
            and not self._eof
            and self._exception is None
        ):
            offer = _TAKERS.get(self)
            if offer is not None and data and offer(data):
                return False
        return super().feed_data(data, size)


def _single(data: bytes) -> bytes | None:
    """The event's data when `data` is exactly one frame of one `data:` line (the usual read of a stream)."""
    if not data.startswith(b"data:"):
        return None
    line = data.rstrip(b"\r\n")
    if len(data) - len(line) in (2, 4) and data.endswith((b"\n\n", b"\r\n\r\n")) and b"\n" not in line:
        return line[5:].lstrip()
    return None


def _event_data(frame: bytes) -> bytes:
    if frame.startswith(b"data:") and b"\n" not in frame:  # the usual frame: one data line
        return frame[5:].lstrip()
    return b"".join(line[5:].lstrip() for line in frame.split(b"\n") if line.startswith(b"data:"))
