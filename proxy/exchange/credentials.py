"""Every target's credential checked at start, before a client calls: a Vertex service-account key mints a
token at its token endpoint, a Gemini API key fetches its model (`models.get`, free). A refused credential is
said at start (serve's output, the console, `/health`) instead of inside Claude Code's silent retries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp

from proxy.errors import GatewayError
from proxy.providers import Provider
from proxy.providers.auth import Unreachable

CHECK_TIMEOUT_S = 10.0

State = Literal["ok", "refused", "unchecked"]


@dataclass(frozen=True, slots=True)
class Check:
    target: str
    state: State
    """ok: accepted; refused: the upstream said no (the target is tried last); unchecked: no answer to judge by"""
    detail: str


async def check(provider: Provider, session: aiohttp.ClientSession, timeout: float) -> Check:
    name = provider.name
    try:
        detail = await asyncio.wait_for(provider.verify(session, timeout), timeout)
    except Unreachable as exc:
        return Check(name, "unchecked", exc.message)
    except asyncio.TimeoutError:
        return Check(name, "unchecked", f"no answer within {timeout:.0f}s")
    except GatewayError as err:
        if err.credential:
            return Check(name, "refused", err.message)
        # 429 and 5xx say nothing about the key; anything else (401, 403, a bad key's 400, 404 model) is a no
        if err.status in (429, 500, 502, 503, 504, 529):
            return Check(name, "unchecked", err.message)
        return Check(name, "refused", err.message)
    if detail is None:
        return Check(name, "unchecked", f"nothing to check: {provider.credential} is used as it comes")
    return Check(name, "ok", detail)


async def check_all(providers: Sequence[Provider], timeout: float = CHECK_TIMEOUT_S) -> list[Check]:
    """Check every target at once; never raises."""
    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(check(p, session, timeout) for p in providers)))


def all_refused(checks: Sequence[Check]) -> str | None:
    """The message to refuse to start with when every target's credential was refused, else None."""
    if not checks or any(c.state != "refused" for c in checks):
        return None
    lines = "\n".join(f"  {c.target}: {c.detail}" for c in checks)
    return (
        f"every target's credentials were refused, so no call could be answered:\n{lines}\n"
        "Fix GEMINI_API_KEY (a Gemini API key, AIza…, or a service-account key: its JSON or a file path) "
        "or the config, and start again."
    )
