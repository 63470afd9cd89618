"""The aiohttp wiring: routes, dispatch, `/health`, the call's life from arrival to record, and `start`."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from proxy import providers, registry
from proxy.config import Config
from proxy.edge import guard, models_api, telemetry
from proxy.edge.feed import EventFeed
from proxy.edge.protocol import ConnectionStats, Limits, Runner
from proxy.errors import GatewayError, invalid_request
from proxy.exchange import budget as budgets
from proxy.exchange import messages
from proxy.exchange.attempts import Exchange
from proxy.exchange.budget import Budget
from proxy.exchange.recorder import Call, new_id
from proxy.exchange.routing import Router
from proxy.log import log
from proxy.observe.metrics import CONTENT_TYPE, Metrics
from proxy.providers.served import Served
from proxy.record import Record, pricing
from proxy.record.events import Bus, CallFinished, CallStarted
from proxy.translate.signatures import Signatures

REPLAY_LOOKUP_S = 2.0
"""how long a replay waits for its original's record when no budget says otherwise"""


class Gateway:
    """One gateway: its config, its targets and router, its upstream session. `app()` gives the aiohttp app.

    Events go to `bus` (CallStarted on arrival, CallProgressed when someone listens, CallFinished after
    `on_record` took the record); `on_record` hands each finished record to the store.
    """

    def __init__(
        self,
        config: Config,
        bus: Bus | None = None,
        on_record: Callable[[Record], None] | None = None,
        budget: Budget | None = None,
        on_telemetry: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.config = config
        self.on_telemetry = on_telemetry
        """Claude Code's telemetry events (`POST /v1/logs`) go here: the store's `submit_telemetry`"""
        self.budget = budget
        """refuses calls over a cap (`[budget]`); None: no budget"""
        self.bus = bus if bus is not None else Bus()
        self.on_record = on_record
        self.providers = [providers.make(t) for t in config.targets]
        for p in self.providers:  # each target's rates read from the price library now, not on a first call
            pricing.rated_cost(p.model, 1, 0, 0, 0, provider=registry.pricing_id(p.kind))
        self.router = Router(self.providers, config.balancer, config.routes)
        self.served = Served(t.model for t in config.targets)
        """the model names a replay may ask for and a metric may carry (others fold into `other`)"""
        self.signatures = Signatures()
        self.exchange = Exchange(config.gateway, self.router, self.signatures)
        self._variants: dict[tuple[str, str], providers.Provider] = {}
        """targets at another model, made for replays (`replay_provider`)"""
        self.session: aiohttp.ClientSession | None = None
        self.in_flight: dict[str, Record] = {}
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        """the handler of each call in flight, so a shutdown past its grace can end them with an error"""
        self.started_at = time.time()
        self.stopping = False
        """set by `stop`: from then on a request on a kept-alive connection is refused, not served"""
        self.bound_host = config.gateway.host
        """the address listened on (set by `start`): the one `Host` besides loopback names let in"""
        self.refusals = guard.Refusals(config.gateway.refused_records_per_s)
        self.connections = ConnectionStats()
        self.unrecorded = 0
        """records the store would not take (counted as lost; the store says why in its log)"""
        self.feed = EventFeed(self)
        """`GET /gatewatch` and `/gatewatch/events`: what an attached console watches"""
        self.metrics = (
            Metrics(
                self.bus,
                in_flight=lambda: len(self.in_flight),
                unrecorded=lambda: self.unrecorded,
                targets=self.router.health,
                served=self.served,
                spend=lambda: self.budget.known_spend() if self.budget is not None else {},
            )
            if config.gateway.metrics
            else None
        )
        """`GET /metrics`: Prometheus counters fed by the bus (None: `gateway.metrics = false`)"""
        self.records: Callable[[str], Record | None] | None = None
        """the store's `get` (set by the service): a replay's original, for its session"""
        self.reports: dict[str, Callable[[], Any]] = {}
        if budget is not None:
            self.reports["budget"] = budget.report
        """other parts' figures in `/health`, by name (the OpenTelemetry export's `otel`)"""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.gateway.max_body_bytes)
        app.cleanup_ctx.append(self._session_ctx)
        app.on_response_prepare.append(_request_id)
        self.feed.add_routes(app)  # before the catch-all
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

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        m = messages.PATH.match(path)
        refusal = guard.check(method, request.headers, self.config.gateway, self.bound_host)
        if refusal is not None:
            if m is not None and method == "POST":
                return self.refuse(request, refusal, count=bool(m.group("count")))
            self.refusals.counted += 1
            return messages.error_response(refusal, "")
        if self.stopping and m is not None and method == "POST":
            # closing the listener stops new connections only: a client that keeps its connection alive
            # (Claude Code, the SDKs) would otherwise keep the drain going call after call
            err = GatewayError(503, "gatewatch is shutting down; this call was not taken", "api_error")
            resp = self.refuse(request, err, count=bool(m.group("count")))
            resp.force_close()
            return resp
        if method == "HEAD" and path in ("/", ""):
            return web.Response(status=200)  # Claude Code probes the base URL
        if path == "/health" and method == "GET":
            if not messages.authorized(self.config.gateway.auth_token, request.headers):
                err = GatewayError(401, "this gateway requires its token", "authentication_error")
                return messages.error_response(err, "")
            # a draining replica, or one whose every target is cooling or refused ("down"), says so with 503,
            # so a load balancer's health check takes it out of rotation
            body = self.health()
            return web.json_response(body, status=503 if body["status"] in ("stopping", "down") else 200)
        if path == "/metrics" and method == "GET" and self.metrics is not None:
            if not messages.authorized(self.config.gateway.auth_token, request.headers):
                err = GatewayError(401, "this gateway requires its token", "authentication_error")
                return messages.error_response(err, "")
            scraped = await self.metrics.scrape()
            return web.Response(body=scraped, headers={"Content-Type": CONTENT_TYPE})
        if path in telemetry.PATHS and method == "POST":
            # Claude Code's OTLP export, pointed at the gateway: behind the same token as every route
            if not messages.authorized(self.config.gateway.auth_token, request.headers):
                err = GatewayError(401, "this gateway requires its token", "authentication_error")
                return messages.error_response(err, "")
            return await telemetry.receive(request, self.config.gateway.log_payloads, self.on_telemetry)
        if method == "GET" and (models := models_api.PATH.match(path)) is not None:
            return self.models(request, models.group("id"))
        if m is None:
            return messages.error_response(
                GatewayError(404, f"no route for {method} {path}", "not_found_error"), ""
            )
        if method != "POST":
            return messages.error_response(
                GatewayError(405, f"{method} is not allowed on {path}; use POST", "invalid_request_error"), ""
            )
        return await self.handle(request, count=bool(m.group("count")))

    def models(self, request: web.Request, model_id: str | None) -> web.Response:
        """Anthropic's Models API over the targets (proxy/edge/models_api.py)."""
        if not messages.authorized(self.config.gateway.auth_token, request.headers):
            err = GatewayError(401, "this gateway requires its token", "authentication_error")
            return messages.error_response(err, "")
        try:
            body = (
                models_api.one(self.config, model_id)
                if model_id
                else models_api.page(self.config, request.query)
            )
        except GatewayError as err:
            return messages.error_response(err, "")
        return web.json_response(body)

    def health(self) -> dict[str, Any]:
        states = self.router.health()
        cooling = [n for n, st in states.items() if st["state"] != "ok"]
        return {
            "status": "stopping"
            if self.stopping
            else "down"
            if cooling and len(cooling) == len(states)
            else "degraded"
            if cooling or (self.budget is not None and self.budget.unreadable is not None)
            else "ok",
            "uptime_s": round(time.time() - self.started_at, 1),
            "in_flight": len(self.in_flight),
            "refused": {"recorded": self.refusals.recorded, "counted_only": self.refusals.counted},
            "connections": {
                "header_timeouts": self.connections.header_timeouts,
                "idle_closed": self.connections.idle_closed,
                "rejected_by_parser": self.connections.rejected,
            },
            "unrecorded": self.unrecorded,
            **{name: report() for name, report in self.reports.items()},
            "targets": [
                {"name": p.name, "provider": p.kind, "model": p.model, "host": p.where()[2], **states[p.name]}
                for p in self.providers
            ],
        }

    def refuse(self, request: web.Request, err: GatewayError, count: bool) -> web.Response:
        """A call refused at the door: answered, and recorded (headers cut short) while refusals stay under
        `gateway.refused_records_per_s`; past that only counted."""
        if not self.refusals.allow():
            return messages.error_response(err, "")
        call = Call(request, count, False, self.bus)
        resp = messages.error_response(err, call.id)
        call.refused(err, resp)
        self.bus.emit(CallStarted(call.record))
        self._finish(call, resp)
        return resp

    def _finish(self, call: Call, resp: web.StreamResponse | None) -> None:
        rec = call.record
        target = self.router.by_name.get(rec.target or "")
        if rec.replay_of is not None and rec.tried_targets:  # a replay at another model: that model's prices
            target = self._variants.get((rec.target or "", rec.tried_targets[-1].model), target)
        call.close(resp, target.target if target is not None else None)
        if self.on_record is not None:
            # on the loop on purpose: the store's submit is cheap and benchmarked (see store.py)
            try:
                self.on_record(rec)
            except Exception:
                self.unrecorded += 1
                log.exception("recording %s failed; counted as lost", rec.id)
        self.bus.emit(CallFinished(rec))

    def replay_provider(self, ask: messages.ReplayAsk) -> providers.Provider:
        """The target a replay names, at the model it asks for (a variant of the target, its credential
        shared, kept for the next replay). An unknown name is the caller's error."""
        p = self.router.by_name.get(ask.target)
        if p is None:
            names = ", ".join(self.router.by_name) or "none"
            raise invalid_request(f"replay: this gateway has no target {ask.target!r} (targets: {names})")
        if not ask.model or ask.model == p.model:
            return p
        if not self.served.replayable(ask.model):
            # the model goes into the upstream URL: one a target serves or the price table names, nothing else
            raise invalid_request(
                f"replay: model {ask.model[:100]!r} is not one this gateway serves: give a target's model "
                f"({', '.join(sorted(self.served.models)) or 'none'}) or a model the price table knows, "
                "written as one name of letters, digits, '.', '_', '@' and '-'"
            )
        key = (p.name, ask.model)
        variant = self._variants.get(key)
        if variant is None:
            # the target's own prices (`input_cost`…) are its model's: another model is priced by the library
            own = dict.fromkeys(("input_cost", "output_cost", "cached_cost", "cache_write_cost"))
            variant = providers.make(p.target.model_copy(update={"model": ask.model, **own}))
            if hasattr(p, "tokens"):  # a service account's tokens: one source, not a second minting
                setattr(variant, "tokens", p.tokens)  # noqa: B010 (only some providers have tokens)
            self._variants[key] = variant
        return variant

    async def _replayed_session(self, call: Call, original_id: str) -> None:
        """A replay spends its original's session's money: it takes that session (read from the store, waited
        for no longer than the budget waits for it), whatever the body it sends says."""
        if self.records is None:
            return
        wait = self.budget.wait if self.budget is not None else REPLAY_LOOKUP_S
        try:
            original = await asyncio.wait_for(asyncio.to_thread(self.records, original_id), wait)
        except Exception as exc:  # noqa: BLE001 (a store that fails or stalls: the body's session stands)
            log.warning("replay of %s: its record could not be read (%s)", original_id, exc)
            return
        if original is not None:
            call.record.session_id = original.session_id

    async def handle(
        self, request: web.Request, count: bool, replay: messages.ReplayAsk | None = None
    ) -> web.StreamResponse:
        """One call, from arrival to its record: whatever happens, the client gets an answer in Anthropic's
        shape and the store gets a record. `replay`: a stored call sent again to the target it names (only
        `POST /gatewatch/replay` passes one: no header on /v1/messages can force a target)."""
        auth = messages.auth_error(self.config.gateway.auth_token, request.headers)
        if auth is not None:
            return self.refuse(request, auth, count)
        call = Call(request, count, self.config.gateway.log_payloads, self.bus)
        rec = call.record
        if replay is not None:
            call.replaying(replay.of)
        self.in_flight[rec.id] = rec
        task = asyncio.current_task()
        if task is not None:
            self.tasks[rec.id] = task
        self.bus.emit(CallStarted(rec))
        resp: web.StreamResponse | None = None
        try:
            try:
                inbound = await messages.accept(request, self.config.gateway, call, count)
                only = self.replay_provider(replay) if replay is not None else None
                if replay is not None:
                    await self._replayed_session(call, replay.of)
                if self.budget is not None and not count:
                    # reserved before it is served: the dearest target that may serve it, at max_tokens
                    may_serve = (
                        [only]
                        if only is not None
                        else [p for ps in self.router.pool(inbound.model) for p in ps]
                    )
                    est = budgets.estimate(
                        len(inbound.raw), _max_tokens(inbound.body), may_serve, inbound.model
                    )
                    await self.budget.admit(rec.id, rec.session_id, rec.started_at, est)
                assert self.session is not None
                resp = await self.exchange.run(inbound, call, self.session, only)
            except GatewayError as err:
                resp = messages.error_response(err, rec.id)
                call.failed(err, resp)
            return resp
        except asyncio.CancelledError as exc:
            if not messages.is_shutdown(exc) or resp is not None:
                call.cancelled()
                raise
            # past shutdown_grace, before any answer: an error the client can retry elsewhere
            _uncancel()
            cut = messages.shutting_down()
            resp = messages.error_response(cut, rec.id)
            call.failed(cut, resp)
            return resp
        except Exception as exc:  # a bug must still give the client an Anthropic error and leave a record
            log.exception("unexpected error in %s", rec.id)
            bug = GatewayError(500, f"gatewatch internal error: {type(exc).__name__}", "api_error")
            resp = messages.error_response(bug, rec.id)
            call.failed(bug, resp)
            return resp
        finally:
            self.in_flight.pop(rec.id, None)
            self.tasks.pop(rec.id, None)
            self._finish(call, resp)

    async def drain(self, grace: float) -> None:
        """Let the calls in flight finish for up to `grace` seconds, then end the rest: a stream gets an SSE
        `error` event and its end, a call not yet answered a 529; every one keeps its record."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.tasks and loop.time() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        left = list(self.tasks.values())
        for t in left:
            t.cancel(messages.SHUTDOWN)
        if left:
            await asyncio.wait(left, timeout=5)


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries a `request-id`, as Anthropic's do (a call's own is set where it is answered)."""
    if "request-id" not in response.headers:
        response.headers["request-id"] = "req_" + new_id()


def is_loopback(host: str) -> bool:
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
    g = gateway.config.gateway
    # handler_cancellation: a client that disconnects cancels its handler, and so its upstream call.
    runner = Runner(
        gateway.app(),
        Limits(g.header_timeout, g.max_idle_connections),
        gateway.connections,
        handler_cancellation=True,
        access_log=None,
        keepalive_timeout=g.keepalive_timeout,
        shutdown_timeout=g.shutdown_grace,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:  # a busy port: the app's upstream session (made by setup) is closed, not leaked
        await runner.cleanup()
        raise
    gateway.bound_host = host
    bound: int = runner.addresses[0][1]
    return runner, bound


async def stop(gateway: Gateway, runner: web.AppRunner) -> None:
    """Stop listening, drain the calls in flight for `shutdown_grace` (then end them with an error), close.
    New calls on connections already open are refused meanwhile."""
    gateway.stopping = True
    for site in list(runner.sites):
        await site.stop()
    await gateway.drain(gateway.config.gateway.shutdown_grace)
    await runner.cleanup()
    # the gateway's subscribers leave the bus: a bus outlives its gateway (the store's, in a Service)
    if gateway.metrics is not None:
        gateway.metrics.close()
    if gateway.budget is not None:
        gateway.budget.close()
