"""The feed a console attaches to: `GET /gatewatch` says a gatewatch listens here, `GET /gatewatch/events`
streams what happens on the gateway's bus as server-sent events.

A console opened beside `gatewatch serve` (or beside another console) watches the gateway through this feed and
reads the history from the shared store, read-only; closing it touches nothing on the gateway. Both routes stand
behind the gateway's token when one is set (`/gatewatch` then says only that this is a gatewatch and that it
wants a token).

The feed is a subscriber like any other: it never blocks a call. Each viewer has a bounded queue of frames,
encoded as the events arrive; call events arrive on the gateway's loop, store events on the writer thread (handed
over with `call_soon_threadsafe`). A viewer that falls `QUEUE_MAX` events or `VIEWER_BYTES` behind (one that
stopped reading: its socket full, its writes waiting) is cut off, its connection closed, and reconnects, rather
than growing the gateway's memory; at most `gateway.max_viewers` watch at once. Records travel without their
payloads and headers, and with every configured credential cut out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from proxy import __version__
from proxy.edge import guard
from proxy.errors import GatewayError, invalid_request
from proxy.exchange import messages
from proxy.record import Record, dumps
from proxy.record.events import (
    BudgetCrossed,
    CallFinished,
    CallProgressed,
    CallStarted,
    Event,
    RecordsCommitted,
    RecordsLost,
)
from proxy.store.payloads import scrub

if TYPE_CHECKING:
    from proxy.edge.server import Gateway

IDENTITY_PATH = "/gatewatch"
EVENTS_PATH = "/gatewatch/events"
REPLAY_PATH = "/gatewatch/replay"
"""POST a stored call's client request here, `?of=<its id>&target=<name>[&model=<m>]`: it runs through the
exchange to that target only and is recorded as a new call `replay_of` the original (`gatewatch replay`)"""
QUEUE_MAX = 10_000
VIEWER_BYTES = 4 * 1024 * 1024
"""a viewer's frames waiting to be written, at most: past this it is cut off"""
PING_S = 5.0
"""a comment line this often keeps an idle feed open through proxies and tells the viewer it is alive"""
HIDDEN = frozenset(
    {
        "client_request",
        "upstream_request",
        "upstream_response",
        "response",
        "events",
        "metadata",
        "request_headers",
        "response_headers",
    }
)
"""what a viewer is not sent: the bodies (it reads them from the store when it opens a call) and the headers"""


def record_json(rec: Record, secrets: list[str]) -> bytes:
    try:
        data = dumps(rec.head(HIDDEN))  # pydantic's dump's JSON, without its cost (`Live`)
    except TypeError:
        data = orjson.dumps(rec.model_dump(mode="json", exclude=set(HIDDEN)))
    return scrub(data, secrets)


def frame(kind: str, data: bytes) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


class _Overflow:
    """Put on a viewer's queue when it is full: the stream ends and the viewer reconnects."""


_OVERFLOW = _Overflow()


class EventFeed:
    """The two routes, for one gateway. `store` is the path of the store the gateway writes (set by the
    service), so a viewer reads the same history."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store: str | None = None
        self.viewers = 0
        self.dropped = 0
        """viewers cut off for falling behind"""
        self.buffered = 0
        """bytes of frames waiting for every viewer, together"""
        self._closing: set[asyncio.Event] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(IDENTITY_PATH, self.identity)
        app.router.add_get(EVENTS_PATH, self.events)
        app.router.add_post(REPLAY_PATH, self.replay)
        app.on_shutdown.append(self._close_all)

    def _refused(self, request: web.Request) -> web.Response | None:
        # the same door as the API: a web page (Origin) or a rebinding name (Host) reads no feed either
        gw = self.gateway
        refusal = guard.check(request.method, request.headers, gw.config.gateway, gw.bound_host)
        if refusal is not None:
            gw.refusals.counted += 1
            return messages.error_response(refusal, "")
        if messages.authorized(self.gateway.config.gateway.auth_token, request.headers):
            return None
        err = GatewayError(401, "this gateway requires its token", "authentication_error")
        return messages.error_response(err, "")

    async def identity(self, request: web.Request) -> web.Response:
        """Who listens here. Without the token (when one is set): only that it is a gatewatch."""
        token = self.gateway.config.gateway.auth_token is not None
        body: dict[str, Any] = {"gatewatch": __version__, "events": EVENTS_PATH, "token_required": token}
        refused = self._refused(request)
        if refused is not None and refused.status == 403:
            return refused
        if refused is None:
            body.update(
                pid=os.getpid(),
                store=self.store,
                started_at=self.gateway.started_at,
                viewers=self.viewers,
                # what `gatewatch --attach URL claude` sets Claude Code up from: the caps of *this* gateway
                targets=[
                    {
                        "name": p.name,
                        "provider": p.kind,
                        "model": p.model,
                        "max_tokens": p.target.max_tokens,
                        "client_key": p.target.forwards_client_key,
                    }
                    for p in self.gateway.providers
                ],
                # the caps this gateway enforces: a viewer shows these, not its own directory's config
                budget=self.gateway.config.budget.model_dump(),
            )
        return web.json_response(body)

    async def replay(self, request: web.Request) -> web.StreamResponse:
        """A stored call sent again to a named target, through the same door, token and exchange as any
        call. Only here can a target be forced: /v1/messages routes by model, whatever a client sends."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        q = request.query
        if not q.get("of") or not q.get("target"):
            err = invalid_request(
                "replay: give ?of=<record id>&target=<target name> (and &model=… to override)"
            )
            return messages.error_response(err, "")
        ask = messages.ReplayAsk(q["of"], q["target"], q.get("model") or None)
        return await self.gateway.handle(request, count=False, replay=ask)

    async def events(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        most = self.gateway.config.gateway.max_viewers
        if self.viewers >= most:
            err = GatewayError(
                503,
                f"this gateway has {most} viewers already (gateway.max_viewers); try again when one leaves",
                "overloaded_error",
            )
            return messages.error_response(err, "")
        loop = asyncio.get_running_loop()
        here = threading.get_ident()
        q: asyncio.Queue[bytes | _Overflow] = asyncio.Queue()
        secrets = self.gateway.config.secrets()
        waiting = [0]  # bytes of this viewer's frames in `q`
        cut = [False]

        def put(event: Event) -> None:
            if cut[0]:
                return
            data = _encode(event, secrets)
            if q.qsize() >= QUEUE_MAX or waiting[0] + len(data) > VIEWER_BYTES:
                # fallen behind: cut off now, its connection closed, so a write waiting on its full socket
                # ends too; what it did not read is let go
                cut[0] = True
                self.dropped += 1
                for u in unsubscribe:
                    u()
                self.buffered -= waiting[0]
                waiting[0] = 0
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(_OVERFLOW)
                if request.transport is not None:
                    request.transport.abort()
                return
            waiting[0] += len(data)
            self.buffered += len(data)
            q.put_nowait(data)

        def subscriber(event: Event) -> None:  # never blocks: a queue append, or a hand-over to the loop
            if threading.get_ident() == here:
                put(event)
            else:
                loop.call_soon_threadsafe(put, event)

        bus = self.gateway.bus
        kinds: tuple[type[Any], ...] = (
            CallStarted,
            CallProgressed,
            CallFinished,
            RecordsCommitted,
            RecordsLost,
            BudgetCrossed,
        )
        unsubscribe = [bus.subscribe(k, subscriber) for k in kinds]
        closing = asyncio.Event()
        self._closing.add(closing)
        self.viewers += 1
        resp = web.StreamResponse(
            headers={
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
            }
        )
        try:
            await resp.prepare(request)
            calls = b",".join(record_json(r, secrets) for r in list(self.gateway.in_flight.values()))
            hello = b'{"at":' + orjson.dumps(time.time()) + b',"in_flight":[' + calls + b"]}"
            await resp.write(frame("hello", hello))
            stop = asyncio.ensure_future(closing.wait())
            get: asyncio.Future[bytes | _Overflow] | None = None
            try:
                while True:
                    if get is None:  # one read of the queue at a time, kept across pings
                        get = asyncio.ensure_future(q.get())
                    either: set[asyncio.Future[Any]] = {get, stop}
                    done, _ = await asyncio.wait(either, timeout=PING_S, return_when=asyncio.FIRST_COMPLETED)
                    if stop in done:
                        break
                    if get not in done:
                        await resp.write(b": ping\n\n")
                        continue
                    data = get.result()
                    get = None
                    if isinstance(data, _Overflow):
                        break
                    waiting[0] -= len(data)
                    self.buffered -= len(data)
                    await resp.write(data)
            finally:
                # the viewer left (its handler cancelled mid-wait), was cut off, or the gateway stops: the
                # read still waiting on the queue ends here, awaited, rather than being garbage collected
                # pending ("Task was destroyed but it is pending!" on serve's terminal)
                await _cancelled(get, stop)
        except ConnectionError:
            pass  # the viewer went away, or was cut off
        finally:
            for u in unsubscribe:
                u()
            self.buffered -= waiting[0]
            waiting[0] = 0
            self._closing.discard(closing)
            self.viewers -= 1
        return resp

    async def _close_all(self, app: web.Application) -> None:
        """On shutdown the feeds end at once: a viewer is not a call in flight to wait for."""
        for closing in list(self._closing):
            closing.set()


async def _cancelled(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel `tasks` and wait until each has ended, even when the task awaiting this is being cancelled."""
    live = [t for t in tasks if t is not None and not t.done()]
    for t in live:
        t.cancel()
    if live:
        # shielded: a second cancellation of the handler must not leave them pending either
        await asyncio.shield(asyncio.gather(*live, return_exceptions=True))


def _encode(event: Event, secrets: list[str]) -> bytes:
    if isinstance(event, CallStarted):
        return frame("started", record_json(event.record, secrets))
    if isinstance(event, CallProgressed):
        return frame("progress", record_json(event.record, secrets))
    if isinstance(event, CallFinished):
        return frame("finished", record_json(event.record, secrets))
    if isinstance(event, RecordsCommitted):
        return frame("committed", orjson.dumps({"ids": [r.id for r in event.records]}))
    if isinstance(event, BudgetCrossed):
        return frame("budget", orjson.dumps(dataclasses.asdict(event)))
    return frame(
        "lost",
        scrub(orjson.dumps({"count": event.count, "total": event.total, "error": event.error}), secrets),
    )
