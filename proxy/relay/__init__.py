"""One relay per upstream dialect: how a call is carried to a target and its answer back to the client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from ..config import GatewaySettings
from ..messages import Inbound
from ..providers import Provider
from ..recorder import Call
from ..translate.signatures import Signatures
from ..upstream import Timeouts


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


Relay = Callable[[Leg], Awaitable[web.StreamResponse]]
