"""The Gemini API (generativelanguage): API-key auth."""

from __future__ import annotations

from typing import Any

from ..config import TargetConfig
from .base import Provider, base_url

DEFAULT_HOST = "generativelanguage.googleapis.com"


class GeminiProvider(Provider):
    kind = "gemini"

    def __init__(self, target: TargetConfig):
        super().__init__(target)
        self._base = base_url(target.api_endpoint, DEFAULT_HOST)
        self._key = target.api_key.get_secret_value().strip() if target.api_key else ""
        self.credential = f"the API key of target '{target.name}'"

    def url(self, action: str) -> str:
        suffix = "?alt=sse" if action == "streamGenerateContent" else ""
        return f"{self._base}/v1beta/models/{self.model}:{action}{suffix}"

    async def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._key}

    def count_body(self, body: dict[str, Any]) -> dict[str, Any]:
        # The Gemini API counts a whole request only when wrapped; bare `contents` would drop system and tools.
        inner = {k: body[k] for k in ("contents", "systemInstruction", "tools") if k in body}
        return {"generateContentRequest": {"model": f"models/{self.model}", **inner}}
