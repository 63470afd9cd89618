"""The session ledger: roll-ups kept beside the records, updated in the writer's transaction as each record
is committed, so a session's or a day's figures are one indexed row however large the store grows.

- `sessions`: one row per Claude Code session (calls, tokens, cost, errors, first/last seen, models).
- `agents`: one row per agent of a session ('' the main agent, else `x-claude-code-agent-id`), with the
  agent that spawned it (`x-claude-code-parent-agent-id` when a sub-agent did, else told from the spawns) and
  the call that did (its parent's `Agent` tool_use, matched by prompt), its context (the last prompt's size)
  and the compactions seen (the prompt falling sharply between two calls of the same model).
- `spawns`: the `Agent` tool_uses seen, waiting for the sub-agent they started.
- `daily`: spend per local day (the budget's `daily_usd`).
- `reservations`: one row per call admitted under a budget and not recorded yet (its estimated cost, its day
  and session): written at admission (`reserve`), deleted in the transaction that commits the call's record,
  so spend + reservations never counts a call twice or not at all, across replicas and across a kill -9.

Only the writer calls `roll_up`; readers use `sessions`, `agents`, `session` and `spend_on`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from proxy.record import Record
from proxy.store.base import AgentTotals, Conn, SessionTotals
from proxy.store.dialect import Dialect

COMPACTION_MIN_TOKENS = 20_000
"""a context below this is never called compacted"""
COMPACTION_RATIO = 0.5
"""the prompt fell below half of the previous one (same agent, same model asked)"""


def _reservations_ddl(d: Dialect) -> tuple[str, ...]:
    real = d.type("REAL")
    return (
        f"""CREATE TABLE IF NOT EXISTS reservations (
        id TEXT PRIMARY KEY, day TEXT NOT NULL, session_id TEXT, amount {real} NOT NULL,
        started_at {real} NOT NULL, holder TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS reservations_day ON reservations(day)",
        "CREATE INDEX IF NOT EXISTS reservations_session ON reservations(session_id)",
    )


def ddl(d: Dialect) -> tuple[str, ...]:
    """The ledger's tables in `d`'s types (a spawn is named by a row number, which PostgreSQL tables don't have
    of their own)."""
    real, integer = d.type("REAL"), d.type("INTEGER")
    counts = (
        f"calls {integer} NOT NULL DEFAULT 0, errors {integer} NOT NULL DEFAULT 0,\n"
        f"        input_tokens {integer} NOT NULL DEFAULT 0, output_tokens {integer} NOT NULL DEFAULT 0,\n"
        f"        cache_read_tokens {integer} NOT NULL DEFAULT 0, cache_creation_tokens {integer} NOT NULL DEFAULT 0,\n"
        f"        cost {real} NOT NULL DEFAULT 0, unpriced {integer} NOT NULL DEFAULT 0,\n"
        "        models_asked TEXT NOT NULL DEFAULT ' ', models_served TEXT NOT NULL DEFAULT ' '"
    )
    return (
        f"""CREATE TABLE IF NOT EXISTS sessions (
        session_id TEXT PRIMARY KEY, first_seen {real} NOT NULL, last_seen {real} NOT NULL,
        {counts},
        agents {integer} NOT NULL DEFAULT 0, cc_version TEXT)""",
        "CREATE INDEX IF NOT EXISTS sessions_last_seen ON sessions(last_seen)",
        f"""CREATE TABLE IF NOT EXISTS agents (
        session_id TEXT NOT NULL, agent_id TEXT NOT NULL, first_seen {real} NOT NULL, last_seen {real} NOT NULL,
        {counts},
        parent_call TEXT, parent_agent TEXT, first_prompt TEXT NOT NULL DEFAULT '', cc_version TEXT,
        ctx_tokens {integer} NOT NULL DEFAULT 0, ctx_asked TEXT, ctx_model TEXT,
        compactions {integer} NOT NULL DEFAULT 0, last_compaction_at {real},
        PRIMARY KEY (session_id, agent_id))""",
        f"""CREATE TABLE IF NOT EXISTS spawns ({d.serial()}
        session_id TEXT NOT NULL, call_id TEXT NOT NULL, agent_id TEXT NOT NULL, started_at {real} NOT NULL,
        prompt TEXT NOT NULL, claimed_by TEXT)""",
        "CREATE INDEX IF NOT EXISTS spawns_session ON spawns(session_id, started_at)",
        f"""CREATE TABLE IF NOT EXISTS daily (
        day TEXT PRIMARY KEY, calls {integer} NOT NULL DEFAULT 0, cost {real} NOT NULL DEFAULT 0,
        unpriced {integer} NOT NULL DEFAULT 0)""",
        *_reservations_ddl(d),
    )


_AGENT_COLS = (
    "session_id, agent_id, first_seen, last_seen, calls, errors, input_tokens, output_tokens, "
    "cache_read_tokens, cache_creation_tokens, cost, unpriced, models_asked, models_served, parent_call, "
    "parent_agent, first_prompt, cc_version, ctx_tokens, ctx_asked, ctx_model, compactions, "
    "last_compaction_at"
)
_AGENT_SET = ", ".join(f"{c} = excluded.{c}" for c in _AGENT_COLS.split(", ")[2:])
"""an agent's row is replaced whole (read once per batch, and written back, in the writer's transaction)"""
_SESSION_COLS = (
    "session_id, first_seen, last_seen, calls, errors, input_tokens, output_tokens, cache_read_tokens, "
    "cache_creation_tokens, cost, unpriced, models_asked, models_served, agents, cc_version"
)


def day_of(epoch: float) -> str:
    """The local calendar day a call started on: the budget's day."""
    return time.strftime("%Y-%m-%d", time.localtime(epoch))


def create(conn: Conn) -> None:
    for sql in ddl(conn.dialect):
        conn.execute(sql)


_FAILED = "CASE WHEN status IS NULL OR status >= 400 OR error_type IS NOT NULL THEN 1 ELSE 0 END"
_UNPRICED = "CASE WHEN cost IS NULL AND total_tokens > 0 THEN 1 ELSE 0 END"
DAY_BUCKET_S = 900
"""a local day is a whole number of these (every time zone's offset and its changes are quarter hours)"""


def backfill(conn: Conn) -> None:
    """Roll up records written before the ledger existed (no agents, links or compactions known for them)."""
    d = conn.dialect
    common = (
        f"min(started_at), max(started_at), count(*), sum({_FAILED}), "
        "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cache_read_tokens), 0), "
        f"coalesce(sum(cache_creation_tokens), 0), coalesce(sum(cost), 0), sum({_UNPRICED}), "
        f"' ' || coalesce({d.group_concat('request_model')}, '') || ' ', "
        f"' ' || coalesce({d.group_concat('response_model')}, '') || ' '"
    )
    conn.execute(
        f"INSERT INTO sessions ({_SESSION_COLS}) SELECT session_id, {common}, 0, NULL "
        "FROM records WHERE session_id IS NOT NULL GROUP BY session_id ON CONFLICT (session_id) DO NOTHING"
    )
    conn.execute(
        "INSERT INTO agents (session_id, agent_id, first_seen, last_seen, calls, errors, "
        "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost, unpriced, models_asked, "
        f"models_served) SELECT session_id, '', {common} "
        "FROM records WHERE session_id IS NOT NULL GROUP BY session_id ON CONFLICT (session_id, agent_id) DO NOTHING"
    )
    # the distinct models come joined by commas (SQLite's group_concat(DISTINCT x) takes no separator)
    for table in ("sessions", "agents"):
        conn.execute(
            f"UPDATE {table} SET models_asked = replace(models_asked, ',', ' '), "
            "models_served = replace(models_served, ',', ' ')"
        )
    # by local day, as `day_of` says it: the database's own idea of local time may not be this process's
    days: dict[str, list[Any]] = {}
    for bucket, calls, cost, unpriced in conn.execute(
        f"SELECT {d.bucket('started_at', DAY_BUCKET_S)} AS b, count(*), coalesce(sum(cost), 0), "
        f"sum({_UNPRICED}) FROM records GROUP BY b"
    ).fetchall():
        day = days.setdefault(day_of(int(bucket) * DAY_BUCKET_S), [0, 0.0, 0])
        day[0] += int(calls)
        day[1] += float(cost)
        day[2] += int(unpriced)
    for day_, (calls, cost, unpriced) in days.items():
        conn.execute(
            f"INSERT INTO daily (day, calls, cost, unpriced) VALUES ({d.marks(4)}) ON CONFLICT (day) DO NOTHING",
            (day_, calls, cost, unpriced),
        )


def _failed(r: Record) -> bool:
    return (r.status or 0) >= 400 or r.status is None or r.error_type is not None


def _add(words: str, word: str | None) -> str:
    if not word or f" {word} " in words:
        return words
    return words + word + " "


def roll_up(conn: Conn, records: Sequence[Record]) -> None:
    """Add committed records to the roll-ups (inside the writer's transaction). Per batch, not per record: each
    agent's row is read once, the batch's records are added to it in order in memory, and it is written back
    once; a session's and a day's additions are one upsert each. Spawns are written as they come (a later
    record's new sub-agent looks for its parent among them)."""
    marks = conn.dialect.marks
    days: dict[str, tuple[int, float, int]] = {}
    for i in range(0, len(records), 500):  # their reservations go in the same transaction: the estimate is
        ids = [r.id for r in records[i : i + 500]]  # replaced by the cost, never both counted
        conn.execute(f"DELETE FROM reservations WHERE id IN ({marks(len(ids))})", ids)
    agents: dict[tuple[str, str], list[Any]] = {}
    sessions: dict[str, list[Any]] = {}
    for r in records:
        u = r.usage
        cost = u.cost or 0.0
        unpriced = int(u.cost is None and u.total_tokens > 0)
        d = day_of(r.started_at)
        calls, spent, unknown = days.get(d, (0, 0.0, 0))
        days[d] = (calls + 1, spent + cost, unknown + unpriced)
        if r.session_id:
            _roll_agent(conn, r, cost, unpriced, agents, sessions)
    for row in agents.values():
        conn.execute(
            f"INSERT INTO agents ({_AGENT_COLS}) VALUES ({marks(23)}) "
            f"ON CONFLICT(session_id, agent_id) DO UPDATE SET {_AGENT_SET}",
            row,
        )
    for row in sessions.values():
        _add_to_session(conn, row)
    for d, (calls, cost, unpriced) in days.items():  # noqa: B007
        conn.execute(
            f"INSERT INTO daily (day, calls, cost, unpriced) VALUES ({marks(4)}) ON CONFLICT(day) DO UPDATE "
            "SET calls = daily.calls + excluded.calls, cost = daily.cost + excluded.cost, "
            "unpriced = daily.unpriced + excluded.unpriced",
            (d, calls, cost, unpriced),
        )


def _roll_agent(
    conn: Conn,
    r: Record,
    cost: float,
    unpriced: int,
    agents: dict[tuple[str, str], list[Any]],
    sessions: dict[str, list[Any]],
) -> None:
    """Add one record to its agent's and its session's rows (the batch's copies, read on first use)."""
    sid, aid, u = r.session_id or "", r.agent_id or "", r.usage
    p = conn.dialect.p
    failed = int(_failed(r))
    a = agents.get((sid, aid))
    new_agent = False
    if a is None:
        row = conn.execute(
            f"SELECT {_AGENT_COLS} FROM agents WHERE session_id = {p} AND agent_id = {p}", (sid, aid)
        ).fetchone()
        if row is None:
            new_agent = True
            parent_call, parent_agent = _parent(conn, r) if aid else (None, None)
            a = [sid, aid, r.started_at, r.started_at, 0, 0, 0, 0, 0, 0, 0.0, 0, " ", " ", parent_call]
            a += [parent_agent, r.preview, r.cc_version, 0, None, None, 0, None]
        else:
            a = list(row)
        agents[(sid, aid)] = a
    ctx, asked = a[18], a[19]
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens
    if r.kind == "messages" and not failed and prompt > 0:
        same = asked in (None, r.request_model)
        if same or prompt >= ctx:
            if same and ctx >= COMPACTION_MIN_TOKENS and prompt < ctx * COMPACTION_RATIO:
                a[21] += 1  # compactions
                a[22] = r.started_at
            a[18], a[19], a[20] = prompt, r.request_model, r.response_model or r.request_model
    _add_call(a, 2, r, failed, cost, unpriced)
    a[17] = r.cc_version or a[17]
    s = sessions.get(sid)
    if s is None:  # the batch's additions to the session, added to its row in one statement
        s = sessions[sid] = [sid, r.started_at, r.started_at, 0, 0, 0, 0, 0, 0, 0.0, 0, " ", " ", 0, None]
    _add_call(s, 1, r, failed, cost, unpriced)
    s[13] += int(new_agent and bool(aid))
    s[14] = r.cc_version or s[14]
    for prompt_text in r.spawned:
        conn.execute(
            f"INSERT INTO spawns (session_id, call_id, agent_id, started_at, prompt) VALUES ({conn.dialect.marks(5)})",
            (sid, r.id, aid, r.started_at, prompt_text),
        )


def _add_to_session(conn: Conn, s: list[Any]) -> None:
    """Add a batch's calls to a session's row. Additive in SQL, not read and written back: replicas sharing a
    PostgreSQL store may add to the same session at once. A model new to the session is appended unless the
    row has it; a batch naming several (rare) appends the rest one statement each."""
    d = conn.dialect
    asked, served = s[11].split(), s[12].split()
    conn.execute(
        f"INSERT INTO sessions AS s ({_SESSION_COLS}) VALUES ({d.marks(15)}) "
        "ON CONFLICT(session_id) DO UPDATE SET "
        "first_seen = CASE WHEN excluded.first_seen < s.first_seen THEN excluded.first_seen ELSE s.first_seen END, "
        "last_seen = CASE WHEN excluded.last_seen > s.last_seen THEN excluded.last_seen ELSE s.last_seen END, "
        "calls = s.calls + excluded.calls, errors = s.errors + excluded.errors, "
        "input_tokens = s.input_tokens + excluded.input_tokens, "
        "output_tokens = s.output_tokens + excluded.output_tokens, "
        "cache_read_tokens = s.cache_read_tokens + excluded.cache_read_tokens, "
        "cache_creation_tokens = s.cache_creation_tokens + excluded.cache_creation_tokens, "
        "cost = s.cost + excluded.cost, unpriced = s.unpriced + excluded.unpriced, "
        f"models_asked = CASE WHEN {d.instr('s.models_asked', 'excluded.models_asked')} > 0 THEN s.models_asked "
        "ELSE s.models_asked || ltrim(excluded.models_asked) END, "
        "models_served = CASE WHEN excluded.models_served = ' ' "
        f"OR {d.instr('s.models_served', 'excluded.models_served')} > 0 "
        "THEN s.models_served ELSE s.models_served || ltrim(excluded.models_served) END, "
        "agents = s.agents + excluded.agents, cc_version = coalesce(excluded.cc_version, s.cc_version)",
        [*s[:11], f" {asked[0]} " if asked else " ", f" {served[0]} " if served else " ", *s[13:]],
    )
    for column, words in (("models_asked", asked[1:]), ("models_served", served[1:])):
        for word in words:
            conn.execute(
                f"UPDATE sessions SET {column} = {column} || {d.p} WHERE session_id = {d.p} "
                f"AND {d.instr(column, d.p)} = 0",
                (word + " ", s[0], f" {word} "),
            )


def _add_call(row: list[Any], at: int, r: Record, failed: int, cost: float, unpriced: int) -> None:
    """Add a call to a row whose columns from `at` are first_seen, last_seen, calls, errors, the four token
    counts, cost, unpriced, models_asked, models_served (an agent's and a session's alike)."""
    u = r.usage
    row[at] = min(row[at], r.started_at)
    row[at + 1] = max(row[at + 1], r.started_at)
    row[at + 2] += 1
    row[at + 3] += failed
    row[at + 4] += u.input_tokens
    row[at + 5] += u.output_tokens
    row[at + 6] += u.cache_read_tokens
    row[at + 7] += u.cache_creation_tokens
    row[at + 8] += cost
    row[at + 9] += unpriced
    row[at + 10] = _add(row[at + 10] or " ", r.request_model)
    row[at + 11] = _add(row[at + 11] or " ", r.response_model)


def _parent(conn: Conn, r: Record) -> tuple[str | None, str | None]:
    """The call whose `Agent` tool_use started this sub-agent: the one whose prompt is this agent's first
    message, else the latest unclaimed spawn of the session before it; None when none can be told. An agent
    spawned by a sub-agent names that sub-agent (`x-claude-code-parent-agent-id`): only its spawns are looked
    at, and it is the parent even when none of its spawns is found."""
    known = r.parent_agent_id
    p = conn.dialect.p
    by_parent: tuple[str, list[Any]] = (f"AND agent_id = {p}", [known]) if known else ("", [])
    for where, params in (
        (f"AND prompt = {p}", [r.preview]),
        ("", []),
    ):
        row = conn.execute(
            f"SELECT rowid, call_id, agent_id FROM spawns WHERE session_id = {p} AND claimed_by IS NULL "
            f"AND started_at <= {p} {where} {by_parent[0]} ORDER BY started_at DESC LIMIT 1",
            [r.session_id, r.started_at, *params, *by_parent[1]],
        ).fetchone()
        if row is not None:
            conn.execute(f"UPDATE spawns SET claimed_by = {p} WHERE rowid = {p}", (r.agent_id, row[0]))
            return row[1], row[2]
    return None, known


def prune(conn: Conn, cutoff: float) -> None:
    """Forget the roll-ups of sessions and days that ended before `cutoff` (with their records)."""
    p = conn.dialect.p
    conn.execute(
        f"DELETE FROM agents WHERE session_id IN (SELECT session_id FROM sessions WHERE last_seen < {p})",
        (cutoff,),
    )
    conn.execute(f"DELETE FROM spawns WHERE started_at < {p}", (cutoff,))
    conn.execute(f"DELETE FROM sessions WHERE last_seen < {p}", (cutoff,))
    conn.execute(f"DELETE FROM daily WHERE day < {p}", (day_of(cutoff),))
    conn.execute(f"DELETE FROM reservations WHERE started_at < {p}", (cutoff,))


# -- reading -----------------------------------------------------------------------------------------------
def _words(v: str | None) -> tuple[str, ...]:
    return tuple((v or "").split())


def to_agent(row: Sequence[Any]) -> AgentTotals:
    v: list[Any] = list(row)
    v[12], v[13] = _words(v[12]), _words(v[13])
    return AgentTotals(*v)


def to_session(row: Sequence[Any], main: AgentTotals | None) -> SessionTotals:
    v: list[Any] = list(row)
    v[11], v[12] = _words(v[11]), _words(v[12])
    v.append(main)
    return SessionTotals(*v)


def agents(conn: Conn, session_id: str) -> list[AgentTotals]:
    """The session's agents, the main one first, then sub-agents in the order they started."""
    p = conn.dialect.p
    rows = conn.execute(
        f"SELECT {_AGENT_COLS} FROM agents WHERE session_id = {p} ORDER BY agent_id != '', first_seen",
        (session_id,),
    ).fetchall()
    return [to_agent(r) for r in rows]


def _main(conn: Conn, session_id: str) -> AgentTotals | None:
    p = conn.dialect.p
    row = conn.execute(
        f"SELECT {_AGENT_COLS} FROM agents WHERE session_id = {p} AND agent_id = ''", (session_id,)
    ).fetchone()
    return to_agent(row) if row else None


def sessions(conn: Conn, limit: int = 50, since: float | None = None) -> list[SessionTotals]:
    """Newest first (by last call)."""
    p = conn.dialect.p
    where, params = (f"WHERE last_seen >= {p}", [since]) if since is not None else ("", [])
    rows = conn.execute(
        f"SELECT {_SESSION_COLS} FROM sessions {where} ORDER BY last_seen DESC LIMIT {p}", [*params, limit]
    ).fetchall()
    return [to_session(r, _main(conn, r[0])) for r in rows]


def session(conn: Conn, session_id: str) -> SessionTotals | None:
    p = conn.dialect.p
    row = conn.execute(
        f"SELECT {_SESSION_COLS} FROM sessions WHERE session_id = {p}", (session_id,)
    ).fetchone()
    return to_session(row, _main(conn, session_id)) if row else None


def spend_on(conn: Conn, day: str) -> float:
    p = conn.dialect.p
    row = conn.execute(f"SELECT cost FROM daily WHERE day = {p}", (day,)).fetchone()
    return float(row[0]) if row else 0.0


# -- reservations (the budget's, proxy/exchange/budget.py) ------------------------------------------------------------
def create_reservations(conn: Conn) -> None:
    """The reservations table in a store made before it existed (idempotent, no schema version)."""
    for sql in _reservations_ddl(conn.dialect):
        conn.execute(sql)


def standing(conn: Conn, day: str, session_id: str | None) -> tuple[float, float, float, float]:
    """(today's spend, today's reservations, the session's spend, the session's reservations) in one statement,
    so one snapshot: a record committed meanwhile moves its cost from one column to the other, never out."""
    p = conn.dialect.p
    row = conn.execute(
        f"SELECT (SELECT coalesce(sum(cost), 0) FROM daily WHERE day = {p}), "
        f"(SELECT coalesce(sum(amount), 0) FROM reservations WHERE day = {p}), "
        f"(SELECT coalesce(sum(cost), 0) FROM sessions WHERE session_id = {p}), "
        f"(SELECT coalesce(sum(amount), 0) FROM reservations WHERE session_id = {p})",
        (day, day, session_id or "", session_id or ""),
    ).fetchone()
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def reserve(
    conn: Conn,
    rid: str,
    day: str,
    session_id: str | None,
    amount: float,
    started_at: float,
    holder: str,
    daily_cap: float | None,
    session_cap: float | None,
) -> tuple[bool, tuple[float, float, float, float]]:
    """Inside a transaction that serialises admissions (the caller's lock): read the standing and, when this
    call's `amount` keeps every cap, write its reservation. Returns (admitted, standing before it)."""
    p = conn.dialect.p
    st = standing(conn, day, session_id)
    ok = (daily_cap is None or st[0] + st[1] + amount <= daily_cap) and (
        session_cap is None or not session_id or st[2] + st[3] + amount <= session_cap
    )
    if ok:
        # a reservation written late (its call admitted while the store was slow) whose record is already
        # committed would never be settled: not written
        conn.execute(
            "INSERT INTO reservations (id, day, session_id, amount, started_at, holder) "
            f"SELECT {conn.dialect.marks(6)} WHERE NOT EXISTS (SELECT 1 FROM records WHERE id = {p}) "
            "ON CONFLICT(id) DO NOTHING",
            (rid, day, session_id, amount, started_at, holder, rid),
        )
    return ok, st


def reserved(conn: Conn, day: str, holder: str, since: float) -> tuple[int, float, int, float]:
    """Today's reservations: (count, USD) in all, and (count, USD) of those another holder made before `since`
    (this process's start): calls a gateway that stopped abruptly left in flight, or another replica's."""
    p = conn.dialect.p
    row = conn.execute(
        "SELECT count(*), coalesce(sum(amount), 0), "
        f"coalesce(sum(CASE WHEN holder <> {p} AND started_at < {p} THEN 1 ELSE 0 END), 0), "
        f"coalesce(sum(CASE WHEN holder <> {p} AND started_at < {p} THEN amount ELSE 0 END), 0) "
        f"FROM reservations WHERE day = {p}",
        (holder, since, holder, since, day),
    ).fetchone()
    return int(row[0]), float(row[1]), int(row[2]), float(row[3])
