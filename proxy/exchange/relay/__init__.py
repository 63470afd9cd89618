"""One relay per upstream dialect: how a call is carried to a target and its answer back to the client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from proxy.config import GatewaySettings
from proxy.errors import GatewayError
from proxy.exchange.messages import Inbound, is_shutdown, shutting_down
from proxy.exchange.recorder import Call
from proxy.exchange.upstream import Timeouts
from proxy.log import log
from proxy.providers import Provider
from proxy.translate.signatures import Signatures, TextSignatures


@dataclass(frozen=True, slots=True)
class Leg:
    """One try of one target: everything a relay needs, instead of seven arguments."""

    inbound: Inbound
    call: Call
    provider: Provider
    session: aiohttp.ClientSession
    settings: GatewaySettings
    timeouts: Timeouts
    signatures: Signatures
    texts: TextSignatures
    """Gemini's text-part signatures, kept per session (`translate.signatures.TextSignatures`)"""

    @property
    def session_key(self) -> str:
        """Whose text-part signatures these are: the Claude Code session, or one bucket for clients without."""
        return self.call.record.session_id or ""

    moved_from: str | None = None
    """the Claude Code session's calls went to this other target until now: its signatures can't come here"""


Relay = Callable[[Leg], Awaitable[web.StreamResponse]]


def midstream_error(exc: BaseException, started: bool) -> GatewayError:
    """The error that ends a stream already started (re-raising what can still be answered otherwise): a
    stream that fails always ends with an SSE `error` event, whatever failed."""
    if not started:
        raise exc
    if isinstance(exc, asyncio.CancelledError):
        if not is_shutdown(exc):
            raise exc  # the client went away: nobody to tell
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return shutting_down()
    if isinstance(exc, GatewayError):
        return exc
    log.exception("unexpected error mid-stream")
    return GatewayError(500, f"gatewatch internal error: {type(exc).__name__}", "api_error")
