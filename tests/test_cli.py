"""`gatewatch serve` as a user runs it: the seed's environment variables, a real process, a real store."""

import asyncio
import json
import os
import signal
import subprocess
import sys

import anthropic
import pytest

from proxy.simulator import Reply
from tests import warmcli
from tests.conftest import API_KEY
from tests.serving import serve


async def _serve(env_extra: dict, tmp_path, *args):
    return await serve(env_extra, tmp_path, *args, cwd=tmp_path if args else None)


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
async def test_serve_with_the_seed_variables_answers_and_records(provider, fake, sa_json, tmp_path):
    if provider == "gemini":
        env = {"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}
    else:
        env = {
            "GCP_PROJECT_ID": "example-project",
            "GEMINI_LOCATION_ID": "europe-west4",
            "GEMINI_API_ENDPOINT": fake.url,
            "GEMINI_API_KEY": sa_json,
        }
    proc, port = await _serve(env, tmp_path)
    env_cwd = os.getcwd()
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert (
            f"listening on http://127.0.0.1:{port}" in banner and f"({provider} gemini-3.8-flash)" in banner
        )
        fake.script(Reply.text("served"))
        client = anthropic.AsyncAnthropic(
            base_url=f"http://127.0.0.1:{port}", api_key="sk-ant-x", max_retries=0
        )
        msg = await client.messages.create(
            model="claude-opus-5-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        await client.close()
        assert msg.content[0].text == "served"
        if provider == "vertex":
            assert "/locations/europe-west4/" in fake.received[-1].path
        line = ""
        while "→" not in line or "claude-opus-5-5" not in line:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert " 200 claude-opus-5-5 → " in line and "oneshot" in line and "ms" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert b"1 records written, 0 lost" in err
    assert env_cwd == os.getcwd()
    from proxy.store import Store

    assert Store(tmp_path / "s.db").count() == 1


async def test_serve_writes_a_turns_lines_to_a_pipe_at_once_on_the_next_turn_and_each_at_once_to_a_terminal():
    import io

    from console.commands.serve import Lines, call_line
    from proxy.record.events import CallFinished
    from tests.test_store import make

    class Out(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty, self.flushed = tty, []

        def isatty(self) -> bool:
            return self.tty

        def flush(self) -> None:
            self.flushed.append(self.getvalue())

    recs = [make(i) for i in range(3)]
    pipe, term = Out(False), Out(True)
    to_pipe, to_term = Lines(pipe), Lines(term)
    for r in recs:
        to_pipe(CallFinished(r))
        to_term(CallFinished(r))
    every = "".join(call_line(r) + "\n" for r in recs)
    assert term.flushed == ["".join(call_line(r) + "\n" for r in recs[: i + 1]) for i in range(3)]
    assert pipe.flushed == []  # not yet: on the loop's next turn, once for the three
    await asyncio.sleep(0)
    assert pipe.flushed == [every]
    to_pipe(CallFinished(recs[0]))
    to_pipe.flush()  # at exit: what the last turn wrote is out
    assert pipe.flushed[-1] == every + call_line(recs[0]) + "\n"


async def test_serve_s_lines_stop_quietly_with_no_stdout_or_a_reader_gone():
    """`gatewatch serve >&-` (no stdout: Python's is None) and `gatewatch serve | head` once head is gone: the
    calls go on, their lines are dropped, and nothing raises (a raise here would end serve before its
    "stopped; N records written" line)."""
    import io

    from console.commands.serve import Lines
    from proxy.record.events import CallFinished
    from tests.test_store import make

    Lines(None)(CallFinished(make(0)))  # no stdout at all
    Lines(None).flush()

    class Gone(io.StringIO):
        writes = 0

        def isatty(self) -> bool:
            return False

        def write(self, s: str) -> int:
            Gone.writes += 1
            return super().write(s)

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    lines = Lines(Gone())
    lines(CallFinished(make(1)))
    await asyncio.sleep(0)  # the turn's flush meets the broken pipe
    assert lines.out is None and Gone.writes == 1
    lines(CallFinished(make(2)))  # dropped, not written
    lines.flush()  # at exit
    assert Gone.writes == 1


async def test_a_sigterm_as_soon_as_serve_says_listening_stops_it_cleanly(fake, tmp_path):
    # a supervisor (or a script) stops serve the moment it reads the banner: the handlers must already be there
    proc, _ = await _serve({"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}, tmp_path)
    banner = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    assert "listening on" in banner
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert b"gatewatch: stopped;" in err


async def test_a_config_error_names_file_and_key_and_exits_before_listening(tmp_path):
    (tmp_path / "gatewatch.toml").write_text(
        '[[targets]]\nname = "x"\nprovider = "vertex"\nmodel = "m"\n[gateway]\nport = "eighty"\n'
    )
    proc, _ = await _serve({}, tmp_path, "--config", "gatewatch.toml")
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"listening" not in out
    text = err.decode()
    assert (
        "gatewatch.toml: gateway.port" in text
        and "gatewatch.toml: targets[0] (x): provider 'vertex' needs service_account_json" in text
    )


async def test_without_any_target_serve_says_what_to_set(tmp_path):
    proc, _ = await _serve({}, tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"set GEMINI_API_KEY" in err


async def test_export_and_stats_commands(tmp_path):
    from proxy.store import Store
    from tests.test_store import make

    store = Store(tmp_path / "s.db").start()
    for i in range(4):
        store.submit(make(i, status=500 if i == 0 else 200))
    store.close()
    out = tmp_path / "out.json"
    r = warmcli.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "export",
            "status:200",
            "--db",
            str(tmp_path / "s.db"),
            "--format",
            "json",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=ROOT_ENV,
    )
    assert r.returncode == 0 and "exported 3 records" in r.stderr
    assert len(json.loads(out.read_text())) == 3
    r = warmcli.run(
        [sys.executable, "-m", "console.cli", "stats", "--db", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
        env=ROOT_ENV,
    )
    assert r.returncode == 0
    assert "gemini-2.5-flash" in r.stdout and "vertex-flash" in r.stdout
    row = [line for line in r.stdout.splitlines() if line.startswith("gemini-2.5-flash")][0].split()
    assert row[1:3] == ["4", "1"]
    r = warmcli.run(
        [sys.executable, "-m", "console.cli", "export", "since:someday", "--db", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
        env=ROOT_ENV,
    )
    assert r.returncode == 2 and "since/until" in r.stderr


ROOT_ENV = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
"""this checkout's code, not an installed gatewatch's"""


def cli(*args: str, cwd=None, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    e["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    e.update(env or {})
    return warmcli.run(
        [sys.executable, "-m", "console.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=e,
    )


def _filled(path, records) -> None:
    from proxy.store import Store

    store = Store(path).start()
    for r in records:
        store.submit(r)
    store.close()


def test_export_stats_and_prune_read_the_store_path_of_the_config_and_name_it(tmp_path):
    from tests.test_store import make

    db = tmp_path / "data" / "calls.db"
    _filled(db, [make(i) for i in range(3)])
    conf = tmp_path / "gw.toml"
    conf.write_text(f'[store]\npath = "{db}"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}  # the default store is somewhere else, and empty
    r = cli("export", "--config", str(conf), "--format", "jsonl", cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 3
    assert f"database: {db} (from [store] path in {conf})" in r.stderr
    r = cli("stats", "--config", str(conf), cwd=elsewhere, env=env)
    assert r.returncode == 0 and f"database: {db}" in r.stderr
    assert [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("gemini-2.5-flash")] == ["3"]
    # the options may come before the subcommand too, as `gatewatch --help` lists them
    r = cli("--config", str(conf), "stats", cwd=elsewhere, env=env)
    assert r.returncode == 0 and f"database: {db}" in r.stderr, r.stderr
    r = cli("--db", str(db), "export", "--format", "jsonl", cwd=elsewhere, env=env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr
    r = cli("prune", "--config", str(conf), "--older-than", "1d", cwd=elsewhere, env=env)
    assert r.returncode == 0 and "deleted 3 records" in r.stdout and f"database: {db}" in r.stderr
    assert not (tmp_path / "xdg").exists()  # the default store was never created along the way


def test_a_database_that_does_not_exist_is_refused_and_not_created(tmp_path):
    for command in (["export"], ["stats"], ["prune", "--older-than", "1d"]):
        r = cli(*command, "--db", "missing.db", cwd=tmp_path)
        assert r.returncode == 2
        assert f"{tmp_path / 'missing.db'}: no such database (from --db). Nothing was created." in r.stderr
        assert not (tmp_path / "missing.db").exists()
    conf = tmp_path / "gw.toml"
    conf.write_text('[store]\npath = "nowhere/x.db"\n')
    r = cli("export", "--config", str(conf), cwd=tmp_path)
    assert r.returncode == 2 and "no such database (from [store] path in" in r.stderr
    assert not (tmp_path / "nowhere").exists()


def test_a_negated_term_needs_no_double_dash_and_no_payloads_leaves_the_bodies_out(tmp_path):
    from tests.test_store import make

    db = tmp_path / "g.db"
    body = {"model": "claude-opus-5-5", "messages": [{"role": "user", "content": "x" * 5000}]}
    _filled(
        db,
        [
            make(0, response_model="gemini-2.5-pro", client_request=body),
            make(1, client_request=body),
            make(2, client_request=body),
        ],
    )
    r = cli("export", "-model:pro", "--db", str(db), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [row["id"] for row in rows] == ["req_000001", "req_000002"]
    assert rows[0]["client_request"] == body
    r = cli("export", "--db", str(db), "-model:pro", "--no-payloads", "-o", str(tmp_path / "lean.json"))
    assert r.returncode == 0, r.stderr
    lean = json.loads((tmp_path / "lean.json").read_text())
    assert [row["id"] for row in lean] == ["req_000001", "req_000002"]
    assert "client_request" not in lean[0] and lean[0]["preview"] == "prompt number 1"
    assert lean[0]["usage"]["input_tokens"] == 100
    r = cli("stats", "-model:pro", "--db", str(db))
    assert r.returncode == 0 and "gemini-2.5-pro" not in r.stdout and "gemini-2.5-flash" in r.stdout


def test_export_says_so_when_a_live_gatewatch_holds_the_journal(tmp_path):
    from proxy.store import Store
    from tests.test_store import make

    store = Store(tmp_path / "g.db").start()  # a writer that is alive: it holds the journal's lock
    try:
        store.submit(make(0))
        r = cli("export", "--db", str(tmp_path / "g.db"))
        assert r.returncode == 0, r.stderr
        assert "a running gatewatch is writing to this database" in r.stderr
    finally:
        store.close()


async def test_an_export_right_after_kill_9_under_load_holds_every_call_read_to_its_end(fake, tmp_path):
    """Calls stream and finish concurrently; the gateway is killed with SIGKILL mid-load. Every call whose
    response the client read to its end is in the export taken right after (the journal is replayed)."""
    fake.responder = lambda body: Reply.text("answer " * 40, chunks=8, chunk_delay=0.002)
    proc, port = await _serve({"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}, tmp_path)
    client = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key="sk-ant-x", max_retries=0)
    done: list[str] = []
    stop = asyncio.Event()

    async def worker(w: int) -> None:
        i = 0
        while not stop.is_set():
            prompt = f"load-{w}-{i}"
            i += 1
            try:
                if i % 2:
                    async with client.messages.stream(
                        model="gemini-2.5-flash",
                        max_tokens=50,
                        messages=[{"role": "user", "content": prompt}],
                    ) as s:
                        msg = await s.get_final_message()
                else:
                    msg = await client.messages.create(
                        model="gemini-2.5-flash",
                        max_tokens=50,
                        messages=[{"role": "user", "content": prompt}],
                    )
            except Exception:  # the gateway is gone: an API error, or the stream cut in the transport
                return
            assert msg.stop_reason == "end_turn"
            done.append(prompt)

    try:
        assert b"listening" in await asyncio.wait_for(proc.stdout.readline(), 20)
        workers = [asyncio.create_task(worker(w)) for w in range(8)]
        while len(done) < 150:
            await asyncio.sleep(0.01)
        proc.kill()  # SIGKILL: no drain, no flush
        await proc.wait()
        stop.set()
        await asyncio.gather(*workers)
    finally:
        await client.close()
        if proc.returncode is None:
            proc.kill()
    read = set(done)
    r = await asyncio.to_thread(
        cli, "export", "--db", str(tmp_path / "s.db"), "--no-payloads", "--format", "jsonl"
    )
    assert r.returncode == 0, r.stderr
    exported = {json.loads(ln)["preview"] for ln in r.stdout.splitlines()}
    assert read <= exported, f"{len(read - exported)} calls read to their end are missing"


def test_an_export_replays_the_journal_a_killed_writer_left(tmp_path):
    from proxy.store import connect

    db = tmp_path / "g.db"
    blocker = connect(db)
    blocker.execute("BEGIN IMMEDIATE")  # the writer can't commit: what it is given stays in its journal
    code = (
        "import os, signal, sys\n"
        "from proxy.store import Store\n"
        "from tests.test_store import make\n"
        f"s = Store({str(db)!r}).start()\n"
        "for i in range(5): s.submit(make(i))\n"
        "print('journaled', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == -signal.SIGKILL and "journaled" in r.stdout
    blocker.rollback()
    blocker.close()
    r = cli("export", "--db", str(db), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 5
    assert "recovered 5 records from the journal of a gatewatch that stopped abruptly" in r.stderr
    r = cli("export", "--db", str(db), "--format", "jsonl")  # replayed once, kept: read again, same five
    assert len(r.stdout.splitlines()) == 5 and "recovered" not in r.stderr


async def test_the_console_export_key_writes_to_the_data_directory_and_says_where(
    fake, sa_json, tmp_path, monkeypatch
):
    from console.app import GatewatchApp
    from proxy import config as cfg
    from proxy.store import Store
    from tests.conftest import target_for

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    config = cfg.from_mapping({"gateway": {"port": 0}, "targets": [target_for("gemini", fake, sa_json)]}, "t")
    app = GatewatchApp(config, Store(tmp_path / "c.db"))
    notes: list[str] = []
    app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("e")
        for _ in range(100):
            if app.main.last_export:
                break
            await pilot.pause(0.05)
        path, n = app.main.last_export
    assert path.parent == (tmp_path / "xdg" / "gatewatch").resolve() and path.exists()
    assert not list(tmp_path.glob("gatewatch-export-*"))  # nothing in the current folder
    assert any(str(path) in note for note in notes)


def test_a_serve_with_no_target_says_so_and_creates_no_store(tmp_path):
    r = cli("serve", cwd=tmp_path, env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert r.returncode == 2 and "no upstream target is configured" in r.stderr
    assert not (tmp_path / "xdg").exists()  # a later `gatewatch export` must not find an empty store there


def test_export_to_dash_is_standard_output_and_a_closed_pipe_is_no_traceback(tmp_path):
    from tests.test_store import make

    db = tmp_path / "g.db"
    _filled(
        db,
        [make(i, client_request={"messages": [{"role": "user", "content": "y" * 4000}]}) for i in range(300)],
    )
    r = cli("export", "--db", str(db), "--format", "jsonl", "-o", "-", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 300 and not (tmp_path / "-").exists()
    _filled(tmp_path / "one.db", [make(0)])
    r = cli("export", "--db", str(tmp_path / "one.db"), "-o", str(tmp_path / "one.json"))
    assert "exported 1 record to" in r.stderr
    # `gatewatch export | head -1`: the reader closes the pipe after a line; the export stops, quietly
    e = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    export = warmcli.Popen(
        [sys.executable, "-m", "console.cli", "export", "--db", str(db), "--format", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=e,
    )
    assert export.stdout is not None
    first = export.stdout.readline()
    export.stdout.close()
    _, err = export.communicate(timeout=60)
    assert json.loads(first)["id"] == "req_000000"
    assert b"Traceback" not in err and export.returncode == 141, err.decode()


def test_gatewatch_help_names_every_command_in_plain_words_in_80_columns():
    from console.cli import COMMANDS

    r = cli("--help", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    head = r.stdout.split("examples:")[0]
    said = " ".join(head.split("\n\n", 1)[1].split())  # after the usage lines, as one line
    assert said.startswith("gatewatch: Claude Code (or any Anthropic API client) through your own gateway")
    for name in COMMANDS:  # show, statusline and claude were missing
        assert f" {name}" in said.split("Commands:", 1)[1], name
    assert "proxy" not in head and "`" not in head and "thin layer" not in head
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
