"""`gatewatch statusline`: one line for Claude Code's `statusLine`, from the store's session roll-ups.

Claude Code runs the command after each message and waits for it, so it must answer in a few milliseconds: this
module imports nothing but the standard library and `catalog` (importing the store alone, with pydantic and
sqlite-utils, takes longer than the line may), and reads the ledger's roll-up rows (proxy/store/ledger.py:
one primary-key lookup each) on a read-only connection.
"""

from __future__ import annotations

import json
import sqlite3
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import window


@dataclass(frozen=True, slots=True)
class Caps:
    daily_usd: float | None = None
    session_usd: float | None = None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    cost: float
    unpriced: int
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    agents: int
    ctx_tokens: int
    ctx_model: str | None
    compactions: int
    spend_today: float


def caps_from(config_path: str | None) -> Caps:
    """The `[budget]` caps of a gatewatch.toml (numbers only: no expansion needed); none without a file."""
    if not config_path:
        return Caps()
    try:
        raw = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return Caps()
    b = raw.get("budget") or {}

    def num(key: str) -> float | None:
        v = b.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    return Caps(num("daily_usd"), num("session_usd"))


def read(db: str | Path, session_id: str) -> SessionFacts | None:
    """The session's roll-up and today's spend; None when the store has no such session (or no store)."""
    if not Path(db).exists():
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
    values: list[Any] = [*s, *m, d[0] if d else 0.0]
    return SessionFacts(*values)


def tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1000:
        return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n / 1000:.1f}k"
    return str(n)


def line(facts: SessionFacts | None, caps: Caps = Caps()) -> str:
    """The line Claude Code shows under its prompt."""
    if facts is None:
        return "gatewatch · no call of this session recorded yet"
    f = facts
    cost = f"${f.cost:.2f}" + ("+?" if f.unpriced else "")
    prompt = f.input_tokens + f.cache_read_tokens
    cached = f" ({100 * f.cache_read_tokens // prompt}% cached)" if prompt and f.cache_read_tokens else ""
    parts = [f"gatewatch {cost}", f"{tokens(prompt)} in / {tokens(f.output_tokens)} out{cached}"]
    win = window(f.ctx_model)
    if f.ctx_tokens:
        fill = f" {100 * f.ctx_tokens / win:.0f}%" if win else ""
        parts.append(f"ctx {tokens(f.ctx_tokens)}/{tokens(win) if win else '?'}{fill}")
    if f.ctx_model:
        parts.append(f.ctx_model)
    if f.agents:
        parts.append(f"{f.agents} sub-agent" + ("s" if f.agents > 1 else ""))
    left = []
    if caps.session_usd is not None:
        left.append(f"${max(0.0, caps.session_usd - f.cost):.2f} left")
    if caps.daily_usd is not None:
        left.append(f"${max(0.0, caps.daily_usd - f.spend_today):.2f} left today")
    if left:
        parts.append("budget " + ", ".join(left))
    return " · ".join(parts)


def session_of(stdin_text: str) -> str | None:
    """The session id in the JSON Claude Code pipes to the command."""
    try:
        data: Any = json.loads(stdin_text or "{}")
    except ValueError:
        return None
    sid = data.get("session_id") if isinstance(data, dict) else None
    return sid if isinstance(sid, str) and sid else None
