"""The session ledger: a Claude Code session with two sub-agents, sent over HTTP as the CLI sends it through
the real gateway to the strict fake, committed to a real SQLite store, gives the right tree, roll-ups,
context meter and compaction mark."""

from __future__ import annotations

import time

import pytest

from proxy.record import Record, Usage
from proxy.store import Store
from proxy.store.query import parse
from proxy.translate import catalog
from tests import cc_session as cs
from tests.conftest import run_gateway, target_for


@pytest.fixture
async def session_store(backend, fake, sa_json):
    """The session committed to a store on each backend (SQLite, PostgreSQL)."""
    raw = {"targets": [target_for("gemini", fake, sa_json)]}
    async for gw in run_gateway(raw, fake):
        n = await cs.play(gw.url, fake)
        assert len(gw.records) == n
        store = backend.open().start()
        for r in gw.records:
            store.submit(r)
        store.close()
        yield store, gw.records


async def test_the_session_is_a_tree_of_the_main_agent_and_its_two_sub_agents(session_store):
    store, records = session_store
    main, a, b = store.agents(cs.SESSION)
    assert (main.agent_id, a.agent_id, b.agent_id) == ("", cs.AGENT_A, cs.AGENT_B)
    spawner = records[0]
    assert spawner.spawned == [cs.PROMPT_A, cs.PROMPT_B] and spawner.tools_used == ["Agent", "Agent"]
    assert a.parent_call == spawner.id and b.parent_call == spawner.id
    assert a.parent_agent == "" and b.parent_agent == ""
    assert main.parent_call is None
    assert (main.calls, a.calls, b.calls) == (5, 2, 1)
    assert a.first_prompt == cs.PROMPT_A and a.cc_version == "2.1.331.03b"


async def test_sub_agent_calls_carry_their_agent_id_and_billing_fields(session_store):
    store, records = session_store
    subs = [r for r in records if r.agent_id]
    assert {r.agent_id for r in subs} == {cs.AGENT_A, cs.AGENT_B}
    assert all(r.cc_is_subagent for r in subs)
    assert all(r.cc_is_subagent is False for r in records if not r.agent_id)
    rows = store.page(parse(f"agent:{cs.AGENT_A[:6]}"))
    assert len(rows) == 2 and {r.agent_id for r in rows} == {cs.AGENT_A}
    assert len(store.page(parse("agent:main"))) == 5
    assert len(store.page(parse("-agent:main"))) == 3


async def test_the_session_roll_up_adds_every_call_of_every_agent(session_store):
    store, records = session_store
    s = store.session(cs.SESSION)
    assert s is not None and s.calls == 8 and s.agents == 2 and s.errors == 0
    assert s.input_tokens == sum(r.usage.input_tokens for r in records)
    assert s.output_tokens == sum(r.usage.output_tokens for r in records)
    assert s.cache_read_tokens == sum(r.usage.cache_read_tokens for r in records) == 224_000
    assert s.cost == pytest.approx(sum(r.usage.cost for r in records))
    assert s.first_seen == min(r.started_at for r in records)
    assert s.last_seen == max(r.started_at for r in records)
    assert set(s.models_asked) == {"gemini-2.5-flash", "claude-haiku-5-5"}
    assert s.models_served == ("gemini-2.5-flash",)
    assert s.cc_version == "2.1.331.03b"
    assert [x.session_id for x in store.sessions()] == [cs.SESSION]


async def test_the_context_meter_is_the_last_prompt_against_the_served_model_s_real_window(session_store):
    store, _ = session_store
    main, a, b = store.agents(cs.SESSION)
    assert main.ctx_tokens == 24_000 and main.ctx_model == "gemini-2.5-flash"
    assert catalog.window(main.ctx_model) == 1_048_576  # not Claude's 200k
    assert a.ctx_tokens == 15_000 and b.ctx_tokens == 9_000


async def test_a_sharp_drop_in_the_prompt_is_marked_as_a_compaction_and_a_side_call_is_not(session_store):
    store, records = session_store
    main, a, b = store.agents(cs.SESSION)
    assert main.compactions == 1 and main.last_compaction_at == records[-1].started_at
    assert a.compactions == 0 and b.compactions == 0


def rec(i: int, **kw) -> Record:
    base = dict(id=f"r{i}", started_at=time.time() + i, status=200, request_model="gemini-2.5-pro")
    base.update(kw)
    return Record(**base)


def _rewind_to_step_3(backend) -> None:
    """The database as a gatewatch from before the ledger left it: no roll-ups, no agent columns or index, the
    schema at step 3 (the ledger's tables stay: creating them again is part of the step)."""
    undo = [
        "DELETE FROM sessions",
        "DELETE FROM agents",
        "DELETE FROM daily",
        "DROP INDEX {index}",
        *(f"ALTER TABLE records DROP COLUMN {col}" for col in ("agent_id", "cc_version", "cc_is_subagent")),
    ]
    if backend.name == "sqlite":
        import sqlite3

        with sqlite3.connect(backend.where) as c:
            for sql in undo:
                c.execute(sql.format(index="idx_records_session_agent"))
            c.execute("PRAGMA user_version = 3")
        return
    import psycopg

    from proxy.store import postgres

    with psycopg.connect(backend.where, autocommit=True) as c:
        c.execute("SET search_path TO gatewatch")
        for sql in undo:
            c.execute(sql.format(index="records_session_agent"))
        c.execute("UPDATE meta SET value = '3' WHERE key = 'steps'")
    postgres._schema_ready.clear()  # as a gatewatch process that has not connected yet


def test_a_store_from_before_the_ledger_is_rolled_up_when_it_migrates(backend):
    """The same steps and back-fills on both databases (proxy/store/schema.py)."""
    store = backend.open().start()
    t0 = time.time()
    store.submit(
        rec(1, started_at=t0, session_id="s1", usage=Usage(input_tokens=10, total_tokens=10, cost=0.5))
    )
    store.submit(rec(2, session_id="s1", usage=Usage(input_tokens=5, total_tokens=5), status=500))
    store.submit(rec(3, started_at=t0 - 3 * 86400, session_id="s0", usage=Usage(cost=0.125)))
    store.close()
    _rewind_to_step_3(backend)
    again = backend.open()
    s = again.session("s1")
    assert s is not None and s.calls == 2 and s.errors == 1 and s.cost == pytest.approx(0.5)
    assert s.unpriced == 1 and s.models_asked == ("gemini-2.5-pro",)
    assert again.spend_today() == pytest.approx(0.5)  # by local day, as the writer counts it
    assert [a.agent_id for a in again.agents("s1")] == [""]
    assert again.count(parse("agent:main")) == 3  # the agent columns are back, empty


def test_spend_today_survives_a_restart_and_pruning_forgets_old_sessions(backend):
    store = backend.open().start()
    store.submit(rec(1, session_id="s1", usage=Usage(cost=0.25)))
    store.submit(rec(2, started_at=time.time() - 40 * 86400, session_id="old", usage=Usage(cost=9.0)))
    store.close()
    again = backend.open()
    assert again.spend_today() == pytest.approx(0.25)
    assert again.prune(30 * 86400) == 1
    assert again.session("old") is None and again.session("s1") is not None


async def test_stats_by_session_and_by_agent(session_store, capsys):
    from console.cli import main

    store, records = session_store
    assert main(["stats", "--db", store.where, "--by", "session", "--by", "agent"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["session", "requests"]
    assert any(line.split()[:2] == [cs.SESSION, "8"] for line in lines)
    agents = {line.split()[0]: line.split()[1] for line in lines if line.startswith(cs.SESSION + "/")}
    assert agents == {
        f"{cs.SESSION}/main": "5",
        f"{cs.SESSION}/{cs.AGENT_A}": "2",
        f"{cs.SESSION}/{cs.AGENT_B}": "1",
    }


def test_a_batch_rolls_up_as_its_records_one_by_one_would(tmp_path):
    """The roll-ups are written once per batch (an agent's row read once, a session's additions one upsert):
    the same records committed in one batch and one per batch give the same sessions, agents and days, a
    second session and a second model in the batch included."""
    from proxy.store import ledger
    from tests import session_records

    recs = session_records.records() + session_records.records(session="other-session", t0=1_790_000_500.0)
    recs[3] = recs[3].model_copy(
        update={"request_model": "claude-haiku-4-5", "response_model": "gemini-2.5-pro"}
    )
    one_by_one, batched = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    for store in (one_by_one, batched):
        store.start()
        store.close()
    conns = one_by_one.reader(), batched.reader()
    with conns[0]:
        for r in recs:
            ledger.roll_up(conns[0], [r])
    with conns[1]:
        ledger.roll_up(conns[1], recs)
    for table in ("sessions", "agents", "daily", "spawns"):
        rows = [c.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for c in conns]
        assert [tuple(r) for r in rows[0]] == [tuple(r) for r in rows[1]] and rows[0], table
    s = batched.session(cs.SESSION)
    assert s is not None and s.calls == 8 and set(s.models_asked) >= {"claude-haiku-4-5"}
    assert "gemini-2.5-pro" in s.models_served
