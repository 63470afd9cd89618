"""The store: records from real exchanges, secrets kept out, filters, exports, crash safety."""

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from proxy.record import Record, Usage
from proxy.record.events import Bus, RecordsCommitted, RecordsLost
from proxy.simulator import Reply
from proxy.store import Store, StoreError, connect
from proxy.store.query import parse
from proxy.store.schema import SCHEMA_VERSION
from tests import cc_requests
from tests.conftest import API_KEY, run_gateway, target_for


def make(i: int, **kw) -> Record:
    base = dict(
        id=f"req_{i:06d}",
        started_at=1_790_000_000 + i,
        ended_at=1_790_000_001 + i,
        status=200,
        request_model="claude-opus-5-5",
        response_model="gemini-2.5-flash",
        target="vertex-flash",
        provider="vertex",
        preview=f"prompt number {i}",
        response_text=f"answer {i}",
        usage=Usage(input_tokens=100, output_tokens=10, cost=0.001),
        latency_ms=100 + i,
        tools_used=["Bash"] if i % 2 else [],
    )
    base.update(kw)
    return Record(**base)


def filled(backend, records):
    """A store on `backend` (tests/conftest.py: SQLite or PostgreSQL; a directory: SQLite there) with these
    records committed."""
    store = (Store(backend / "g.db") if isinstance(backend, os.PathLike) else backend.open()).start()
    for r in records:
        store.submit(r)
    store.close()
    return store


async def test_records_from_real_exchanges_land_with_usage_cost_and_attempts(backend, fake, sa_json):
    store = backend.open(secrets=[API_KEY]).start()
    raw = {"targets": [target_for("gemini", fake, sa_json)]}
    async for gw in run_gateway(raw, fake):
        gw.gateway.on_record = store.submit
        fake.script(Reply.text("four five six", prompt_tokens=1000, cached_tokens=200))
        async with gw.client.messages.stream(
            model="claude-opus-5-5", max_tokens=50, messages=[{"role": "user", "content": "find the bug"}]
        ) as s:
            await s.get_final_message()
    store.close()
    rows = store.page()
    assert len(rows) == 1
    rec = store.get(rows[0].id)
    assert (
        rec.usage.input_tokens == 800 and rec.usage.cache_read_tokens == 200 and rec.usage.output_tokens == 3
    )
    # gemini-2.5-flash: 800 × 0.30 + 3 × 2.50 + 200 × 0.03 per 1M
    assert rec.usage.cost == pytest.approx((800 * 0.30 + 3 * 2.50 + 200 * 0.03) / 1e6)
    assert rec.tried_targets[0].status == 200 and rec.tried_targets[0].latency_ms > 0
    assert rec.usage.time_to_first_token > 0 and rec.latency_ms >= rec.usage.time_to_first_token
    assert rec.preview == "find the bug" and rec.response_text == "four five six"


async def test_no_secret_reaches_the_database_file(tmp_path, fake, sa_json):
    db = tmp_path / "g.db"
    key_json = json.loads(sa_json)
    store = Store(db, secrets=[API_KEY, sa_json]).start()
    for provider in ("vertex", "gemini"):
        async for gw in run_gateway({"targets": [target_for(provider, fake, sa_json)]}, fake):
            gw.gateway.on_record = store.submit
            req = cc_requests.first_turn(stream=False)
            import aiohttp

            async with aiohttp.ClientSession() as http:
                await (
                    await http.post(
                        gw.url + "/v1/messages",
                        json=req,
                        headers={
                            "x-api-key": "sk-ant-api03-SECRETSECRET",
                            "authorization": "Bearer sk-ant-oat-TOKENTOKEN",
                            "cookie": "session=COOKIECOOKIE",
                            "x-goog-api-key": "AIzaLEAKLEAK",
                        },
                    )
                ).read()
    store.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("g.db"))
    for secret in [
        b"SECRETSECRET",
        b"TOKENTOKEN",
        b"COOKIECOOKIE",
        b"AIzaLEAKLEAK",
        API_KEY.encode(),
        key_json["private_key"].split("\n")[1].encode(),
        b"ya29.sim-",
    ]:
        assert secret not in data
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_pages_are_newest_first_and_keyset_paging_continues(backend):
    store = filled(backend, [make(i) for i in range(250)])
    first = store.page(limit=100)
    assert first[0].id == "req_000249"
    nxt = store.page(limit=100, after=first[-1])
    assert nxt[0].id == "req_000149" and len(nxt) == 100


def test_a_foreign_or_broken_file_gets_a_clear_message(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a gatewatch database"):
        Store(junk)
    other = tmp_path / "other.db"
    c = sqlite3.connect(other)
    c.execute("create table customers (id)")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="belongs to something else"):
        Store(other)


def test_a_locked_database_is_retried_not_lost(tmp_path, monkeypatch):
    import proxy.store.sqlite as st
    import proxy.store.writer as wr

    monkeypatch.setattr(wr, "RETRIES", 20)
    store = Store(tmp_path / "g.db")
    blocker = sqlite3.connect(tmp_path / "g.db", timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(st, "connect", lambda p, create=True: _short_timeout(p))
    store.start()
    store.submit(make(1))
    deadline = time.monotonic() + 10
    while store.stats.retries < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.stats.retries >= 1 and store.stats.written == 0
    blocker.execute("COMMIT")
    store.close()
    assert store.stats.written == 1 and store.stats.lost == 0


def _short_timeout(p):
    from proxy.store.sqlite import Connection

    return sqlite3.connect(p, timeout=0.05, isolation_level=None, check_same_thread=False, factory=Connection)


def test_a_writer_killed_mid_batch_leaves_every_committed_record(backend):
    script = f"""
import sys, time
sys.path.insert(0, {os.getcwd()!r})
from tests.test_store import make
from proxy.store import open_store
s = open_store({backend.where!r}).start()
i = 0
while True:
    s.submit(make(i)); i += 1
    if i % 50 == 0:
        time.sleep(0.01)
        print(s.stats.written, flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    committed = 0
    for line in proc.stdout:
        committed = int(line)
        if committed >= 1000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n = backend.open().count()
    assert n >= committed
    assert backend.open().count(parse("number")) == n  # every record committed is in the full-text index
    if backend.name == "sqlite":
        conn = connect(backend.where)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM records_fts").fetchone()[0] == n


def test_prune_deletes_old_records(backend):
    now = time.time()
    store = filled(backend, [make(i, started_at=now - 86400 * 40 if i < 5 else now) for i in range(10)])
    assert store.prune(30 * 86400) == 5
    assert store.count() == 5 and store.count(parse("number")) == 5


def test_repeated_system_and_tools_are_stored_once_and_read_back_whole(backend):
    req = cc_requests.first_turn()
    upstream = {
        "contents": [],
        "tools": [{"functionDeclarations": [{"name": "Bash", "description": "d" * 5000}]}],
        "systemInstruction": {"parts": [{"text": "s" * 5000}]},
    }
    store = filled(backend, [make(i, client_request=req, upstream_request=upstream) for i in range(50)])
    conn = store.reader()
    # the client's tools, the upstream tools and system (the client's short system stays inline)
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 3
    assert all(len(r[0]) < 6000 for r in conn.execute("SELECT data FROM records"))
    assert store.get("req_000007").client_request == req
    assert store.get("req_000007").upstream_request == upstream
    exported = list(store.iter_records(parse("number 9")))
    assert exported[0]["client_request"]["tools"] == req["tools"]


def test_a_kill_before_commit_replays_shared_parts_too(backend):
    req = cc_requests.first_turn()
    script = f"""
import os, signal, sys
sys.path.insert(0, {os.getcwd()!r})
import proxy.store.sqlite as st
import proxy.store.writer as wr
wr.BATCH_WAIT = 30
from tests.test_store import make
from tests import cc_requests
from proxy.store import open_store
s = open_store({backend.where!r}).start()
for i in range(20):
    s.submit(make(i, client_request=cc_requests.first_turn()))
os.kill(os.getpid(), signal.SIGKILL)
"""
    subprocess.run([sys.executable, "-c", script], timeout=60)
    assert backend.open().count() == 0  # nothing was committed before the kill
    s = backend.open().start()
    assert s.replayed == 20
    s.close()
    assert backend.open().get("req_000019").client_request == req
    assert backend.open().count(parse("number")) == 20


def test_prune_also_drops_shared_parts_no_record_names_any_more(backend):
    now = time.time()
    old_req = {
        **cc_requests.first_turn(),
        "tools": [{"name": "Old", "description": "o" * 4000, "input_schema": {}}],
    }
    new_req = cc_requests.first_turn()
    store = filled(
        backend,
        [
            make(1, started_at=now - 86400 * 40, client_request=old_req),
            make(2, started_at=now, client_request=new_req),
        ],
    )
    conn = store.reader()
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 2
    assert store.prune(30 * 86400) == 1
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
    assert store.get("req_000002").client_request == new_req


def test_free_text_pages_newest_first_combined_with_filters_and_keyset(backend):
    store = filled(backend, [make(i) for i in range(250)])
    first = store.page(parse("number"), limit=100)
    assert first[0].id == "req_000249" and len(first) == 100
    nxt = store.page(parse("number"), limit=100, after=first[-1])
    assert nxt[0].id == "req_000149" and len(nxt) == 100
    assert [r.id for r in store.page(parse("number tool:Bash"), limit=3)] == [
        "req_000249",
        "req_000247",
        "req_000245",
    ]
    assert [r.id for r in store.page(parse('"number 7" -tool:Bash'), limit=5)] == []  # 7 used Bash
    assert store.page(parse("nothing-matches-this")) == []


def test_a_capped_count_stops_early_but_an_uncapped_one_is_exact(backend):
    store = filled(backend, [make(i) for i in range(30)])
    assert store.count(parse("number")) == 30 and store.count(parse("number"), cap=10) == 11
    assert store.count(cap=10) == 11 and store.count(parse("status:200"), cap=100) == 30


V2_RECORDS = """CREATE TABLE records (
    rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, started_at REAL NOT NULL, ended_at REAL,
    kind TEXT, status INTEGER, request_model TEXT, response_model TEXT, target TEXT, provider TEXT,
    request_mode TEXT, session_id TEXT, client_ip TEXT, user_agent TEXT, path TEXT,
    input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER, thinking_tokens INTEGER,
    total_tokens INTEGER, cost REAL, latency_ms REAL, ttft_ms REAL, ttfb_ms REAL, time_per_token REAL,
    stop_reason TEXT, error_type TEXT, error_message TEXT, cancelled INTEGER, tools_used TEXT,
    attempts INTEGER, preview TEXT, data BLOB)"""


def test_a_version_2_database_opens_migrates_and_keeps_its_records(tmp_path):
    """The layout gatewatch wrote before cache_creation_tokens had a column, written by hand as it was."""
    db = tmp_path / "v2.db"
    rec = make(1, usage=Usage(input_tokens=10, cache_creation_tokens=4000, output_tokens=5, cost=0.01))
    c = sqlite3.connect(db)
    c.execute(V2_RECORDS)
    c.execute("CREATE VIRTUAL TABLE records_fts USING fts5(prompt, response)")
    c.execute("CREATE TABLE blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL)")
    c.execute(
        "INSERT INTO records (id, started_at, status, request_model, input_tokens, output_tokens, cost, "
        "tools_used, attempts, preview, data) VALUES (?, ?, 200, ?, 10, 5, 0.01, ' ', 0, ?, ?)",
        (rec.id, rec.started_at, rec.request_model, rec.preview, rec.model_dump_json()),
    )
    c.execute("INSERT INTO records_fts(rowid, prompt, response) VALUES (1, ?, '')", (rec.preview,))
    c.execute("PRAGMA user_version = 2")
    c.commit()
    c.close()
    store = Store(db).start()
    store.submit(make(2, usage=Usage(cache_creation_tokens=7)))
    store.close()

    assert store.reader().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    old, new = store.page()[::-1]
    assert old.id == "req_000001" and old.cache_creation_tokens == 4000  # filled in from the record's JSON
    assert old.replay_of is None  # schema 5: nobody's replay
    assert new.cache_creation_tokens == 7
    assert store.get("req_000001").usage.cache_creation_tokens == 4000
    assert store.count(parse("number")) == 2


def test_a_reader_gets_what_was_committed_since_its_last_look_in_commit_order(backend):
    """What a console watching a shared store counts (console/watching.py): the records committed after the
    row it last saw, in commit order, a long call that started first but was committed last included."""
    filled(backend, [make(i) for i in range(2)])
    reader = backend.open(create=False)
    try:
        row, none = reader.committed_after(None)  # where counting starts: nothing before it
        assert none == [] and row > 0
        late = make(9, started_at=1_700_000_000)  # started before all the others, committed after them
        filled(backend, [make(2), make(3), late])
        row2, first = reader.committed_after(row, limit=2)
        assert [r.id for r in first] == ["req_000002", "req_000003"]
        assert first[0].usage.input_tokens == 100 and first[0].latency_ms == 102
        row3, rest = reader.committed_after(row2, limit=2)
        assert [r.id for r in rest] == ["req_000009"] and row3 > row2 > row
        assert reader.committed_after(row3) == (row3, [])
    finally:
        reader.close()


def test_committed_batches_are_announced_on_the_bus_from_the_writer_thread(backend):
    import threading

    bus = Bus()
    seen: list[tuple[list[str], str]] = []
    bus.subscribe(
        RecordsCommitted, lambda e: seen.append(([r.id for r in e.records], threading.current_thread().name))
    )
    store = backend.open(bus=bus).start()
    for i in range(3):
        store.submit(make(i))
    store.close()
    assert sorted(i for ids, _ in seen for i in ids) == ["req_000000", "req_000001", "req_000002"]
    assert {name for _, name in seen} == {"gatewatch-store-writer"}


def test_a_batch_given_up_is_announced_as_lost(tmp_path, monkeypatch):
    import proxy.store.sqlite as st
    import proxy.store.writer as wr

    bus = Bus()
    lost: list[RecordsLost] = []
    bus.subscribe(RecordsLost, lost.append)
    store = Store(tmp_path / "g.db", bus=bus)

    def broken(p, create=True):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(wr, "RETRIES", 2)
    monkeypatch.setattr(st, "connect", broken)
    store.start()
    store.submit(make(1))
    store.submit(make(2))
    store.close()
    assert sum(e.count for e in lost) == 2 and lost[-1].total == 2 and "disk I/O error" in lost[-1].error
    assert store.stats.lost == 2


def test_close_is_idempotent_and_a_closed_store_refuses_more(backend):
    store = backend.open().start()
    store.submit(make(1))
    store.close()
    store.close()
    assert store.closed and store.stats.written == 1
    store.submit(make(2))  # a call that ended after shutdown: counted, not silently queued for nobody
    assert store.stats.lost == 1
    with pytest.raises(StoreError, match="closed"):
        store.start()
    assert store.count() == 1  # reading still works


def test_totals_and_summaries_are_typed_reads(backend):
    now = time.time()
    store = filled(
        backend,
        [
            make(1, started_at=now - 60, usage=Usage(cost=0.25)),
            make(2, started_at=now - 86400 * 40, usage=Usage(cost=1.0)),
            make(3, started_at=now - 30, usage=Usage(cost=None), status=500, error_type="api_error"),
        ],
    )
    t = store.totals(now - 3600)
    assert t.cost == pytest.approx(1.25) and t.cost_since == pytest.approx(0.25) and t.records == 3
    assert t.written == 3 and t.lost == 0
    rows = list(store.summaries(parse("since:1h")))
    assert [r.id for r in rows] == ["req_000001", "req_000003"]  # oldest first
    assert rows[1].failed and not rows[0].failed and rows[0].tools_used == ("Bash",)


def test_the_column_table_is_the_schema(tmp_path):
    from proxy.store.columns import COLUMNS, to_row

    store = Store(tmp_path / "g.db")
    cols = [r[1] for r in store.reader().execute("PRAGMA table_info(records)")]
    assert set(cols) == {"rowid", "data", *(c.name for c in COLUMNS)}
    assert len(to_row(make(1), b"{}")) == len(COLUMNS) + 1
    from dataclasses import fields

    from proxy.store import Summary

    assert {f.name for f in fields(Summary)} == {"seq", *(c.name for c in COLUMNS)}


def test_a_column_added_to_the_column_table_appears_when_a_gatewatch_that_knows_it_connects(
    backend, monkeypatch
):
    """A new column is one line of the column table, its `since` the next step: both databases take it."""
    from proxy.store import columns, postgres, schema

    store = filled(backend, [make(1)])  # the tables as today
    step = schema.latest() + 1
    extra = columns.Column("translation_notes", "TEXT", lambda r: None, since=step)
    monkeypatch.setattr(columns, "COLUMNS", (*columns.COLUMNS, extra))
    postgres._schema_ready.clear()  # as a gatewatch process that has not connected yet
    again = backend.open()
    conn = again.reader()
    assert "translation_notes" in again.dialect.columns_of(conn, "records")
    assert again.dialect.version(conn) == step and again.count() == 1 and store.count() == 1


def test_every_field_a_filter_names_is_a_filterable_column_on_both_dialects():
    """The filter language names record fields; the column table says which a filter may put into SQL."""
    from proxy.store import query
    from proxy.store.columns import BY_NAME, FILTERABLE
    from proxy.store.dialect import POSTGRES, SQLITE
    from proxy.store.sql import compile_filter

    for t in query.TERMS:
        if t.parse is None and not t.unit:
            continue
        examples = [e for e in t.example.split("  ") if e and not e.startswith("-")]
        for example in examples:
            flt = query.parse(example)
            for c in flt.conditions:
                named = [f for f in (getattr(c, "field", None), *getattr(c, "fields", ())) if f]
                assert all(f in FILTERABLE and f in BY_NAME for f in named), (example, named)
            for d in (SQLITE, POSTGRES):
                assert compile_filter(flt, d).where, (example, d.name)


def test_the_console_speaks_no_sql_and_the_store_never_imports_export():
    import ast
    import pathlib

    def imports(path: pathlib.Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.add(("." * node.level) + (node.module or ""))
        return names

    root = pathlib.Path(__file__).parent.parent
    for path in (root / "console").glob("*.py"):
        assert "sqlite3" not in imports(path), path
        assert "SELECT " not in path.read_text(), path
    for path in (root / "proxy" / "store").glob("*.py"):
        assert not {n for n in imports(path) if n.endswith("export") or n.endswith("filelog")}, path


def test_an_id_typed_in_part_finds_the_ids_it_starts_and_a_replay_names_its_call(backend):
    store = filled(backend, [make(i) for i in range(12)] + [make(99, replay_of="req_000003")])
    assert store.ids("req_00001") == ["req_000010", "req_000011"]
    assert store.ids("00000", limit=3) == ["req_000000", "req_000001", "req_000002"]  # without its req_
    assert store.ids("req_0%") == [] and store.ids("nothing") == []  # a LIKE wildcard is a character
    import dataclasses

    from proxy.store.query import Present

    replays = dataclasses.replace(parse(""), conditions=(Present("replay_of"),))
    assert [(r.id, r.replay_of) for r in store.page(replays)] == [("req_000099", "req_000003")]
    assert store.count(dataclasses.replace(replays, conditions=(Present("replay_of", negated=True),))) == 12


def test_the_note_filter_matches_a_note_s_kind_whole(backend):
    store = filled(backend, [make(1, notes=["signature injected (x1)"]), make(2), make(3)])
    assert [s.id for s in store.page(parse("note:signature*"))] == ["req_000001"]
    assert [s.id for s in store.page(parse("note:injected"))] == ["req_000001"]  # a plain word: anywhere
    assert store.count(parse("-note:signature-injected")) == 2
    assert store.page(parse("note:signature-injected"))[0].notes == ("signature-injected",)


def test_the_writer_waits_longer_to_fill_a_batch_only_after_a_busy_one(tmp_path, monkeypatch):
    """Light traffic is committed within BATCH_WAIT; after a batch of BUSY_RECORDS or more the writer waits
    BATCH_WAIT_BUSY, so under load a commit's own cost is shared by more records."""
    import proxy.store.writer as wr

    waits: list[float] = []
    real_sleep = wr.time.sleep

    class Clock:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(s: float) -> None:
            waits.append(s)
            real_sleep(s)

    monkeypatch.setattr(wr, "time", Clock())
    store = Store(tmp_path / "w.db").start()

    def committed(n: int) -> None:
        end = time.monotonic() + 30
        while store.stats.written < n:
            assert time.monotonic() < end
            real_sleep(0.01)

    store.submit(make(0))
    committed(1)
    for i in range(1, wr.BUSY_RECORDS + 1):  # a busy batch: all queued before the writer wakes
        store.submit(make(i))
    committed(wr.BUSY_RECORDS + 1)
    store.submit(make(100))  # the batch after the busy one
    committed(wr.BUSY_RECORDS + 2)
    store.submit(make(101))  # after a batch of one: light again
    committed(wr.BUSY_RECORDS + 3)
    store.close()
    assert waits[0] == wr.BATCH_WAIT
    assert waits[-2:] == [wr.BATCH_WAIT_BUSY, wr.BATCH_WAIT]
