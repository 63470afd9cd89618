"""One exchange: route the call, try its targets in order (falling back while no byte reached the client), and
tell the router how each target did. The relay for a target is chosen by the target's dialect."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from aiohttp import web

from .config import GatewaySettings
from .errors import GatewayError
from .log import log
from .messages import Inbound
from .providers import Dialect, Provider
from .recorder import Call
from .relay import Leg, Relay, anthropic, gemini
from .routing import Router
from .translate.signatures import Signatures
from .upstream import Timeouts

RELAYS: Mapping[Dialect, Relay] = {"gemini": gemini.relay, "anthropic": anthropic.relay}


class Exchange:
    def __init__(self, settings: GatewaySettings, router: Router, signatures: Signatures) -> None:
        self.settings = settings
        self.router = router
        self.signatures = signatures

    async def run(
        self,
        inbound: Inbound,
        call: Call,
        session: aiohttp.ClientSession,
        only: Provider | None = None,
    ) -> web.StreamResponse:
        """`only`: this target and no other (a replay aimed at it), routing and fallback left out."""
        candidates = [only] if only is not None else self.router.candidates(inbound.model)
        if not candidates:
            raise GatewayError(
                503,
                "no upstream target is configured (set GEMINI_API_KEY or give --config)",
                "api_error",
                retryable=False,
            )
        failed: list[tuple[str, GatewayError]] = []
        for i, provider in enumerate(candidates):
            call.routed(provider)
            self.router.started(provider.name)
            try:
                resp = await RELAYS[provider.dialect](self._leg(inbound, call, provider, session))
            except GatewayError as err:
                if err.credential:  # the gateway's key: /health says refused until a call through it succeeds
                    self.router.refuse(provider.name, err.message)
                if err.retryable:
                    self.router.failure(provider.name)
                failed.append((provider.name, err))
                # A failure before any byte reached the client moves on to the next target.
                if not err.retryable or i == len(candidates) - 1:
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
