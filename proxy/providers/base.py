"""What every Gemini-speaking upstream has in common."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import TargetConfig


def base_url(api_endpoint: str | None, default_host: str) -> str:
    """`api_endpoint` may be a bare host (as Kong's config writes it) or scheme://host[:port]."""
    ep = (api_endpoint or default_host).strip().rstrip("/")
    return ep if "://" in ep else f"https://{ep}"


class Provider:
    """A configured target: builds upstream URLs and headers."""

    kind = ""
    credential = ""
    passthrough = False
    """True for upstreams that speak the Messages API themselves (no translation)."""

    def __init__(self, target: TargetConfig):
        self.target = target
        self.name = target.name
        self.model = target.model

    def url(self, action: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    async def headers(self) -> dict[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def count_body(self, body: dict) -> dict:
        """A countTokens body from a generateContent body."""
        return {k: body[k] for k in ("contents", "systemInstruction", "tools") if k in body}

    def where(self) -> tuple[str, int, str, str]:
        """(scheme, port, host, path) of the generateContent URL, for the record."""
        u = urlsplit(self.url("generateContent"))
        port = u.port or (443 if u.scheme == "https" else 80)
        return u.scheme, port, u.hostname or "", u.path
