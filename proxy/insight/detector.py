"""Findings made from a session's calls in order: each one a `Note` on the record it concerns, with the
tokens and dollars at stake in its data (`tokens`, `cost`).

- `cache-break`: the upstream prefix parted from the previous call's of the same (session, agent, model
  asked) where the implicit cache should have held it, and the cached share fell: what changed first
  (model, system at block/offset, tools naming the tool, messages at an index) and the tokens re-billed.
- `repeat`: the same request body again within a session, after the first was answered.
- `retry-cascade`: the same body sent again after a 4xx that will refuse it again (Claude Code retries a 400).
- `tool-loop`: the model called the same tool with the same input for the LOOP_MIN-th time (or more).
- `stream-fallback`: a non-streaming call resending a stream that failed (tools in it may run twice).

`Detector.observe` keeps a little state per session (digests, not bodies, besides each agent's last system
text) and is fed records in commit order by the store's writer thread: off the calls' path.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from genai_prices.types import ModelPrice

from proxy.insight import prefix as px
from proxy.money import usd
from proxy.record import Record, pricing
from proxy.translate.notes import Note
from proxy.translate.request import BILLING_PREFIX

FINDINGS = frozenset({"cache-break", "repeat", "retry-cascade", "tool-loop", "stream-fallback"})
"""the note kinds the detector gives"""
MIN_CACHE_TOKENS = 1024
"""Google's implicit cache starts at this many prompt tokens (2.5 Flash; Pro's floor is higher)"""
LOOP_MIN = 3
SESSIONS_KEPT = 512
"""sessions whose state is held (the least recently active forgotten first)"""
BODIES_KEPT = 256
"""request digests held per session: resends follow their original closely"""
NO_RETRY = frozenset({408, 409, 429})
"""4xx answers that a resend may well get past"""


def _prompt(r: Record) -> int:
    u = r.usage
    return u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens


def _ok(r: Record) -> bool:
    return r.status == 200 and r.error_type is None and not r.cancelled


def client_body(r: Record) -> Any:
    return r.client_request if r.client_request is not None else r.bodies.client


def upstream_body(r: Record) -> Any:
    """What went upstream (a pass-through target sent the client's body as it came)."""
    for body in (r.upstream_request, r.bodies.upstream, r.client_request, r.bodies.client):
        if body is not None:
            return body
    return None


def answer(r: Record) -> Any:
    return r.response if r.response is not None else r.bodies.answer


def _without_billing(body: dict[str, Any]) -> dict[str, Any]:
    """Claude Code's billing block changes per prompt and is never sent upstream: not part of "the same body"."""
    system = body.get("system")
    if isinstance(system, list) and system:
        first = system[0]
        if isinstance(first, dict) and str(first.get("text", "")).startswith(BILLING_PREFIX):
            return {**body, "system": system[1:]}
    return body


@lru_cache(maxsize=256)
def _prices(model: str, day: int) -> ModelPrice | None:
    """The library's prices of `model` on a day (prices change by the day at most): one lookup per day."""
    return pricing.model_price(model, datetime.fromtimestamp(day * 86400, tz=UTC))


def gap(r: Record) -> float | None:
    """USD per token between billing a prompt token in full and reading it from the cache, for this call
    (its model, its day, its prompt's tier); None when the model has no price."""
    p = _prices(r.response_model or r.request_model, int(r.started_at // 86400))
    if p is None:
        return None
    u = r.usage
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens
    full = pricing.rate(p.input_mtok, prompt)
    if full is None:
        return None
    cached = pricing.rate(p.cache_read_mtok, prompt)
    return max(0.0, full - (full if cached is None else cached)) / 1_000_000


def miss_cost(r: Record, tokens: int) -> float | None:
    """What `tokens` of this call's input cost more billed in full than read from the cache."""
    g = gap(r)
    return None if g is None else min(tokens, r.usage.input_tokens) * g


def saved(r: Record) -> float | None:
    """What the cache saved this call: its cache reads at the input price, less what they cost."""
    if not r.usage.cache_read_tokens:
        return 0.0
    g = gap(r)
    return None if g is None else r.usage.cache_read_tokens * g


@dataclass
class _Sent:
    first: str
    """the call that first sent this body"""
    status: int | None
    ok: bool
    resends: int = 0


@dataclass
class _Last:
    """The previous call of one (agent, model asked): its prefix, prompt size and id."""

    prefix: px.Prefix
    prompt: int
    id: str


@dataclass
class _Session:
    bodies: OrderedDict[int, _Sent] = field(default_factory=OrderedDict)
    failed_streams: OrderedDict[int, str] = field(default_factory=OrderedDict)
    tools: dict[int, list[str]] = field(default_factory=dict)
    last: dict[tuple[str, str], _Last] = field(default_factory=dict)


def _keep(d: OrderedDict[int, Any], key: int, value: Any) -> None:
    d[key] = value
    d.move_to_end(key)
    while len(d) > BODIES_KEPT:
        d.popitem(last=False)


class Detector:
    """Feed it every record of a store in commit order; it answers each one's findings."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def _session(self, sid: str) -> _Session:
        s = self._sessions.get(sid)
        if s is None:
            s = self._sessions[sid] = _Session()
            while len(self._sessions) > SESSIONS_KEPT:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(sid)
        return s

    def observe(self, r: Record) -> list[Note]:
        if r.kind != "messages" or not r.session_id or r.replay_of:
            return []
        s = self._session(r.session_id)
        notes: list[Note] = []
        body = client_body(r)
        if isinstance(body, dict):
            notes += self._resends(s, r, body)
        if _ok(r):
            notes += self._loops(s, r)
            brk = self._cache(s, r)
            if brk is not None:
                notes.append(brk)
        return notes

    # -- the same body again -------------------------------------------------------------------------------
    def _resends(self, s: _Session, r: Record, body: dict[str, Any]) -> list[Note]:
        out: list[Note] = []
        plain = _without_billing(body)
        d = px.digest(plain)
        cost = r.usage.cost
        tokens = r.usage.total_tokens
        seen = s.bodies.get(d)
        if seen is not None:
            seen.resends += 1
            if seen.ok:
                out.append(
                    Note(
                        "repeat",
                        f"repeat of {seen.first}",
                        {"of": seen.first, "tokens": tokens, "cost": cost},
                    )
                )
            elif seen.status is not None and 400 <= seen.status < 500 and seen.status not in NO_RETRY:
                out.append(
                    Note(
                        "retry-cascade",
                        f"resend {seen.resends} of {seen.first} after its {seen.status}: the same request is "
                        "refused the same way",
                        {
                            "of": seen.first,
                            "resend": seen.resends,
                            "status": seen.status,
                            "tokens": tokens,
                            "cost": cost,
                        },
                    )
                )
            seen.status, seen.ok = r.status, seen.ok or _ok(r)
            s.bodies.move_to_end(d)
        else:
            _keep(s.bodies, d, _Sent(r.id, r.status, _ok(r)))
        # Claude Code falls back to a one-shot call after a stream fails: the same turn, `stream` aside
        stream = r.request_mode == "stream"
        if (stream and not _ok(r)) or (not stream and s.failed_streams):
            turn = px.digest({k: v for k, v in plain.items() if k not in ("stream", "max_tokens")})
            if stream:
                _keep(s.failed_streams, turn, r.id)
                return out
            failed = s.failed_streams.pop(turn, None)
            if failed is not None:
                out.append(
                    Note(
                        "stream-fallback",
                        f"non-streaming resend of the failed stream {failed}: tools it ran may run twice",
                        {"of": failed, "tokens": tokens, "cost": cost},
                    )
                )
        return out

    # -- the same tool, the same input -----------------------------------------------------------------------
    def _loops(self, s: _Session, r: Record) -> list[Note]:
        msg = answer(r)
        blocks = msg.get("content") if isinstance(msg, dict) else None
        out: list[Note] = []
        for b in blocks or []:
            if not isinstance(b, dict) or b.get("type") != "tool_use":
                continue
            name = str(b.get("name", ""))
            key = px.digest([name, b.get("input")])
            ids = s.tools.setdefault(key, [])
            if r.id not in ids:
                ids.append(r.id)
            if len(ids) >= LOOP_MIN:
                out.append(
                    Note(
                        "tool-loop",
                        f"{name} called with the same input {len(ids)} times in this session",
                        {
                            "tool": name,
                            "calls": list(ids[-LOOP_MIN:]),
                            "times": len(ids),
                            "tokens": r.usage.total_tokens,
                            "cost": r.usage.cost,
                        },
                    )
                )
        return out

    # -- the prefix Google's cache keys on --------------------------------------------------------------------
    def _cache(self, s: _Session, r: Record) -> Note | None:
        key = (r.agent_id or "", r.request_model)
        prev = s.last.get(key)
        cur = px.of(upstream_body(r), r.response_model or r.request_model, prev.prefix if prev else None)
        if cur is None:
            return None
        prompt = _prompt(r)
        s.last[key] = _Last(cur, prompt, r.id)
        if prev is None or prev.prompt < MIN_CACHE_TOKENS:
            return None
        where = px.diverge(prev.prefix, cur)
        if where is None:
            return None
        expected = min(prev.prompt, prompt)
        rebilled = expected - r.usage.cache_read_tokens
        if rebilled < MIN_CACHE_TOKENS:
            return None  # the cache held what mattered: the change came late in the prefix
        cost = miss_cost(r, rebilled)
        money = f" ({usd(cost)})" if cost is not None else ""
        return Note(
            "cache-break",
            f"{where.detail} since {prev.id}: {rebilled:,} tokens re-billed{money}",
            {"what": where.what, **where.data, "previous": prev.id, "tokens": rebilled, "cost": cost},
        )
