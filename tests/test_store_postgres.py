"""The PostgreSQL store on a real server (tests/pg.py): what only it does. The behaviours both backends share
run on both in test_store.py and test_ledger.py (the `backend` fixture)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import psycopg
import pytest

import proxy.store.writer as wr
from proxy import config as cfg
from proxy.record import Usage
from proxy.store import SqliteStore, StoreError, open_store
from proxy.store.columns import COLUMNS
from proxy.store.dialect import POSTGRES
from proxy.store.postgres import PostgresStore, redact
from proxy.store.query import parse
from tests import cc_requests
from tests.conftest import API_KEY, run_gateway, target_for
from tests.pg import Server
from tests.test_store import make

TEXTS = [
    ("Fix the Bug in parser.py", "the bug was an off-by-one"),
    ("rename UserStore_v2 to AccountStore", "renamed 14 files under /usr/src/app"),
    ("what did gemini-2.5-flash say?", "It said HELLO world"),
    ("a naïve café question", "answer in français"),
    ("mail ops@example.com about the outage", "sent"),
    ("hello there", "world peace"),
]
QUERIES = [
    "bug",
    "BUG",
    "parser",
    "py",
    "parser.py",
    "userstore",
    "v2",
    "app",
    "flash",
    "2.5",
    "hello world",
    '"said hello"',
    '"hello world"',
    "cafe",
    "café",
    "francais",
    "example",
    "ops@example.com",
    "bu",
    "-bug",
    "-hello",
    "hello -world",
    "world tool:Bash",
    "model:opus",
    "-model:opus status:200",
]


@pytest.fixture
def pg_url(pg_server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    url = pg_server.fresh_url()
    yield url
    pg_server.drop(url)


def test_full_text_finds_what_sqlite_s_fts5_finds(tmp_path, pg_url):
    records = [make(i, preview=p, response_text=r) for i, (p, r) in enumerate(TEXTS)]
    lite, pg = SqliteStore(tmp_path / "lite.db").start(), PostgresStore(pg_url).start()
    for s in (lite, pg):
        for r in records:
            s.submit(r)
        s.close()
    for q in QUERIES:
        flt = parse(q)
        expected = [r.id for r in lite.page(flt)]
        assert [r.id for r in pg.page(flt)] == expected, q
        assert pg.count(flt) == lite.count(flt), q
    assert [r.id for r in pg.page(parse("parser"))] == ["req_000000"]  # a file name's parts are words
    assert pg.count(parse("bu")) == 0  # whole words, as FTS5: no prefix matching


def test_the_table_is_the_column_table_with_postgresql_types(pg_url):
    PostgresStore(pg_url)
    with psycopg.connect(pg_url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'gatewatch' AND table_name = 'records'"
            ).fetchall()
        )
    assert set(types) == {"seq", "data", "fts", *(c.name for c in COLUMNS)}
    assert types["started_at"] == "double precision" and types["status"] == "bigint"
    assert types["data"] == "bytea" and types["fts"] == "tsvector" and types["id"] == "text"
    assert POSTGRES.type("INTEGER") == "BIGINT" and types["cache_creation_tokens"] == "bigint"


def test_a_database_made_before_the_steps_were_counted_takes_the_later_ones_with_their_back_fills(pg_url):
    """A database an older gatewatch made (`meta` without `steps`, made with the ledger's tables) takes the
    steps after the ledger's as SQLite does: the missing columns and tables, and the notes' kinds of its
    records read back from their JSON."""
    from proxy.store import postgres, schema
    from proxy.translate.notes import Note

    store = PostgresStore(pg_url).start()
    store.submit(make(1, notes=[Note("schema-keyword-removed", "a keyword Gemini does not take")]))
    store.submit(make(2))
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET search_path TO gatewatch")
        conn.execute("DELETE FROM meta WHERE key = 'steps'")
        conn.execute("UPDATE records SET notes = NULL")  # the column came later: older rows have none
        conn.execute("ALTER TABLE records DROP COLUMN parent_agent_id")
        conn.execute("DROP TABLE turns")
    postgres._schema_ready.clear()  # as a gatewatch process that has not connected yet
    reader = PostgresStore(pg_url, create=False)  # a reader takes no step
    assert reader.count(parse("note:schema-keyword-removed")) == 0
    again = PostgresStore(pg_url)
    assert again.count(parse("note:schema-keyword-removed")) == 1 and again.count(parse("agent:abc")) == 0
    assert again.turns("any-session") == [] and again.dialect.version(again.reader()) == schema.latest()


async def test_no_secret_reaches_the_database(pg_url, fake, sa_json):
    key_json = json.loads(sa_json)
    store = PostgresStore(pg_url, secrets=[API_KEY, sa_json]).start()
    for provider in ("vertex", "gemini"):
        async for gw in run_gateway({"targets": [target_for(provider, fake, sa_json)]}, fake):
            gw.gateway.on_record = store.submit
            async with aiohttp.ClientSession() as http:
                await (
                    await http.post(
                        gw.url + "/v1/messages",
                        json=cc_requests.first_turn(stream=False),
                        headers={
                            "x-api-key": "sk-ant-api03-SECRETSECRET",
                            "authorization": "Bearer sk-ant-oat-TOKENTOKEN",
                            "cookie": "session=COOKIECOOKIE",
                            "x-goog-api-key": "AIzaLEAKLEAK",
                        },
                    )
                ).read()
    store.close()
    assert store.count() == 2
    with psycopg.connect(pg_url) as conn:
        tables = [
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'gatewatch'")
        ]
        dump = "".join(
            conn.execute(
                f"SELECT coalesce(string_agg(t::text, ''), '') FROM gatewatch.{name} AS t"
            ).fetchone()[0]
            for name in tables
        )
        # bytea columns print as hex: read them as text too
        dump += "".join(bytes(r[0]).decode() for r in conn.execute("SELECT data FROM gatewatch.records"))
        dump += "".join(bytes(r[0]).decode() for r in conn.execute("SELECT data FROM gatewatch.blobs"))
    assert "find" in dump or "records" in tables  # the dump is not empty
    for secret in [
        "SECRETSECRET",
        "TOKENTOKEN",
        "COOKIECOOKIE",
        "AIzaLEAKLEAK",
        API_KEY,
        key_json["private_key"].split("\n")[1],
        "ya29.sim-",
    ]:
        assert secret not in dump


def test_a_record_committed_again_is_stored_once(pg_url):
    """Two writers (a retry after a commit whose answer was lost, a journal replayed twice) with one record."""
    r = make(1, session_id="s1", usage=Usage(input_tokens=10, cost=0.5))
    for _ in range(2):
        s = PostgresStore(pg_url).start()
        s.submit(r)
        s.close()
    store = PostgresStore(pg_url)
    assert store.count() == 1
    assert store.session("s1").calls == 1 and store.session_spend("s1") == pytest.approx(0.5)


def test_nul_characters_in_a_prompt_are_kept_visible_not_refused(pg_url):
    store = PostgresStore(pg_url).start()
    store.submit(make(1, preview="before\x00after"))
    store.close()
    assert store.stats.written == 1 and store.stats.lost == 0
    assert store.page()[0].preview == "before\ufffdafter"
    assert store.get("req_000001").preview == "before\x00after"  # the record's JSON keeps it exactly


def test_an_unreachable_server_gets_a_clear_message_without_the_password():
    with pytest.raises(StoreError, match="cannot connect") as e:
        open_store("postgresql://gw:hunter2secret@127.0.0.1:1/gatewatch")
    assert "hunter2secret" not in str(e.value) and "127.0.0.1" in str(e.value)
    assert redact("postgresql://gw:pw@db.internal:5433/calls") == "postgresql://gw@db.internal:5433/calls"


def test_a_reader_creates_nothing_in_a_database_that_is_not_gatewatch_s(pg_url):
    with pytest.raises(StoreError, match="no gatewatch tables"):
        open_store(pg_url, create=False)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regnamespace('gatewatch')").fetchone()[0] is None


@pytest.fixture
def own_server(tmp_path, monkeypatch):
    """A server of this test's own: it is stopped and started again."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    server = Server().start()
    yield server
    server.remove()


def _wait(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_records_made_while_the_server_is_down_are_journaled_and_written_when_it_is_back(
    own_server, monkeypatch
):
    monkeypatch.setattr(wr, "RETRIES", 2)
    monkeypatch.setattr(wr, "RETRY_IDLE_S", 0.2)
    url = own_server.fresh_url()
    store = PostgresStore(url).start()
    store.submit(make(0))
    assert _wait(lambda: store.stats.written == 1)
    own_server.stop()
    for i in range(1, 6):
        store.submit(make(i))
    assert _wait(lambda: store.stats.lost == 5)
    assert store.journal_path.stat().st_size > 0  # kept, not dropped
    own_server.restart()
    assert _wait(lambda: store.stats.written == 6)
    store.close()
    assert store.stats.lost == 0 and store.stats.recovered == 5
    assert PostgresStore(url).count() == 6 and store.journal_path.stat().st_size == 0


def test_a_gateway_stopped_while_the_server_is_down_leaves_its_records_to_the_next_start(
    own_server, monkeypatch
):
    monkeypatch.setattr(wr, "RETRIES", 1)
    url = own_server.fresh_url()
    store = PostgresStore(url).start()
    own_server.stop()
    for i in range(3):
        store.submit(make(i))
    store.close(timeout=1)  # gives up: the records stay in its journal
    own_server.restart()
    again = PostgresStore(url).start()  # the journal slot is free again: replayed
    assert again.replayed == 3
    again.close()
    assert again.count() == 3


def test_a_shared_part_pruned_by_another_process_is_sent_again_by_a_writer_that_knew_it(pg_url):
    req = cc_requests.first_turn()
    writer = PostgresStore(pg_url).start()
    writer.submit(make(1, started_at=time.time() - 40 * 86400, client_request=req))
    assert _wait(lambda: writer.stats.written == 1)
    assert PostgresStore(pg_url).prune(30 * 86400) == 1  # the only record naming the tools goes, and they too
    writer.submit(make(2, client_request=req))
    writer.close()
    assert PostgresStore(pg_url).get("req_000002").client_request == req


def test_export_stats_and_prune_read_a_postgresql_url_from_db_or_the_config(pg_url, tmp_path):
    from tests.test_cli import cli

    store = PostgresStore(pg_url).start()
    for i in range(3):
        store.submit(make(i, started_at=time.time() - 60))
    store.close()
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    r = cli("export", "--db", pg_url, "--format", "jsonl", cwd=tmp_path, env=env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr
    assert f"database: {redact(pg_url)} (from --db)" in r.stderr
    conf = tmp_path / "gw.toml"
    conf.write_text(f'[store]\nurl = "{pg_url}"\n')
    r = cli("stats", "--config", str(conf), cwd=tmp_path, env=env)
    assert r.returncode == 0 and "(from [store] url in" in r.stderr, r.stderr
    assert [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("gemini-2.5-flash")] == ["3"]
    r = cli("prune", "--db", pg_url, "--older-than", "30s", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "deleted 3 records" in r.stdout, r.stderr
    assert PostgresStore(pg_url).count() == 0


def test_the_config_takes_a_postgresql_url_or_a_path_not_both():
    assert cfg.from_mapping({"store": {"url": "postgresql://gw@db/calls"}}, "t").store.url
    with pytest.raises(cfg.ConfigError, match="PostgreSQL URL"):
        cfg.from_mapping({"store": {"url": "mysql://gw@db/calls"}}, "t")
    with pytest.raises(cfg.ConfigError, match="not both"):
        cfg.from_mapping({"store": {"url": "postgresql://gw@db/calls", "path": "x.db"}}, "t")


def test_without_psycopg_a_postgresql_store_says_what_to_install_and_sqlite_never_needs_it(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from proxy.store import open_store, StoreError\n"
        f"open_store({str(tmp_path / 'lite.db')!r}).start().close()\n"
        "try:\n    open_store('postgresql://gw@127.0.0.1:1/calls')\n"
        "except StoreError as e:\n    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "pip install 'gatewatch[postgres]'" in r.stdout


async def test_a_replay_of_a_call_in_a_postgresql_store_is_recorded_there_linked_to_it(
    fake, pg_url, tmp_path
):
    from proxy.service import Service
    from proxy.simulator import Reply
    from tests.serving import free_port
    from tests.test_replay import cli, original_calls, write_config

    path = write_config(tmp_path, fake, free_port())
    text = Path(path).read_text().replace(f'path = "{tmp_path / "g.db"}"', f'url = "{pg_url}"')
    Path(path).write_text(text)
    config = cfg.load(path)
    service = Service(config, PostgresStore(pg_url, secrets=config.secrets()))
    await service.start()
    fake.script(Reply.text("four"))
    (original,) = await original_calls(service.url)
    await service.stop()
    fake.script(Reply.text("4"))
    code, out, err = await cli("replay", original, "--target", "flash", "-y", "--config", path, cwd=tmp_path)
    assert code == 0, err
    store = PostgresStore(pg_url, create=False)
    (replay,) = [s for s in store.page() if s.replay_of == original]
    assert store.get(replay.id).replay_of == original and "-four" in out and "+4" in out
