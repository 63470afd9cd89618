"""One service: the store, the gateway and their subscribers, started and stopped together.

`serve` runs a `Service` on its own event loop; the console hosts one in a `ServiceThread`, a thread with an
asyncio loop of its own, so nothing the screen does (a repaint, a slow query, an exception) can delay or stop
a call. Both start and stop it the same way, and both learn what happens through its `bus`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from proxy import loop as loops
from proxy.collector import Policy
from proxy.config import Config, ConfigError
from proxy.edge.server import Gateway, InsecureBind, start, stop
from proxy.exchange.budget import Budget
from proxy.exchange.credentials import Check, all_refused, check_all
from proxy.log import log
from proxy.observe import otel
from proxy.record.events import Bus
from proxy.reports.filelog import FileLogMirror
from proxy.store import RecordStore, StoreError

T = TypeVar("T")

RELOAD_EVERY_S = 1.0
"""how often the config file's modification time is looked at: a changed `[budget]` applies this soon"""

NO_TARGET = (
    "no upstream target is configured: set GEMINI_API_KEY (a Gemini API key, or a service-account key: its "
    "JSON or its file's path; Vertex AI then runs in the key's own project), or start with --config "
    "gatewatch.toml. `gatewatch demo` shows it working without credentials."
)


class ServiceError(Exception):
    """The service can't start; the message says why and what to do. `exit_code` is what `serve` exits with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Service:
    """Owns the start and stop of the store and the gateway, and the bus their events travel on."""

    def __init__(self, config: Config, store: RecordStore, *, insecure: bool = False) -> None:
        self.config = config
        self.store = store
        self.insecure = insecure
        self.bus: Bus = store.bus
        """one bus for the calls and the store's commits: a subscriber sees both"""
        if config.log.file:
            FileLogMirror(config.log.file, config.secrets()).attach(self.bus)
        self.gateway: Gateway | None = None
        self.url = ""
        self.listening_since: float | None = None
        """epoch seconds when the gateway began to accept calls: every call recorded before it is history"""
        self._runner: web.AppRunner | None = None
        self._store_open = False
        self.checks: list[Check] = []
        """each target's credential check at start (ok / refused / unchecked, and what was seen)"""
        self.telemetry: otel.Telemetry | None = None
        self._reloader: asyncio.Task[None] | None = None
        """the OpenTelemetry export (`[otel]`, or OTEL_EXPORTER_OTLP_ENDPOINT with the extra installed)"""
        self.collector = Policy(lambda: self.in_flight > 0)
        """the garbage-collector policy of a process that hosts the gateway (proxy/collector.py)"""

    async def open_store(self) -> None:
        """Become the store's writer. It may replay a crashed writer's journal, so it runs off the loop."""
        if self._store_open:
            return
        try:
            await asyncio.to_thread(self.store.start)
        except StoreError as exc:
            raise ServiceError(str(exc)) from None
        self._store_open = True

    async def start(self) -> str:
        """Open the store and listen; returns the gateway's URL. Raises ServiceError with a message for people."""
        if not self.config.targets:
            raise ServiceError(NO_TARGET, 2)
        await self.open_store()
        try:
            budget = Budget(self.config.budget, self.store, self.bus) if self.config.budget.active else None
            gateway = Gateway(
                self.config,
                bus=self.bus,
                on_record=self.store.submit,
                budget=budget,
                on_telemetry=self.store.submit_telemetry,
            )
        except ConfigError as exc:
            raise ServiceError(f"configuration error:\n{exc}", 2) from None
        gateway.feed.store = self.store.where  # an attached console reads the same history
        gateway.records = self.store.get
        if budget is not None:
            gateway.reports["budget"] = budget.report
            await budget.refresh()  # what a gateway that stopped abruptly left reserved is counted from now
        try:
            export = otel.plan(self.config.otel, os.environ)
        except otel.OtelUnavailable as exc:
            raise ServiceError(str(exc), 2) from None
        # every credential checked before a client can call: a refused one is said now, not in its retries
        self.checks = await check_all(gateway.providers)
        for c in self.checks:
            if c.state == "refused":
                gateway.router.refuse(c.target, c.detail)
            else:
                gateway.router.checked(c.target, c.state == "ok", c.detail)
        refused = all_refused(self.checks)
        if refused:
            raise ServiceError(refused, 2)
        g = self.config.gateway
        try:
            self._runner, port = await start(gateway, g.host, g.port, self.insecure)
        except InsecureBind as exc:
            raise ServiceError(str(exc), 2) from None
        except OSError as exc:
            raise ServiceError(
                f"cannot listen on {g.host}:{g.port}: {exc.strerror}. Another gatewatch (or another program) "
                f"holds the port: stop it, or start with --port {g.port + 1}."
            ) from None
        if export is not None:  # no await since listening began: no call can finish before it subscribes
            self.telemetry = otel.Telemetry(self.bus, export, gateway.served)
            gateway.reports["otel"] = self.telemetry.report
            if gateway.metrics is not None:
                gateway.metrics.registry.register(self.telemetry.collector())
        self.gateway = gateway
        self._reloader = asyncio.create_task(self._watch_config())
        self.collector.start()  # start-up is done: what it allocated is frozen
        gateway.reports["collector"] = self.collector.report
        self.url = f"http://{g.host}:{port}"
        self.listening_since = time.time()
        return self.url

    def target_health(self) -> dict[str, dict[str, Any]]:
        """Each target's circuit state (plain data: a screen on another thread may read it)."""
        return self.gateway.router.health() if self.gateway is not None else {}

    @property
    def in_flight(self) -> int:
        return len(self.gateway.in_flight) if self.gateway is not None else 0

    # -- `[budget]` applied without a restart -------------------------------------------------------------
    def _config_stamp(self) -> tuple[float, int] | None:
        try:
            st = os.stat(self.config.source)
        except OSError:
            return None
        return st.st_mtime, st.st_size

    async def _watch_config(self) -> None:
        """Read the config file again whenever it changes; its `[budget]` applies at once (the rest of it
        needs a restart, which the log says)."""
        if self.config.source in ("defaults", "environment", "test") or self._config_stamp() is None:
            return
        stamp = self._config_stamp()
        while True:
            await asyncio.sleep(RELOAD_EVERY_S)
            now = self._config_stamp()
            if now is None or now == stamp:
                continue
            stamp = now
            await self.reload_budget()

    async def reload_budget(self) -> bool:
        """Apply the config file's `[budget]` now (a file change, or SIGHUP under `serve`). False: the file
        could not be read or is not valid (the budget in force stays, the log says why)."""
        from proxy.config import load

        gateway = self.gateway
        if gateway is None:
            return False
        try:
            fresh = await asyncio.to_thread(load, self.config.source)
        except ConfigError as exc:
            log.warning(
                "config %s changed but can't be used (the budget in force stays): %s", self.config.source, exc
            )
            return False
        new = fresh.budget
        if new == self.config.budget:
            return True
        self.config = self.config.model_copy(update={"budget": new})
        if gateway.budget is not None and new.active:
            gateway.budget.settings = new
        elif new.active:
            gateway.budget = Budget(new, self.store, self.bus)
            gateway.reports["budget"] = gateway.budget.report
        elif gateway.budget is not None:
            gateway.reports.pop("budget", None)
            gateway.budget.close()
            gateway.budget = None
        log.info(
            "budget from %s applied: daily_usd=%s session_usd=%s",
            self.config.source,
            new.daily_usd,
            new.session_usd,
        )
        return True

    async def stop(self) -> None:
        """Stop accepting, let the calls in flight finish (up to `gateway.shutdown_grace`), flush every record."""
        if self._reloader is not None:
            self._reloader.cancel()
            self._reloader = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            if self.gateway is not None:
                await stop(self.gateway, runner)
            else:
                await runner.cleanup()
        await self.collector.stop()
        if self.telemetry is not None:
            telemetry, self.telemetry = self.telemetry, None
            await asyncio.to_thread(telemetry.close)  # bounded: a collector that is down costs CLOSE_WAIT_S
        if self._store_open:
            self._store_open = False
            await asyncio.to_thread(self.store.close)


class ServiceThread:
    """A `Service` on an event loop of its own, in a thread of its own: the console's gateway.

    Calls into the service go through `run()`, which hands a coroutine to the service's loop; the service
    never calls back into its host (it only emits events, whose subscribers must not block).
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        # The host's thread (the console's rendering) and this one share the GIL: the service's collector
        # policy (proxy/collector.py) has it handed over every 1 ms rather than 5.
        self._host = loops.LoopThread("gatewatch-gateway")
        self.loop = self._host.loop

    @property
    def alive(self) -> bool:
        return self._host.alive

    def run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the service's loop; the caller may wait on the future (never from that loop)."""
        return self._host.run(coro)

    def start(self, timeout: float = 60) -> str:
        """Start the service (blocking the calling thread, not the service's loop); returns its URL."""
        return self.run(self.service.start()).result(timeout)

    def open_store(self, timeout: float = 60) -> None:
        self.run(self.service.open_store()).result(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Drain and flush (see `Service.stop`), end whatever else runs on the loop, end the thread."""
        grace = self.service.config.gateway.shutdown_grace
        self._host.stop(self.service.stop, timeout if timeout is not None else grace + 30, join=10)
