"""Which targets serve a call, in which order: routes by model, the balancer, and a circuit breaker."""

from __future__ import annotations

import fnmatch
import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

from proxy.config import BalancerSettings, RouteConfig
from proxy.exchange import discovery
from proxy.providers import Provider

EWMA = 0.3  # weight of the newest latency in lowest-latency's running average
SESSIONS_KEPT = 50_000
"""sessions whose target is remembered (a replica restart forgets them: a session may then move once)"""
POOLS_KEPT = 1024
"""models whose pool is remembered (`Router.pool`): a client's model strings can't grow it without bound"""


@dataclass
class TargetState:
    calls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    cooled_until: float = 0.0
    latency_ms: float | None = None
    tokens: int = 0
    in_flight: int = 0
    current_weight: float = 0.0  # smooth weighted round-robin
    refused: str | None = None
    """why the target's credential was refused at start (tried last until a call through it succeeds)"""
    credential: str = "not checked"
    """what is known of the credential: "ok" (accepted at start, or a call through it succeeded), "unchecked:
    why" (the check had no answer to judge by), or "not checked" (no check ran)"""

    def cooled(self, now: float) -> bool:
        return self.cooled_until > now


class Router:
    def __init__(
        self, providers: Sequence[Provider], balancer: BalancerSettings, routes: Sequence[RouteConfig]
    ):
        self.providers = list(providers)
        self.by_name = {p.name: p for p in self.providers}
        self.balancer = balancer
        self.routes = list(routes)
        self.discovery = discovery.ids(self.providers, self.routes)
        """the `claude-gw-…` ids `GET /v1/models` offers: each names a target or a route"""
        self.state = {p.name: TargetState() for p in self.providers}
        self._rr = itertools.count()
        self.sessions: OrderedDict[tuple[str, str], str] = OrderedDict()
        """(Claude Code session, model asked) → the target that answered it last; least recent dropped first"""
        self._pools: dict[str, tuple[list[Provider], list[Provider]]] = {}
        """`pool` by model: it depends on the targets and routes only, fixed for the router's life (a new
        config makes a new gateway, and so a new router); forgotten whole past POOLS_KEPT models"""

    # -- choosing ------------------------------------------------------------------------------------------
    def pool(self, model: str) -> tuple[list[Provider], list[Provider]]:
        """Targets eligible for a requested model, before ordering: (those that serve it, the fallback).

        A discovery id (`claude-gw-…`, proxy/exchange/discovery.py) names its target or route. A model that names a
        target's model (or name) goes to those targets first, then to targets no route reserves; a model a route
        matches goes to the route's targets only; anything else to the targets no route reserves (all of them
        when every target is reserved). A route's targets never serve another model, fallback included.
        The lists are shared by every call for the model: read them, never change them."""
        pools = self._pools.get(model)
        if pools is None:
            if len(self._pools) >= POOLS_KEPT:
                self._pools.clear()
            pools = self._pools[model] = self._pool(model)
        return pools

    def _pool(self, model: str) -> tuple[list[Provider], list[Provider]]:
        kind, i = self.discovery.get(model.lower(), ("", -1))
        if kind == "route":
            return [self.by_name[n] for n in self.routes[i].targets], []
        named = self.providers[i] if kind == "target" else None
        routed = {n for r in self.routes for n in r.targets}
        direct = [p for p in self.providers if p is named or p.model == model or p.name == model]
        if direct:
            return direct, [p for p in self.providers if p not in direct and p.name not in routed]
        for r in self.routes:
            if fnmatch.fnmatchcase(model.lower(), r.model.lower()):
                return [self.by_name[n] for n in r.targets], []
        rest = [p for p in self.providers if p.name not in routed]
        return [], rest or list(self.providers)

    def candidates(self, model: str, now: float | None = None, session: str | None = None) -> list[Provider]:
        """Targets to try in order: those serving the model asked for before the fallback, healthy ones by the
        balancer, cooled-down ones after them, refused ones last. A Claude Code `session` stays on the target
        it started on (its thought signatures are that target's) while that target is healthy."""
        now = time.monotonic() if now is None else now
        first, rest = self.pool(model)
        ordered = self._order(first) + self._order(rest)
        pinned = self.pinned(session, model)
        if pinned is not None:
            stay = [p for p in ordered if p.name == pinned]
            ordered = stay + [p for p in ordered if p.name != pinned]
        healthy: list[Provider] = []
        cooled: list[Provider] = []
        refused: list[Provider] = []
        for p in ordered:  # one pass, each target's state read once
            s = self.state[p.name]
            (refused if s.refused else cooled if s.cooled_until > now else healthy).append(p)
        out = healthy + cooled + refused
        retries = self.balancer.retries
        return out if retries is None else out[: retries + 1]

    def pinned(self, session: str | None, model: str) -> str | None:
        """The target a session's calls for `model` went to last (None: no call of it answered yet)."""
        if not session or (session, model) not in self.sessions:
            return None
        self.sessions.move_to_end((session, model))
        return self.sessions[(session, model)]

    def stick(self, session: str | None, model: str, target: str) -> None:
        """The session's call for `model` was answered by `target`: its next ones go there too."""
        if not session:
            return
        self.sessions[(session, model)] = target
        self.sessions.move_to_end((session, model))
        while len(self.sessions) > SESSIONS_KEPT:
            self.sessions.popitem(last=False)

    def _order(self, pool: list[Provider]) -> list[Provider]:
        if len(pool) <= 1:
            return pool
        algo = self.balancer.algorithm
        st = self.state
        if algo == "priority":
            return sorted(pool, key=lambda p: -p.target.weight)
        if algo == "lowest-latency":
            # an untried target counts as fastest, so every target gets measured
            return sorted(pool, key=lambda p: st[p.name].latency_ms or 0.0)
        if algo == "lowest-usage":
            return sorted(pool, key=lambda p: (st[p.name].tokens + st[p.name].in_flight) / p.target.weight)
        # round-robin, weighted the smooth way (nginx): picks spread evenly in proportion to weight
        total = sum(p.target.weight for p in pool)
        for p in pool:
            st[p.name].current_weight += p.target.weight
        first = max(pool, key=lambda p: st[p.name].current_weight)
        st[first.name].current_weight -= total
        rest = [p for p in pool if p is not first]
        return [first] + sorted(rest, key=lambda p: -st[p.name].current_weight)

    # -- feedback ------------------------------------------------------------------------------------------
    def refuse(self, name: str, reason: str) -> None:
        """The target's credential was refused at start: it is tried after every other."""
        self.state[name].refused = reason

    def checked(self, name: str, accepted: bool, detail: str) -> None:
        """The start's credential check had an answer (`accepted`) or none to judge by (`detail` says why)."""
        self.state[name].credential = "ok" if accepted else f"unchecked: {detail}"

    def started(self, name: str) -> None:
        self.state[name].in_flight += 1

    def finished(self, name: str) -> None:
        self.state[name].in_flight = max(0, self.state[name].in_flight - 1)

    def success(self, name: str, latency_ms: float | None, tokens: int = 0) -> None:
        s = self.state[name]
        s.calls += 1
        s.consecutive_failures = 0
        s.cooled_until = 0.0
        s.refused = None
        s.credential = "ok"  # a call went through on it
        s.tokens += tokens
        if latency_ms is not None:
            s.latency_ms = (
                latency_ms if s.latency_ms is None else (1 - EWMA) * s.latency_ms + EWMA * latency_ms
            )

    def failure(self, name: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        s = self.state[name]
        s.calls += 1
        s.failures += 1
        s.consecutive_failures += 1
        if s.consecutive_failures >= self.balancer.failure_threshold:
            s.cooled_until = now + self.balancer.cooldown

    def health(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        now = time.monotonic() if now is None else now
        out = {}
        for p in self.providers:
            s = self.state[p.name]
            out[p.name] = {
                "state": "refused" if s.refused else "cooling" if s.cooled(now) else "ok",
                "credentials": f"refused: {s.refused}" if s.refused else s.credential,
                "cooldown_left_s": round(max(0.0, s.cooled_until - now), 1),
                "calls": s.calls,
                "failures": s.failures,
                "consecutive_failures": s.consecutive_failures,
                "latency_ms": None if s.latency_ms is None else round(s.latency_ms, 1),
            }
        return out
