"""The Gemini API (generativelanguage): API-key auth."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from proxy.config import TargetConfig
from proxy.errors import from_google, os_reason
from proxy.providers.auth import Unreachable
from proxy.providers.base import Provider, base_url
from proxy.providers.served import segment

DEFAULT_HOST = "generativelanguage.googleapis.com"


class GeminiProvider(Provider):
    def __init__(self, target: TargetConfig):
        super().__init__(target)
        self._base = base_url(target.api_endpoint, DEFAULT_HOST)
        self._key = target.api_key.get_secret_value().strip() if target.api_key else ""
        self._urls: dict[tuple[str, str], str] = {}
        self.credential = f"the API key of target '{target.name}'"
        self.fix = (
            f"set targets.{target.name}.api_key (or GEMINI_API_KEY) to a Gemini API key Google accepts, "
            "and restart gatewatch"
        )

    def url(self, action: str) -> str:
        key = (action, self.model)
        got = self._urls.get(key)
        if got is None:  # the model's name quoted once per action, not per call
            suffix = "?alt=sse" if action == "streamGenerateContent" else ""
            got = self._urls[key] = f"{self._base}/v1beta/models/{segment(self.model)}:{action}{suffix}"
        return got

    async def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._key}

    async def verify(self, session: aiohttp.ClientSession, timeout: float) -> str | None:
        """`models.get` of the target's model: free, and it fails as a call would on a bad key or model."""
        url = f"{self._base}/v1beta/models/{segment(self.model)}"
        try:
            async with session.get(
                url, headers=await self.headers(), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                body = await resp.read()
                status, headers = resp.status, resp.headers
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
            reason = os_reason(cause) if isinstance(cause, OSError) else type(exc).__name__
            raise Unreachable(f"{self._base} could not be reached: {reason}") from None
        if status == 200:
            return f"API key accepted, {self.model} found"
        raise from_google(status, body, self.credential, headers, self.fix)

    def count_body(self, body: dict[str, Any]) -> dict[str, Any]:
        # The Gemini API counts a whole request only when wrapped; bare `contents` would drop system and tools.
        inner = {k: body[k] for k in ("contents", "systemInstruction", "tools") if k in body}
        return {"generateContentRequest": {"model": f"models/{self.model}", **inner}}
