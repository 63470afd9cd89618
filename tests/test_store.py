"""The store: records from real exchanges, secrets kept out, filters, exports, crash safety."""

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import orjson
import pytest

from proxy import query
from proxy.export import kong_record, write
from proxy.record import Attempt, Record, Usage
from proxy.simulator import Reply
from proxy.store import Store, StoreError, connect
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


def filled(tmp_path, records) -> Store:
    store = Store(tmp_path / "g.db").start()
    for r in records:
        store.submit(r)
    store.close()
    return store


async def test_records_from_real_exchanges_land_with_usage_cost_and_attempts(tmp_path, fake, sa_json):
    store = Store(tmp_path / "g.db", secrets=[API_KEY]).start()
    raw = {"targets": [target_for("gemini", fake, sa_json)]}
    async for gw in run_gateway(raw, fake):
        gw.gateway.on_record = store.submit
        fake.script(Reply.text("four five six", prompt_tokens=1000, cached_tokens=200))
        async with gw.client.messages.stream(
            model="claude-opus-5-5", max_tokens=50, messages=[{"role": "user", "content": "find the bug"}]
        ) as s:
            await s.get_final_message()
    store.close()
    rows = store.page("")
    assert len(rows) == 1
    rec = store.get(rows[0]["id"])
    assert (
        rec.usage.input_tokens == 800 and rec.usage.cache_read_tokens == 200 and rec.usage.output_tokens == 3
    )
    # gemini-2.5-flash: 800 × 0.30 + 3 × 2.50 + 200 × 0.075 per 1M
    assert rec.usage.cost == pytest.approx((800 * 0.30 + 3 * 2.50 + 200 * 0.075) / 1e6)
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


@pytest.mark.parametrize(
    "flt,expected",
    [
        ("", 20),
        ("model:flash", 20),
        ("model:pro", 0),
        ("target:vertex*", 20),
        ("status:200", 18),
        ("status:5xx", 2),
        ("status:>=400", 2),
        ("status:error", 2),
        ("tool:Bash", 10),
        ("-tool:Bash", 10),
        ("latency>110", 9),
        ("latency>0.11s", 9),
        ("cost>0.0005", 20),
        ("stream:yes", 5),
        ("session:abc", 3),
        ("number", 20),
        ('"prompt number 7"', 1),
        ("answer 12", 1),
        ("since:2026-10-01", 0),
        ("since:2026-01-01", 20),
        ("until:2030-01-01 model:flash status:200", 18),
        ("kind:count", 1),
        ("cancelled:yes", 1),
    ],
)
def test_each_filter_term(tmp_path, flt, expected):
    recs = [
        make(
            i,
            status=500 if i in (3, 4) else 200,
            error_type="api_error" if i in (3, 4) else None,
            request_mode="stream" if i < 5 else "oneshot",
            session_id="abc-1" if i < 3 else "zzz",
            kind="count_tokens" if i == 19 else "messages",
            cancelled=i == 18,
        )
        for i in range(20)
    ]
    store = filled(tmp_path, recs)
    assert store.count(flt) == expected


def test_durations_parse_for_since_and_prune():
    assert query.parse_duration("15m") == 900 and query.parse_duration("2h") == 7200
    assert query.parse_duration("1.5d") == 129600 and query.parse_duration("soon") is None


def test_bad_filters_say_what_is_wrong():
    for flt, needle in [
        ("since:yesterday", "since/until"),
        ("status:abc", "status:abc"),
        ("cost>cheap", "not a number"),
        ("stream:maybe", "yes or no"),
        ('"open', "quotes"),
    ]:
        with pytest.raises(query.QueryError, match=needle):
            query.compile(flt)


def test_pages_are_newest_first_and_keyset_paging_continues(tmp_path):
    store = filled(tmp_path, [make(i) for i in range(250)])
    first = store.page("", limit=100)
    assert first[0]["id"] == "req_000249"
    nxt = store.page("", limit=100, before=(first[-1]["started_at"], first[-1]["rowid"]))
    assert nxt[0]["id"] == "req_000149" and len(nxt) == 100


def test_exports_json_jsonl_and_kong(tmp_path):
    store = filled(
        tmp_path,
        [
            make(
                i,
                tried_targets=[
                    Attempt(
                        target="a",
                        provider="vertex",
                        model="gemini-2.5-flash",
                        status=429,
                        error="rate",
                        latency_ms=5,
                    ),
                    Attempt(
                        target="b", provider="gemini", model="gemini-2.5-flash", status=200, latency_ms=50
                    ),
                ],
                request_headers={"host": "localhost:8000", "x-api-key": "REDACTED"},
                query="beta=true",
                path="/v1/messages",
                usage=Usage(
                    input_tokens=100,
                    cache_read_tokens=50,
                    output_tokens=10,
                    cost=0.5,
                    time_to_first_token=40,
                    time_per_token=5,
                ),
            )
            for i in range(3)
        ],
    )
    import io

    buf = io.BytesIO()
    assert write(store.iter_records(""), "json", buf) == 3
    assert [r["id"] for r in json.loads(buf.getvalue())] == ["req_000000", "req_000001", "req_000002"]
    buf = io.BytesIO()
    write(store.iter_records("answer 1"), "jsonl", buf)
    assert [json.loads(line)["id"] for line in buf.getvalue().splitlines()] == ["req_000001"]
    buf = io.BytesIO()
    write(store.iter_records(""), "kong", buf)
    kong = [json.loads(line) for line in buf.getvalue().splitlines()]
    k = kong[0]
    assert k["request"]["querystring"] == {"beta": "true"} and k["request"]["url"].startswith(
        "http://localhost:8000/"
    )
    assert k["ai"]["proxy"]["usage"]["prompt_tokens"] == 150
    assert k["ai"]["proxy"]["usage"]["prompt_tokens_details"] == {"cached_tokens": 50}
    assert k["ai"]["proxy"]["meta"]["request_mode"] == "oneshot"
    assert [t["gatewatch"]["status"] for t in k["ai"]["proxy"]["tried_targets"]] == [429, 200]
    assert k["upstream_status"] == "429, 200" and k["started_at"] == 1_790_000_000_000


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
    import proxy.store as st

    monkeypatch.setattr(st, "RETRIES", 20)
    store = Store(tmp_path / "g.db")
    blocker = sqlite3.connect(tmp_path / "g.db", timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(st, "connect", lambda p, create=True: _short_timeout(p))
    store.start()
    store.submit(make(1))
    time.sleep(0.5)
    assert store.stats.retries >= 1 and store.stats.written == 0
    blocker.execute("COMMIT")
    store.close()
    assert store.stats.written == 1 and store.stats.lost == 0


def _short_timeout(p):
    c = sqlite3.connect(p, timeout=0.05, isolation_level=None, check_same_thread=False)
    return c


def test_a_writer_killed_mid_batch_leaves_every_committed_record(tmp_path):
    db = tmp_path / "g.db"
    script = f"""
import sys, time
sys.path.insert(0, {os.getcwd()!r})
from tests.test_store import make
from proxy.store import Store
s = Store({str(db)!r}).start()
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
    conn = connect(db)
    n = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert n >= committed
    assert conn.execute("SELECT count(*) FROM records_fts").fetchone()[0] == n


def test_prune_deletes_old_records(tmp_path):
    now = time.time()
    store = filled(tmp_path, [make(i, started_at=now - 86400 * 40 if i < 5 else now) for i in range(10)])
    assert store.prune(30 * 86400) == 5
    assert store.count("") == 5 and store.count("number") == 5


def test_the_file_log_mirror_writes_kong_lines_0600(tmp_path):
    log = tmp_path / "claude.json"
    store = Store(tmp_path / "g.db", secrets=["supersecretvalue"], file_log=str(log)).start()
    store.submit(make(1, preview="leak supersecretvalue here"))
    store.close()
    lines = log.read_bytes().splitlines()
    assert len(lines) == 1 and b"supersecretvalue" not in log.read_bytes()
    assert orjson.loads(lines[0])["ai"]["proxy"]["meta"]["request_model"] == "claude-opus-5-5"
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    assert kong_record(make(2))["ai"]["proxy"]["usage"]["cost"] == 0.001


def test_repeated_system_and_tools_are_stored_once_and_read_back_whole(tmp_path):
    req = cc_requests.first_turn()
    upstream = {
        "contents": [],
        "tools": [{"functionDeclarations": [{"name": "Bash", "description": "d" * 5000}]}],
        "systemInstruction": {"parts": [{"text": "s" * 5000}]},
    }
    store = filled(tmp_path, [make(i, client_request=req, upstream_request=upstream) for i in range(50)])
    conn = store.reader()
    # the client's tools, the upstream tools and system (the client's short system stays inline)
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 3
    assert all(len(r[0]) < 6000 for r in conn.execute("SELECT data FROM records"))
    assert store.get("req_000007").client_request == req
    assert store.get("req_000007").upstream_request == upstream
    exported = list(store.iter_records("number 9"))
    assert exported[0]["client_request"]["tools"] == req["tools"]


def test_a_kill_before_commit_replays_shared_parts_too(tmp_path):
    db = tmp_path / "b.db"
    req = cc_requests.first_turn()
    script = f"""
import os, signal, sys
sys.path.insert(0, {os.getcwd()!r})
import proxy.store as st
st.BATCH_WAIT = 30
from tests.test_store import make
from tests import cc_requests
s = st.Store({str(db)!r}).start()
for i in range(20):
    s.submit(make(i, client_request=cc_requests.first_turn()))
os.kill(os.getpid(), signal.SIGKILL)
"""
    subprocess.run([sys.executable, "-c", script], timeout=60)
    s = Store(db).start()
    assert s.replayed == 20
    s.close()
    assert Store(db).get("req_000019").client_request == req


def test_prune_also_drops_shared_parts_no_record_names_any_more(tmp_path):
    now = time.time()
    old_req = {
        **cc_requests.first_turn(),
        "tools": [{"name": "Old", "description": "o" * 4000, "input_schema": {}}],
    }
    new_req = cc_requests.first_turn()
    store = filled(
        tmp_path,
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


def test_free_text_pages_newest_first_combined_with_filters_and_keyset(tmp_path):
    store = filled(tmp_path, [make(i) for i in range(250)])
    first = store.page("number", limit=100)
    assert first[0]["id"] == "req_000249" and len(first) == 100
    nxt = store.page("number", limit=100, before=(first[-1]["started_at"], first[-1]["rowid"]))
    assert nxt[0]["id"] == "req_000149" and len(nxt) == 100
    assert [r["id"] for r in store.page("number tool:Bash", limit=3)] == [
        "req_000249",
        "req_000247",
        "req_000245",
    ]
    assert [r["id"] for r in store.page('"number 7" -tool:Bash', limit=5)] == []  # 7 is odd: it used Bash
    assert store.page("nothing-matches-this") == []


def test_a_capped_count_stops_early_but_an_uncapped_one_is_exact(tmp_path):
    store = filled(tmp_path, [make(i) for i in range(30)])
    assert store.count("number") == 30 and store.count("number", cap=10) == 11
    assert store.count("", cap=10) == 11 and store.count("status:200", cap=100) == 30
