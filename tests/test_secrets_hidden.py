"""Credentials never reach the store, a log or a screen by the side doors: query-string credentials of any name,
and a PostgreSQL password in connection errors (a real server, tests/pg.py)."""

from __future__ import annotations

import logging
import time

import aiohttp
import pytest

from proxy import config as cfg
from proxy.edge.server import Gateway, start
from proxy.record import REDACTED, redact_query
from proxy.record.events import RecordsLost
from proxy.simulator import Reply
from proxy.store import Store, StoreError
from proxy.store.postgres import MISREAD, PostgresStore
from tests.conftest import target_for
from tests.test_store import make

QUERY_SECRETS = {
    "access_token": "AT-0sekrit-token-1",
    "api_key": "AK-0sekrit-key-2",
    "token": "TK-0sekrit-3",
    "sig": "SG-0sekrit-4",
    "X-Goog-Signature": "GS-0sekrit-5",
    "X-Amz-Credential": "AC-0sekrit-6",
    "client_secret": "CS-0sekrit-7",
    "apiKey": "AK-0sekrit-8",
    "api%5Fkey": "AK-0sekrit-9",
    "password": "PW-0sekrit-10",
}


def test_every_credential_parameter_is_redacted_and_the_rest_kept():
    query = "&".join(f"{k}={v}" for k, v in QUERY_SECRETS.items()) + "&beta=true&alt=sse"
    out = redact_query(query)
    assert not any(v in out for v in QUERY_SECRETS.values()), out
    assert out.endswith("&beta=true&alt=sse") and out.count(REDACTED) == len(QUERY_SECRETS)


async def test_query_credentials_never_reach_the_sqlite_file(fake, sa_json, tmp_path):
    config = cfg.from_mapping({"targets": [target_for("gemini", fake, sa_json)]}, "test")
    store = Store(tmp_path / "q.db", secrets=config.secrets()).start()
    gw = Gateway(config, on_record=store.submit)
    runner, port = await start(gw, "127.0.0.1", 0)
    try:
        query = "&".join(f"{k}={v}" for k, v in QUERY_SECRETS.items()) + "&beta=true"
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        fake.script(Reply.text("ok"))
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{port}/v1/messages?{query}", json=body) as resp:
                assert resp.status == 200
                rid = resp.headers["request-id"]
    finally:
        await runner.cleanup()
        store.close()
    rec = Store(tmp_path / "q.db").get(rid)
    assert rec.query.endswith("&beta=true") and REDACTED in rec.query
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("q.db"))
    assert not any(v.encode() in stored for v in QUERY_SECRETS.values())


BAD_URLS = (
    "postgresql://gw:s3cr@et-pw9@127.0.0.1:{port}/db",  # an unescaped @: libpq reads `et-pw9@…` as a host
    "postgresql://gw:s3cret pw9@127.0.0.1:{port}/db",  # a space: libpq echoes the password whole
    "postgresql://gw:s3cr/et-pw9@127.0.0.1:{port}/db",
    "postgresql://gw:s3cr#et-pw9@127.0.0.1:{port}/db",
    "postgresql://gw:s3cret-pw9@127.0.0.1:1/db",  # nothing listens
    "postgresql://gw:s3cret-pw9@127.0.0.1:{port}/db?sslmode=bogus",
    "postgresql://gw@127.0.0.1:{port}/db?password=s3cret-pw9&sslmode=bogus",
)


def _no_password(text: str) -> None:
    for piece in ("s3cr", "et-pw9", "pw9"):
        assert piece not in text, text


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_postgresql_password_never_appears_in_a_connection_error(pg_server, url, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with pytest.raises(StoreError) as caught:
        PostgresStore(url.format(port=pg_server.port))
    _no_password(str(caught.value))
    if "@" in url.split("://")[1].split("@")[0] or " " in url or "/et" in url or "#" in url:
        assert MISREAD in str(caught.value)


def test_the_writer_s_errors_during_an_outage_never_hold_the_password(
    pg_server, caplog, monkeypatch, tmp_path
):
    import proxy.store.writer as wr

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(wr, "RETRY_IDLE_S", 0.2)
    monkeypatch.setattr(wr, "RETRIES", 1)
    good = pg_server.fresh_url().replace(
        "postgres@", "postgres:s3cret-pw9@"
    )  # trust: the password is ignored
    store = PostgresStore(good).start()
    lost: list[RecordsLost] = []
    store.bus.subscribe(RecordsLost, lost.append)
    store.submit(make(1))
    deadline = time.monotonic() + 60
    while store.stats.written < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # the server goes away (here: the writer's next connection goes to a port nothing listens on)
    store.url = good.replace(f":{pg_server.port}/", ":1/")
    monkeypatch.setattr(store, "_connect", lambda: st_connect(store.url))
    import psycopg

    with psycopg.connect(pg_server.url, autocommit=True) as admin:  # and its connection is cut
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (good.rsplit("/", 1)[1],),
        )
    with caplog.at_level(logging.DEBUG, logger="gatewatch"):
        store.submit(make(2))
        while not lost:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    while "refused" not in (store.stats.last_error or "").lower():  # its next try finds no server
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _no_password(store.stats.last_error)
    _no_password(caplog.text)
    _no_password(" ".join(e.error for e in lost))
    store.close(timeout=1)


def st_connect(url: str):
    from proxy.store.postgres import connect

    return connect(url)
