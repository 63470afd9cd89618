"""The console as a viewer of a gateway that runs elsewhere (`gatewatch serve`, or another console).

`discover` asks the configured address whether a gatewatch listens there (`GET /gatewatch`); `Attached` then
stands where the console's own gateway would: it follows the gateway's event feed (`GET /gatewatch/events`, SSE)
on a thread and event loop of its own, and re-emits each event on a local `Bus`, so the console's `Feed` takes
them exactly as it takes its own gateway's. The history comes from the shared store, read-only. Closing a viewer
closes its connection and nothing else: the gateway goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import orjson
from pydantic import SecretStr

from console.host import Door, Target, Words
from proxy import config as cfg
from proxy import loop as loops
from proxy.edge.feed import EVENTS_PATH, IDENTITY_PATH
from proxy.record import Record
from proxy.record.events import BudgetCrossed, Bus, CallFinished, CallStarted, RecordsCommitted, RecordsLost
from proxy.service import ServiceError

T = TypeVar("T")

PROBE_TIMEOUT_S = 1.0
RECONNECT_S = 1.0
HEALTH_EVERY_S = 1.0


def _headers(token: SecretStr | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}


def local_url(config: cfg.Config) -> str:
    """Where this config's gateway listens, as a client reaches it."""
    host = config.gateway.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{config.gateway.port}"


def probe(
    url: str, token: SecretStr | None = None, timeout: float = PROBE_TIMEOUT_S
) -> dict[str, Any] | None:
    """What the gatewatch at `url` says of itself, or None when no gatewatch answers there."""
    req = urllib.request.Request(url.rstrip("/") + IDENTITY_PATH, headers=_headers(token))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (an http URL we built)
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) and "gatewatch" in body else None


def discover(config: cfg.Config) -> str | None:
    """The URL of a gatewatch already listening where this config would listen, if one is."""
    if not config.gateway.port:
        return None  # port 0: a fresh port each time, nothing to find
    url = local_url(config)
    return url if probe(url, config.gateway.auth_token) is not None else None


class Attached:
    """A gateway elsewhere, watched: a `Host` (console/host.py), so the screens treat it as the one they host."""

    words = Words("attached to", "attached to ", "closing this console leaves that gateway running")

    def __init__(self, url: str, token: SecretStr | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.bus = Bus()
        self.identity: dict[str, Any] = {}
        self.targets: list[dict[str, Any]] = []
        self.generation = 0
        """counts what the gateway said of itself (identify): a console redraws its targets when it changes"""
        self.connected = False
        self.problem: str | None = None
        """why the feed is down right now (the console shows it), None while it flows"""
        self._health: dict[str, dict[str, Any]] = {}
        self._in_flight: dict[str, Record] = {}
        self._host = loops.LoopThread("gatewatch-viewer")
        self.loop = self._host.loop
        self._following = False
        self._stopping: asyncio.Event | None = None

    # -- what the console asks of a host --------------------------------------------------------------------
    def open_store(self, timeout: float = 60) -> None:
        """A viewer never writes: the gateway's process is the store's writer."""

    def identify(self, timeout: float = 10) -> dict[str, Any]:
        """Ask the gateway who it is (its store, its targets). ServiceError when no gatewatch answers, or
        when it wants a token we don't have."""
        identity = probe(self.url, self.token, timeout)
        if identity is None:
            raise ServiceError(f"no gatewatch answers at {self.url}{IDENTITY_PATH}: is it running?")
        if identity.get("token_required") and "store" not in identity:
            raise ServiceError(
                f"the gatewatch at {self.url} wants its token: set GATEWATCH_TOKEN (or gateway.auth_token) "
                "to the one it was started with"
            )
        self.identity = identity
        self.targets = list(identity.get("targets") or [])
        self.generation += 1
        return identity

    @property
    def budget(self) -> cfg.BudgetSettings:
        """The caps the gateway enforces (from its identity), not those of this console's own config."""
        try:
            return cfg.BudgetSettings.model_validate(self.identity.get("budget") or {})
        except ValueError:
            return cfg.BudgetSettings()

    def start(self, timeout: float = 10) -> str:
        """Follow the gateway's feed (once; the console calls this when it is ready to take events)."""
        if not self.identity:
            self.identify(timeout)
        if not self._following:
            self._following = True
            self.run(self._follow())
            self.run(self._poll_health())
        return self.url

    def run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return self._host.run(coro)

    def stop(self, timeout: float | None = None) -> None:
        """Close the feed (its tasks are cancelled and close their connections); the gateway is not told
        anything and goes on."""
        try:
            self._host.stop(_nothing, timeout if timeout is not None else 10, join=5)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            pass  # ended anyway: the thread is a daemon

    def target_list(self) -> list[Target]:
        """(name, provider, model) of the gateway's targets, as it told us."""
        return [(t.get("name", "?"), t.get("provider", "?"), t.get("model", "?")) for t in self.targets]

    def ready(self) -> None:
        """Nothing waits here for the console: the gateway's traffic is its clients'."""

    def paste_model(self) -> str | None:
        """The watched gateway's first model: the hint must not name one of this directory's config."""
        targets = self.target_list()
        return targets[0][2] if targets else None

    def what_if_models(self) -> list[str]:
        return [model for _, _, model in self.target_list()]

    def door(self, get: Callable[[str], Record | None]) -> Door:
        """Replays go through the watched gateway, with its targets."""
        return Door(self.url, self.token, get, [name for name, _, _ in self.target_list()])

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def target_health(self) -> dict[str, dict[str, Any]]:
        return dict(self._health)

    async def _follow(self) -> None:
        """Follow the feed for good: a dropped connection is retried every RECONNECT_S."""
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.get(self.url + EVENTS_PATH, headers=_headers(self.token)) as resp:
                        if resp.status != 200:
                            self.problem = f"the feed answered {resp.status}: {(await resp.text())[:200]}"
                        else:
                            await self._read(resp)
                            self.problem = f"{self.url} closed the feed (gateway stopped?)"
                except (aiohttp.ClientError, OSError):
                    self.problem = f"no gateway answers at {self.url}"
                self.connected = False
                await asyncio.sleep(RECONNECT_S)

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        kind, data = "", b""
        async for raw in resp.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"event: "):
                kind = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
            elif not line and kind:
                self._take(kind, data)
                kind, data = "", b""

    def _take(self, kind: str, data: bytes) -> None:
        body = orjson.loads(data)
        if kind == "hello":
            if self.problem is not None:  # back after a drop: maybe another gateway, with other targets
                with contextlib.suppress(ServiceError):
                    self.identify(PROBE_TIMEOUT_S)
            self.connected, self.problem = True, None
            now = {r["id"]: Record.model_validate(r) for r in body.get("in_flight", [])}
            for rid in [rid for rid in self._in_flight if rid not in now]:
                # ended while we were away: the store has it; here it only leaves the in-flight list
                self.bus.emit(CallFinished(self._in_flight.pop(rid)))
            for rec in now.values():
                self._in_flight[rec.id] = rec
                self.bus.emit(CallStarted(rec))
        elif kind in ("started", "progress"):
            rec = Record.model_validate(body)
            self._in_flight[rec.id] = rec
            self.bus.emit(CallStarted(rec))  # the console keeps the newest state of a call in flight
        elif kind == "finished":
            rec = Record.model_validate(body)
            self._in_flight.pop(rec.id, None)
            self.bus.emit(CallFinished(rec))
        elif kind == "committed":
            self.bus.emit(RecordsCommitted(()))
        elif kind == "lost":
            self.bus.emit(RecordsLost(body["count"], body["total"], body["error"]))
        elif kind == "budget":  # the warning and refusals reach a viewer's screen too
            self.bus.emit(BudgetCrossed(**body))

    async def _poll_health(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.get(self.url + "/health", headers=_headers(self.token)) as resp:
                        if resp.status == 200:
                            body = await resp.json()
                            self._health = {
                                t["name"]: {
                                    k: v
                                    for k, v in t.items()
                                    if k not in ("name", "provider", "model", "host")
                                }
                                for t in body.get("targets", [])
                            }
                except (aiohttp.ClientError, OSError, ValueError, asyncio.TimeoutError):
                    pass  # the feed's own state says whether the gateway is there
                await asyncio.sleep(HEALTH_EVERY_S)


async def _nothing() -> None:
    """The viewer has nothing to flush before its tasks are cancelled."""
