"""Google service-account OAuth tokens for Vertex AI, refreshed off the event loop, one refresh at a time."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from proxy.config import ConfigError
from proxy.errors import GatewayError, credential_refused

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN = dt.timedelta(minutes=5)  # refresh this long before expiry so no call meets a stale token


def load_key(value: str, where: str) -> dict[str, Any]:
    """A service-account key given as a file path or as the JSON itself. Errors never quote the key."""
    text = value.strip()
    if text.startswith("AIza"):
        raise ConfigError(f"{where}: holds a Gemini API key (AIza…), not a service-account key")
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the service-account key file: {exc.strerror}") from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{where}: the service-account key is not valid JSON") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{where}: not a service-account key (not a JSON object)")
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise ConfigError(f"{where}: not a service-account key (missing {', '.join(missing)})")
    return info


class Unreachable(GatewayError):
    """The credential could not be checked (the token endpoint did not answer): not a refusal."""

    def __init__(self, message: str) -> None:
        super().__init__(502, message, "api_error", retryable=True)


def _transport_reason(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    # requests' messages are long chains ending in the OS's reason: keep the end
    for marker in ("Connection refused", "Name or service not known", "timed out", "Temporary failure"):
        if marker in text:
            return marker.lower()
    return text[:200]


class ServiceAccountTokens:
    """Bearer tokens from a service-account key; honours the key's `token_uri`."""

    def __init__(self, info: dict[str, Any], where: str = "service_account_json"):
        try:
            self._creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"{where}: the service-account key cannot be used ({type(exc).__name__})"
            ) from None
        self.email = info.get("client_email", "")
        self.token_uri = info.get("token_uri", "")
        self.fix = (
            f"give {where} (or GEMINI_API_KEY) a service-account key Google accepts, and restart gatewatch"
        )
        self._lock: asyncio.Lock | None = None
        self._request = google.auth.transport.requests.Request()

    def _fresh(self) -> bool:
        expiry: dt.datetime | None = self._creds.expiry
        if not self._creds.token or expiry is None:
            return False
        # google-auth keeps expiry as a naive UTC datetime
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        return expiry - now > REFRESH_MARGIN

    def _current(self) -> str:
        token: str = self._creds.token  # google-auth leaves Credentials.token untyped
        return token

    async def token(self) -> str:
        if self._fresh():
            return self._current()
        return await self._refresh(None)

    async def renew(self, stale: str) -> str:
        """A fresh token after the upstream refused `stale` (a revocation, a token endpoint that forgot it).
        Calls refused with the same token at once share one refresh."""
        return await self._refresh(stale)

    async def _refresh(self, stale: str | None) -> str:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # another caller may have refreshed while we waited
            needed = not self._fresh() if stale is None else self._creds.token == stale
            if needed:
                try:
                    await asyncio.to_thread(self._creds.refresh, self._request)
                except google.auth.exceptions.RefreshError as exc:
                    reason = str(exc.args[0]) if exc.args else type(exc).__name__
                    raise credential_refused(
                        f"the service-account key for {self.email} was refused by the token endpoint: {reason}",
                        self.fix,
                    ) from None
                except google.auth.exceptions.TransportError as exc:
                    raise Unreachable(
                        f"the token endpoint {self.token_uri} could not be reached for {self.email}: "
                        f"{_transport_reason(exc)}"
                    ) from None
        return self._current()
