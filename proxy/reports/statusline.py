"""`gatewatch statusline`: one line for Claude Code's `statusLine`, from the store's session roll-ups.

Claude Code runs the command after each message and waits for it, so it must answer in a few milliseconds: this
module imports nothing but the standard library and `catalog` (importing the store alone, with pydantic and
sqlite-utils, takes longer than the line may), and reads the ledger's roll-up rows (proxy/store/ledger.py:
one primary-key lookup each) on a read-only connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from proxy.money import usd
from proxy.translate.catalog import window

# Plain classes, not dataclasses or NamedTuples: those import `typing`/`inspect`, tens of milliseconds
# Claude Code would wait for after every message.


class Caps:
    __slots__ = ("daily_usd", "session_usd")

    def __init__(self, daily_usd: float | None = None, session_usd: float | None = None) -> None:
        self.daily_usd = daily_usd
        self.session_usd = session_usd

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Caps) and (self.daily_usd, self.session_usd) == (
            other.daily_usd,
            other.session_usd,
        )

    def __hash__(self) -> int:
        return hash((self.daily_usd, self.session_usd))


class SessionFacts:
    __slots__ = (
        "cost",
        "unpriced",
        "calls",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "agents",
        "ctx_tokens",
        "ctx_model",
        "compactions",
        "spend_today",
    )

    def __init__(
        self,
        cost: float,
        unpriced: int,
        calls: int,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        agents: int,
        ctx_tokens: int,
        ctx_model: str | None,
        compactions: int,
        spend_today: float,
    ) -> None:
        self.cost, self.unpriced, self.calls = cost, unpriced, calls
        self.input_tokens, self.output_tokens, self.cache_read_tokens = (
            input_tokens,
            output_tokens,
            cache_read_tokens,
        )
        self.agents, self.ctx_tokens, self.ctx_model = agents, ctx_tokens, ctx_model
        self.compactions, self.spend_today = compactions, spend_today


def _toml(config_path: str | None) -> dict[str, object]:
    if not config_path:
        return {}
    import tomllib  # only when a config is given

    try:
        with open(os.path.expanduser(config_path), encoding="utf-8") as f:
            return tomllib.loads(f.read())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def store_from(config_path: str | None) -> str | None:
    """The `[store]` of a gatewatch.toml (its SQLite path, ${VAR} and ~ expanded, or its PostgreSQL URL), as the
    gateway started with that config writes it; None when the file names none."""
    store = _toml(config_path).get("store")
    if not isinstance(store, dict):
        return None
    for key in ("url", "path"):
        v = store.get(key)
        if isinstance(v, str) and v.strip():
            return os.path.expanduser(os.path.expandvars(v.strip()))
    return None


def caps_from(config_path: str | None) -> Caps:
    """The `[budget]` caps of a gatewatch.toml (numbers only: no expansion needed); none without a file."""
    b = _toml(config_path).get("budget") or {}
    if not isinstance(b, dict):
        return Caps()

    def num(key: str) -> float | None:
        v = b.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    return Caps(num("daily_usd"), num("session_usd"))


def read(db: str | os.PathLike[str], session_id: str) -> SessionFacts | None:
    """The session's roll-up and today's spend; None when the store has no such session (or no store)."""
    if not os.path.exists(db):
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        s = conn.execute(
            "SELECT cost, unpriced, calls, input_tokens, output_tokens, cache_read_tokens, agents "
            "FROM sessions WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if s is None:
            return None
        m = conn.execute(
            "SELECT ctx_tokens, ctx_model, compactions FROM agents WHERE session_id = ? AND agent_id = ''",
            (session_id,),
        ).fetchone() or (0, None, 0)
        day = time.strftime("%Y-%m-%d", time.localtime())
        d = conn.execute("SELECT cost FROM daily WHERE day = ?", (day,)).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    cost, unpriced, calls, tin, tout, cached, agents = s
    ctx, ctx_model, compactions = m
    return SessionFacts(
        cost, unpriced, calls, tin, tout, cached, agents, ctx, ctx_model, compactions, d[0] if d else 0.0
    )


def tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1000:
        return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n / 1000:.1f}k"
    return str(n)


NO_CAPS = Caps()


def line(facts: SessionFacts | None, caps: Caps = NO_CAPS) -> str:
    """The line Claude Code shows under its prompt."""
    if facts is None:
        return "gatewatch · no call of this session recorded yet"
    f = facts
    cost = usd(f.cost) + ("+?" if f.unpriced else "")
    prompt = f.input_tokens + f.cache_read_tokens
    cached = f" ({100 * f.cache_read_tokens // prompt}% cached)" if prompt and f.cache_read_tokens else ""
    parts = [f"gatewatch {cost}"]
    left = []
    if caps.session_usd is not None:
        left.append(f"{usd(max(0.0, caps.session_usd - f.cost))} left")
    if caps.daily_usd is not None:
        left.append(f"{usd(max(0.0, caps.daily_usd - f.spend_today))} left today")
    if left:  # beside the cost, before the details: what it is set up for survives a narrow terminal
        parts.append("budget " + ", ".join(left))
    parts.append(f"{tokens(prompt)} in / {tokens(f.output_tokens)} out{cached}")
    win = window(f.ctx_model)
    if f.ctx_tokens:
        fill = f" {100 * f.ctx_tokens / win:.0f}%" if win else ""
        parts.append(f"ctx {tokens(f.ctx_tokens)}/{tokens(win) if win else '?'}{fill}")
    if f.ctx_model:
        parts.append(f.ctx_model)
    if f.agents:
        parts.append(f"{f.agents} sub-agent" + ("s" if f.agents > 1 else ""))
    return " · ".join(parts)


def session_of(stdin_text: str) -> str | None:
    """The session id in the JSON Claude Code pipes to the command."""
    try:
        data = json.loads(stdin_text or "{}")
    except ValueError:
        return None
    sid = data.get("session_id") if isinstance(data, dict) else None
    return sid if isinstance(sid, str) and sid else None
