"""The Kong file-log mirror: a bus subscriber of committed records, wired beside the store, not inside it."""

import os
import stat

import orjson

from proxy.record.events import Bus, RecordsCommitted
from proxy.reports.export import kong_record
from proxy.reports.filelog import FileLogMirror
from proxy.store import Store
from tests.test_store import make


def test_the_file_log_mirror_writes_kong_lines_0600(tmp_path):
    log = tmp_path / "claude.json"
    bus = Bus()
    FileLogMirror(log, ["supersecretvalue"]).attach(bus)
    store = Store(tmp_path / "g.db", secrets=["supersecretvalue"], bus=bus).start()
    store.submit(make(1, preview="leak supersecretvalue here"))
    store.close()
    lines = log.read_bytes().splitlines()
    assert len(lines) == 1 and b"supersecretvalue" not in log.read_bytes()
    assert orjson.loads(lines[0])["ai"]["proxy"]["meta"]["request_model"] == "claude-opus-5-5"
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    assert kong_record(make(2))["ai"]["proxy"]["usage"]["cost"] == 0.001


def test_a_detached_mirror_writes_nothing_and_a_broken_path_never_breaks_the_writer(tmp_path):
    bus = Bus()
    detach = FileLogMirror(tmp_path / "a.json").attach(bus)
    (tmp_path / "dir").mkdir()
    FileLogMirror(tmp_path / "dir").attach(bus)  # a directory: every write fails
    bus.emit(RecordsCommitted((make(1), make(2))))
    detach()
    bus.emit(RecordsCommitted((make(3),)))
    assert len((tmp_path / "a.json").read_bytes().splitlines()) == 2
    store = Store(tmp_path / "g.db", bus=bus).start()
    store.submit(make(4))
    store.close()
    assert store.stats.written == 1 and store.stats.lost == 0
