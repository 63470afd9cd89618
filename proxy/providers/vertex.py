"""Gemini on Vertex AI: OAuth bearer tokens from a service-account key."""

from __future__ import annotations

from ..auth import ServiceAccountTokens, load_key
from .base import Provider, base_url


class VertexProvider(Provider):
    kind = "vertex"

    def __init__(self, target):
        super().__init__(target)
        loc = target.location_id or "us-central1"
        host = "aiplatform.googleapis.com" if loc == "global" else f"{loc}-aiplatform.googleapis.com"
        self._base = base_url(target.api_endpoint, host)
        self._path = f"/v1/projects/{target.project_id}/locations/{loc}/publishers/google/models/{self.model}"
        info = load_key(target.service_account_json.get_secret_value(), f"targets.{target.name}.service_account_json")
        self.tokens = ServiceAccountTokens(info, f"targets.{target.name}.service_account_json")
        self.credential = f"the service account {info.get('client_email')} of target '{target.name}'"

    def url(self, action: str) -> str:
        suffix = "?alt=sse" if action == "streamGenerateContent" else ""
        return f"{self._base}{self._path}:{action}{suffix}"

    async def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {await self.tokens.token()}"}
