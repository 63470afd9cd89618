"""What every upstream has in common, and what each dialect adds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from proxy.config import TargetConfig


def base_url(api_endpoint: str | None, default_host: str) -> str:
    """`api_endpoint` may be a bare host (as Kong's config writes it) or scheme://host[:port]."""
    ep = (api_endpoint or default_host).strip().rstrip("/")
    return ep if "://" in ep else f"https://{ep}"


class Provider:
    """A configured target: builds upstream URLs and headers. Its kind's entry in `proxy.registry` names the
    dialect whose relay carries its calls."""

    credential = ""
    fix = ""
    """what the operator changes when the credential is refused (said to the client, shown in /health)"""
    own_credential = True
    """the gateway's own credential authenticates the calls (False: the client's, passed through)"""

    def __init__(self, target: TargetConfig):
        self.target = target
        self.kind = target.provider
        """its kind's name in `proxy.registry`"""
        self.name = target.name
        self.model = target.model
        self._paths: dict[str, str] = {}
        self._where: tuple[str, int, str, str] | None = None

    @classmethod
    def region(cls, target: TargetConfig) -> str | None:
        """Where the target's calls are served, when the kind says (a Vertex location): for the models list."""
        return None

    def url(self, action: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    async def headers(self) -> dict[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    renewable: ClassVar[bool] = False
    """the credential is a token that can be minted again (a 401 renews it once and asks again)"""

    async def renew(self, sent: Mapping[str, str]) -> None:
        """The upstream refused the credential in `sent` (the headers of the refused call): get a fresh one.
        Raises GatewayError when renewing is refused."""

    async def verify(self, session: aiohttp.ClientSession, timeout: float) -> str | None:
        """Check the credential without spending anything; returns what was checked, None when there is
        nothing to check. Raises GatewayError when the credential is refused, `auth.Unreachable` when it
        could not be checked."""
        return None

    def count_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """A countTokens body from a generateContent body."""
        return {k: body[k] for k in ("contents", "systemInstruction", "tools") if k in body}

    def where(self) -> tuple[str, int, str, str]:
        """(scheme, port, host, path) of the generateContent URL, for the record (a target's URLs are fixed
        when it is made: read once, not parsed per call)."""
        if self._where is None:
            u = urlsplit(self.url("generateContent"))
            port = u.port or (443 if u.scheme == "https" else 80)
            self._where = u.scheme, port, u.hostname or "", u.path
        return self._where

    def path(self, action: str) -> str:
        """The path of `action`'s URL (the record's `upstream_uri`), parsed once per action."""
        got = self._paths.get(action)
        if got is None:
            got = self._paths[action] = urlsplit(self.url(action)).path
        return got


class PassthroughProvider(Provider):
    """An upstream that speaks the Messages API: the request goes through untranslated."""

    def request_url(self, count: bool, stream: bool, query: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    async def request_headers(self, client: Mapping[str, str]) -> dict[str, str]:  # pragma: no cover
        raise NotImplementedError

    def request_body(self, raw: bytes, body: dict[str, Any], count: bool) -> bytes:  # pragma: no cover
        raise NotImplementedError
