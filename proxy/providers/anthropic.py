"""Anthropic-speaking upstreams, forwarded without translation: the Anthropic API itself (to watch Claude
Code's own traffic) and Claude on Vertex AI (rawPredict, service-account auth)."""

from __future__ import annotations

from typing import Any, Mapping

import aiohttp
import orjson

from proxy.config import TargetConfig
from proxy.providers.base import PassthroughProvider, base_url
from proxy.providers.served import segment
from proxy.providers.vertex import service_account, vertex_base

# Hop-by-hop and transport headers are the connection's, not the request's; everything else is forwarded.
_NOT_FORWARDED = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "accept-encoding",
        "trailer",
    }
)
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


class AnthropicProvider(PassthroughProvider):
    """Forwards byte-for-byte to the Anthropic API, with the client's key unless the config gives one."""

    def __init__(self, target: TargetConfig):
        super().__init__(target)
        self._base = base_url(target.api_endpoint, "api.anthropic.com")
        self._key = target.api_key.get_secret_value().strip() if target.api_key else ""
        self.credential = (
            f"the API key configured for target '{target.name}'"
            if self._key
            else "the client's own Anthropic API key"
        )
        self.own_credential = bool(self._key)
        self.fix = f"set targets.{target.name}.api_key to an Anthropic API key that is accepted"

    def url(self, action: str) -> str:
        return f"{self._base}/v1/messages" + ("/count_tokens" if action == "countTokens" else "")

    def request_url(self, count: bool, stream: bool, query: str) -> str:
        return self.url("countTokens" if count else "generateContent") + (f"?{query}" if query else "")

    async def request_headers(self, client: Mapping[str, str]) -> dict[str, str]:
        out = {k: v for k, v in client.items() if k.lower() not in _NOT_FORWARDED}
        if self._key:
            for k in [k for k in out if k.lower() in ("x-api-key", "authorization")]:
                del out[k]
            out["x-api-key"] = self._key
        if self.target.anthropic_version and not any(k.lower() == "anthropic-version" for k in out):
            out["anthropic-version"] = self.target.anthropic_version
        return out

    def request_body(self, raw: bytes, body: dict[str, Any], count: bool) -> bytes:
        if self.model in ("*", body.get("model")):
            return raw  # byte-faithful
        return orjson.dumps({**body, "model": self.model})


class VertexAnthropicProvider(PassthroughProvider):
    """Claude on Vertex AI: the Messages body less `model`, plus `anthropic_version`, to rawPredict."""

    DEFAULT_LOCATION = "us-east5"  # Claude's usual Vertex region

    def __init__(self, target: TargetConfig):
        super().__init__(target)
        self._base, loc = vertex_base(target, self.DEFAULT_LOCATION)
        self._path = f"/v1/projects/{target.project_id}/locations/{loc}/publishers/anthropic/models"
        self.tokens, self.credential = service_account(target)
        self.fix = self.tokens.fix

    def url(self, action: str) -> str:
        if action == "countTokens":
            return f"{self._base}{self._path}/count-tokens:rawPredict"
        verb = "streamRawPredict" if action == "streamGenerateContent" else "rawPredict"
        return f"{self._base}{self._path}/{segment(self.model)}:{verb}"

    def request_url(self, count: bool, stream: bool, query: str) -> str:
        return self.url(
            "countTokens" if count else ("streamGenerateContent" if stream else "generateContent")
        )

    async def verify(self, session: aiohttp.ClientSession, timeout: float) -> str | None:
        await self.tokens.token()
        return f"token minted for {self.tokens.email}"

    async def request_headers(self, client: Mapping[str, str]) -> dict[str, str]:
        out = {"content-type": "application/json", "authorization": f"Bearer {await self.tokens.token()}"}
        for k, v in client.items():
            if k.lower() == "anthropic-beta":
                out["anthropic-beta"] = v
        return out

    def request_body(self, raw: bytes, body: dict[str, Any], count: bool) -> bytes:
        out = {k: v for k, v in body.items() if k != "model" or count}
        if count:
            out["model"] = self.model
        out["anthropic_version"] = self.target.anthropic_version or VERTEX_ANTHROPIC_VERSION
        return orjson.dumps(out)
