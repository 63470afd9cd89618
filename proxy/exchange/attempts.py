"""One exchange: route the call, try its targets in order (falling back while no byte reached the client), and
tell the router how each target did. The relay for a target is chosen by the target's dialect."""

from __future__ import annotations

import pkgutil
from dataclasses import replace

import aiohttp
from aiohttp import web

from proxy import registry
from proxy.config import GatewaySettings
from proxy.errors import GatewayError
from proxy.exchange.messages import Inbound
from proxy.exchange.recorder import Call
from proxy.exchange.relay import Leg, Relay
from proxy.exchange.routing import Router
from proxy.exchange.upstream import Timeouts
from proxy.log import log
from proxy.providers import Provider
from proxy.translate.notes import Note
from proxy.translate.signatures import Signatures, TextSignatures

_relays: dict[str, Relay] = {}


def relay_for(provider: Provider) -> Relay:
    """The relay of the provider's dialect (its kind's entry in `proxy.registry`), imported on first use."""
    kind = registry.kind(provider.kind)
    if kind is None:
        raise KeyError(f"no provider kind {provider.kind!r}")
    dialect = registry.DIALECTS[kind.dialect]
    relay = _relays.get(dialect.relay)
    if relay is None:
        relay = _relays[dialect.relay] = pkgutil.resolve_name(dialect.relay)
    return relay


class Exchange:
    def __init__(
        self,
        settings: GatewaySettings,
        router: Router,
        signatures: Signatures,
        texts: TextSignatures | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.signatures = signatures
        self.texts = texts if texts is not None else TextSignatures()
        for p in router.providers:  # each dialect's relay imported now, not on a first call
            relay_for(p)

    async def run(
        self,
        inbound: Inbound,
        call: Call,
        session: aiohttp.ClientSession,
        only: Provider | None = None,
    ) -> web.StreamResponse:
        """`only`: this target and no other (a replay aimed at it), routing and fallback left out."""
        cc_session = call.record.session_id if only is None else None
        model = inbound.model
        candidates = [only] if only is not None else self.router.candidates(model, session=cc_session)
        if not candidates:
            raise GatewayError(
                503,
                "no upstream target is configured (set GEMINI_API_KEY or give --config)",
                "api_error",
                retryable=False,
            )
        pinned = self.router.pinned(cc_session, model)
        failed: list[tuple[str, GatewayError]] = []
        for i, provider in enumerate(candidates):
            call.routed(provider)
            moved = pinned is not None and provider.name != pinned
            if moved:
                call.note(moved_note(cc_session or "", pinned or "", provider, failed, self.router))
            self.router.started(provider.name)
            try:
                leg = self._leg(inbound, call, provider, session)
                resp = await relay_for(provider)(replace(leg, moved_from=pinned) if moved else leg)
            except GatewayError as err:
                if err.credential:  # the gateway's key: /health says refused until a call through it succeeds
                    self.router.refuse(provider.name, err.message)
                if err.retryable:
                    self.router.failure(provider.name)
                failed.append((provider.name, err))
                # A failure before any byte reached the client moves on to the next target, unless the
                # request itself was refused (the next target would refuse the same body).
                if not fails_over(err) or i == len(candidates) - 1:
                    raise every_target_failed(failed) from None
                log.info(
                    "%s: target %s failed (%s), trying %s",
                    call.id,
                    provider.name,
                    err.message,
                    candidates[i + 1].name,
                )
                continue
            finally:
                self.router.finished(provider.name)
            rec = call.record
            if rec.error_type:  # failed after the stream began: no fallback, but it counts against the target
                self.router.failure(provider.name)
            else:
                self.router.success(
                    provider.name, rec.llm_latency_ms, rec.usage.input_tokens + rec.usage.output_tokens
                )
                self.router.stick(cc_session, model, provider.name)
            return resp
        raise AssertionError("unreachable")

    def _leg(self, inbound: Inbound, call: Call, provider: Provider, session: aiohttp.ClientSession) -> Leg:
        return Leg(
            inbound=inbound,
            call=call,
            provider=provider,
            session=session,
            settings=self.settings,
            timeouts=Timeouts.of(self.settings, provider.target),
            signatures=self.signatures,
            texts=self.texts,
        )


DETERMINISTIC = frozenset({400, 413, 422})
"""A request refused for what it is: every target would refuse the same body, so none other is asked."""


def fails_over(err: GatewayError) -> bool:
    """Whether a failure before any byte reached the client moves the call to the next target: yes for the
    gateway's own credential and transient failures (5xx, 429, timeouts), never for a deterministic 4xx."""
    if err.credential:
        return True
    if err.status in DETERMINISTIC or err.upstream_status in DETERMINISTIC:
        return False
    return err.retryable


def moved_note(
    session: str, pinned: str, to: Provider, failed: list[tuple[str, GatewayError]], router: Router
) -> Note:
    """A session leaves the target it started on: why, and where to."""
    why = next((err.message for name, err in failed if name == pinned), None)
    if why is None:
        health = router.health().get(pinned, {})
        why = f"{pinned} is {health.get('state', 'gone')}" if health else f"{pinned} is no longer configured"
    else:
        why = f"{pinned} failed: {why}"
    return Note(
        "session-moved",
        f"session {session[:8]} moved from {pinned} to {to.name} ({to.model}): {why[:200]}",
        {"session": session, "from": pinned, "to": to.name, "model": to.model},
    )


def every_target_failed(failed: list[tuple[str, GatewayError]]) -> GatewayError:
    """The last attempt's error, naming every attempt's failure when there were several: the first target's
    refused key must not hide behind the fallback's "cannot connect". A request the client must change (a
    400, "prompt is too long") is answered as it is: its wording is what the client acts on."""
    last = failed[-1][1]
    if len(failed) == 1 or last.type == "invalid_request_error":
        return last
    message = "every target failed: " + "; ".join(f"{name}: {err.message}" for name, err in failed)
    err = GatewayError(last.status, message, last.type, dict(last.headers), last.retryable)
    err.upstream_status = last.upstream_status
    return err
