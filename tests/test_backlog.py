"""Records waiting for the writer are bounded in memory by bytes: past `backlog_bytes` the journal on disk holds
them, and each is read back whole when its turn comes. A slow database and an outage, on SQLite and a real
PostgreSQL (tests/pg.py); memory measured with tracemalloc, every record checked after."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

import pytest

import proxy.store.sqlite as st
import proxy.store.writer as wr
from proxy.store import StoreError
from proxy.store.journal import Item
from tests.test_store import make

MB = 1024 * 1024
N = 60
BOUND = 4 * MB


def big(i: int):
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": f"{i:04d} " + "x" * MB}],
    }
    return make(i, client_request=body, preview=f"flood {i}")


def wait(cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _check_all_written(backend) -> None:
    reader = backend.open()
    assert reader.count() == N
    for i in (0, N // 2, N - 1):
        rec = reader.get(f"req_{i:06d}")
        text = rec.client_request["messages"][0]["content"]
        assert text.startswith(f"{i:04d} ") and len(text) == MB + 5


def test_a_stalled_writer_holds_at_most_the_bound_in_memory_and_loses_nothing(backend, monkeypatch):
    monkeypatch.setattr(wr, "BATCH_BYTES", 2 * MB)
    store = backend.open()
    store.backlog_bytes = BOUND
    gate = threading.Event()
    connect = store._connect

    def slow_connect():
        gate.wait(120)  # a database that takes its time: the backlog builds
        return connect()

    store._connect = slow_connect
    store.start()
    records = [big(i) for i in range(N)]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for rec in records:
            store.submit(rec)
        del records, rec  # the gateway lets go of a record once submitted
        gc.collect()
        held_now = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert store.held_bytes <= BOUND
    assert store._spilled >= N - 1 - BOUND // MB
    # 60 MB submitted: what stays in memory is the bound and the piece the writer read back, not the flood
    assert held_now < BOUND + wr.BATCH_BYTES + 2 * MB, held_now
    gate.set()
    wait(lambda: store.stats.written == N)
    store.close()
    assert store.held_bytes == 0 and store._spilled == 0 and store.stats.lost == 0
    assert store.journal_path.stat().st_size == 0
    _check_all_written(backend)


def test_an_outage_spills_what_waits_to_the_journal_and_writes_it_all_after(backend, monkeypatch):
    monkeypatch.setattr(wr, "RETRIES", 1)
    monkeypatch.setattr(wr, "RETRY_IDLE_S", 0.2)
    store = backend.open()
    store.backlog_bytes = BOUND
    down = {"on": True}
    connect = store._connect

    def flaky():
        if down["on"]:
            raise StoreError("the database is down")
        return connect()

    store._connect = flaky
    store.start()
    for i in range(N):
        store.submit(big(i))
    wait(lambda: store.stats.lost == N)
    # given up on for now: every one is held by the journal, none by memory
    assert store.held_bytes == 0 and len(store._unwritten) == N
    assert all(it.spilled for it in store._unwritten)
    assert store.journal_path.stat().st_size > N * MB
    down["on"] = False
    wait(lambda: store.stats.written == N)
    store.close()
    assert store.stats.lost == 0 and store.stats.recovered == N
    _check_all_written(backend)


def test_a_journal_that_cannot_be_written_keeps_records_in_memory_rather_than_losing_them(tmp_path):
    store = st.SqliteStore(tmp_path / "g.db")
    store.backlog_bytes = 1
    store._run = lambda: None  # this test is the writer
    store.start()
    journal, store.journal.fd = store.journal.fd, None  # as if the journal had failed
    store.submit(big(0))
    assert store.held_bytes > 0 and store._spilled == 0
    store.journal.fd = journal
    store.submit(big(1))
    assert store._spilled == 1
    taken = [store._q.get(), store._q.get()]
    store._write(None, taken)
    assert store.stats.written == 2 and store.held_bytes == 0
    store.close()
    rec = st.SqliteStore(tmp_path / "g.db").get("req_000001")
    assert len(rec.client_request["messages"][0]["content"]) == MB + 5


@pytest.mark.parametrize("size", [1, 3 * MB])
def test_pieces_stay_under_the_batch_bytes(tmp_path, size):
    store = st.SqliteStore(tmp_path / "g.db")
    items = [Item(size, None, None, None) for _ in range(20)]
    pieces = list(store._pieces(items))
    assert sum(len(p) for p in pieces) == 20
    assert all(len(p) == 1 or sum(it.size for it in p) <= wr.BATCH_BYTES for p in pieces)
