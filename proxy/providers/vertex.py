"""Gemini on Vertex AI: OAuth bearer tokens from a service-account key."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from proxy.config import TargetConfig
from proxy.providers.auth import ServiceAccountTokens, load_key
from proxy.providers.base import Provider, base_url
from proxy.providers.served import segment

MULTI_REGIONS = frozenset({"us", "eu"})


def vertex_base(target: TargetConfig, default_location: str) -> tuple[str, str]:
    """(base URL, location): `global` has no regional host; `api_endpoint` overrides either."""
    loc = target.location_id or default_location
    if loc == "global":
        host = "aiplatform.googleapis.com"
    elif loc in MULTI_REGIONS:  # multi-regions have hosts of their own
        host = f"aiplatform.{loc}.rep.googleapis.com"
    else:
        host = f"{loc}-aiplatform.googleapis.com"
    return base_url(target.api_endpoint, host), loc


def service_account(target: TargetConfig) -> tuple[ServiceAccountTokens, str]:
    """Token source and the name of the credential (for error messages) from the target's key."""
    where = f"targets.{target.name}.service_account_json"
    assert target.service_account_json is not None  # the config demands it for vertex providers
    info = load_key(target.service_account_json.get_secret_value(), where)
    return ServiceAccountTokens(
        info, where
    ), f"the service account {info.get('client_email')} of target '{target.name}'"


class VertexProvider(Provider):
    DEFAULT_LOCATION = "us-central1"
    """for a model the facts table does not place (2.x); current models default to where Google serves them"""

    def __init__(self, target: TargetConfig):
        super().__init__(target)
        self._base, loc = vertex_base(target, self.default_location(self.model))
        model = segment(self.model)  # one path segment, whatever the name holds
        self._path = f"/v1/projects/{target.project_id}/locations/{loc}/publishers/google/models/{model}"
        self.tokens, self.credential = service_account(target)
        self.fix = (
            f"give targets.{target.name}.service_account_json (or GEMINI_API_KEY) a key Google accepts, whose "
            f"service account may use Vertex AI in project {target.project_id} (role Vertex AI User); "
            "restart gatewatch after changing the key"
        )

    @classmethod
    def default_location(cls, model: str) -> str:
        """Where Google serves the model (the facts table), else DEFAULT_LOCATION."""
        from proxy.translate.models import facts

        row = facts(model)
        return row.locations[0] if row.known else cls.DEFAULT_LOCATION

    @classmethod
    def region(cls, target: TargetConfig) -> str | None:
        return target.location_id or cls.default_location(target.model)

    def url(self, action: str) -> str:
        suffix = "?alt=sse" if action == "streamGenerateContent" else ""
        return f"{self._base}{self._path}:{action}{suffix}"

    async def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {await self.tokens.token()}"}

    renewable = True

    async def renew(self, sent: Mapping[str, str]) -> None:
        await self.tokens.renew(sent.get("authorization", "").removeprefix("Bearer "))

    async def verify(self, session: aiohttp.ClientSession, timeout: float) -> str | None:
        await self.tokens.token()  # minted against the key's token endpoint; the token serves the first call
        return f"token minted for {self.tokens.email}"
