"""Replay: a stored call's client request sent again to another target (or model) through a gateway's
`POST /gatewatch/replay`, and the two records compared.

The gateway runs the request through its normal exchange (translation, relay, recording) and records it as a
new call `replay_of` the original; this module is the client of that door and the comparison of the two
records. Nothing here prints: `console/replay.py` shows it.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from proxy import __version__
from proxy.edge.feed import REPLAY_PATH
from proxy.money import usd
from proxy.record import REDACTED, Record

FORWARDED = ("anthropic-version", "anthropic-beta", "x-claude-code-session-id", "x-claude-code-agent-id")
"""the original's headers sent again (what changes the answer or the session it belongs to); never a secret"""
RECORD_WAIT_S = 30.0
"""how long the new record may take to reach the store after the answer ended"""


class NotReplayable(Exception):
    """The stored call can't be sent again; the message says why. Nothing was sent."""


class ReplayFailed(Exception):
    """The gateway would not run the replay (its token, its door, an older gatewatch); nothing was recorded."""


def request_of(rec: Record) -> dict[str, Any]:
    """The client request to send again, or NotReplayable saying why there is none."""
    if rec.kind != "messages":
        raise NotReplayable(
            f"{rec.id} is a count_tokens call: there is no answer to compare; nothing was sent"
        )
    if not isinstance(rec.client_request, dict):
        raise NotReplayable(
            f"{rec.id}: its payloads were not kept (gateway.log_payloads = false, or the body was refused), "
            "so there is no request to send again; nothing was sent"
        )
    return rec.client_request


def headers_of(rec: Record, token: SecretStr | None) -> dict[str, str]:
    out = {"content-type": "application/json", "user-agent": f"gatewatch-replay/{__version__}"}
    for name in FORWARDED:
        value = rec.request_headers.get(name)
        if value and value != REDACTED:
            out[name] = value
    if token is not None:
        out["x-api-key"] = token.get_secret_value()
    return out


async def send(
    session: aiohttp.ClientSession,
    url: str,
    token: SecretStr | None,
    rec: Record,
    target: str,
    model: str | None = None,
) -> str:
    """Send `rec`'s request to the gateway at `url`, aimed at `target` (and `model`); read the whole answer.
    Returns the new record's id (the answer's `request-id`)."""
    body = orjson.dumps(request_of(rec))
    params = {"of": rec.id, "target": target, **({"model": model} if model else {})}
    async with session.post(
        url.rstrip("/") + REPLAY_PATH, data=body, headers=headers_of(rec, token), params=params
    ) as resp:
        raw = await resp.read()
        rid = resp.headers.get("request-id", "")
        if resp.status in (401, 403, 404, 405):  # refused at the door: no call was made, none recorded
            raise ReplayFailed(f"the gateway at {url} refused the replay ({resp.status}): {_message(raw)}")
    return rid


def _message(raw: bytes) -> str:
    try:
        err = orjson.loads(raw).get("error") or {}
        return str(err.get("message") or raw[:200].decode(errors="replace"))
    except (orjson.JSONDecodeError, AttributeError):
        return raw[:200].decode(errors="replace")


async def wait_record(
    get: Callable[[str], Record | None], rid: str, timeout: float = RECORD_WAIT_S
) -> Record:
    """The new record, once the store has it (the writer commits within a fraction of a second)."""
    deadline = time.monotonic() + timeout
    while True:
        rec = await asyncio.to_thread(get, rid)
        if rec is not None:
            return rec
        if time.monotonic() > deadline:
            raise ReplayFailed(f"the replay {rid} was answered but its record did not reach the store")
        await asyncio.sleep(0.05)


# -- the comparison ------------------------------------------------------------------------------------------
def tool_calls(rec: Record) -> list[str]:
    """The tools the answer called, with their input (when the payloads were kept): `Bash {"command": …}`."""
    content = rec.response.get("content") if isinstance(rec.response, dict) else None
    if not isinstance(content, list):
        return list(rec.tools_used)
    return [
        f"{b.get('name')} {orjson.dumps(b.get('input') or {}).decode()}"
        for b in content
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]


def answer_text(rec: Record) -> str:
    if rec.error_type:
        return f"[{rec.error_type}] {rec.error_message or ''}"
    return rec.response_text


@dataclass(frozen=True)
class Comparison:
    """An original and its replay, side by side."""

    original: Record
    replay: Record

    @property
    def rows(self) -> list[tuple[str, str, str]]:
        """(what, original, replay) for each figure compared."""
        a, b = self.original, self.replay
        return [(label, show(a), show(b)) for label, show in FIGURES]

    def diff(self, context: int = 2) -> list[str]:
        """The answers' text as a unified diff (empty when the texts are the same)."""
        a, b = answer_text(self.original), answer_text(self.replay)
        if a == b:
            return []
        return list(
            difflib.unified_diff(a.splitlines(), b.splitlines(), "original", "replay", lineterm="", n=context)
        )

    @property
    def same_tools(self) -> bool:
        return self.original.tools_used == self.replay.tools_used

    @property
    def same_stop(self) -> bool:
        return self.original.stop_reason == self.replay.stop_reason

    @property
    def failed(self) -> bool:
        return bool(self.replay.error_type) or (self.replay.status or 0) >= 400


def _cost(v: float | None) -> str:
    return "unknown" if v is None else usd(v, precise=True)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} ms"


def _answered(r: Record) -> str:
    return f"{r.target}/{r.response_model}" if r.target else "-"


FIGURES: tuple[tuple[str, Callable[[Record], str]], ...] = (
    ("answered by", _answered),
    ("status", lambda r: str(r.status or "-") + (f" {r.error_type}" if r.error_type else "")),
    ("stop reason", lambda r: r.stop_reason or "-"),
    ("tool calls", lambda r: "\n".join(tool_calls(r)) or "none"),
    ("input tokens", lambda r: f"{r.usage.input_tokens:,}"),
    ("cache read", lambda r: f"{r.usage.cache_read_tokens:,}"),
    ("output tokens", lambda r: f"{r.usage.output_tokens:,}"),
    ("cost", lambda r: _cost(r.usage.cost)),
    ("latency", lambda r: _ms(r.latency_ms)),
    ("first token", lambda r: _ms(r.usage.time_to_first_token)),
)


@dataclass
class Totals:
    """One side of a filter replay: cost and latency summed (cost None once any call's price is unknown)."""

    cost: float | None = 0.0
    latency_ms: float = 0.0

    def add(self, rec: Record) -> None:
        self.cost = None if self.cost is None or rec.usage.cost is None else self.cost + rec.usage.cost
        self.latency_ms += rec.latency_ms or 0.0


@dataclass
class Summary:
    """What a filter replay found: totals both ways, which calls changed their tools or stop, which failed."""

    original: Totals = field(default_factory=Totals)
    replay: Totals = field(default_factory=Totals)
    compared: int = 0
    tools_differ: list[str] = field(default_factory=list)
    stop_differs: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(original id, what went wrong): replays that failed, or could not be sent"""

    @classmethod
    def of(cls, results: Sequence[Comparison | tuple[Record, str]]) -> Summary:
        s = cls()
        for r in results:
            if isinstance(r, tuple):
                s.errors.append((r[0].id, r[1]))
                continue
            s.compared += 1
            s.original.add(r.original)
            s.replay.add(r.replay)
            if not r.same_tools:
                s.tools_differ.append(r.original.id)
            if not r.same_stop:
                s.stop_differs.append(r.original.id)
            if r.failed:
                s.errors.append((r.original.id, answer_text(r.replay)))
        return s
