"""`gatewatch statusline`: the line Claude Code shows, read from the store's session roll-ups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.statusline import main
from proxy.money import usd
from proxy.reports import statusline
from tests import cc_session as cs
from tests.conftest import Backend
from tests.test_ledger import session_store  # noqa: F401  (the recorded session, as a fixture)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def backend(tmp_path):
    """The status line reads a SQLite store only (it imports no store): the session is recorded in one."""
    return Backend("sqlite", str(tmp_path / "g.db"))


def claude_code_status(session_id: str = cs.SESSION) -> str:
    """What Claude Code pipes to a statusLine command."""
    return json.dumps(
        {
            "hook_event_name": "Status",
            "session_id": session_id,
            "transcript_path": "/home/dev/.claude/projects/p/session.jsonl",
            "cwd": "/home/dev/project",
            "model": {"id": "gemini-2.5-flash", "display_name": "gemini-2.5-flash"},
            "workspace": {"current_dir": "/home/dev/project", "project_dir": "/home/dev/project"},
            "version": "2.1.331",
            "output_style": {"name": "default"},
            "cost": {"total_cost_usd": 3.1, "total_duration_ms": 1000},
        }
    )


async def test_statusline_prints_the_session_s_line(session_store, capsys, tmp_path):  # noqa: F811
    store, records = session_store
    config = tmp_path / "gatewatch.toml"
    config.write_text("[budget]\nsession_usd = 2.0\ndaily_usd = 10\n")
    assert main(["--db", str(store.path), "--config", str(config)], stdin=claude_code_status()) == 0
    out = capsys.readouterr().out.strip()
    cost = sum(r.usage.cost for r in records)
    assert out.startswith(f"gatewatch {usd(cost)} · ")
    assert "ctx 24k/1.0M 2%" in out  # the main agent's last prompt against gemini-2.5-flash's 1,048,576
    assert "gemini-2.5-flash" in out and "2 sub-agents" in out
    assert f"budget {usd(2.0 - cost)} left, {usd(10 - cost)} left today" in out
    assert "\n" not in out


async def test_statusline_for_an_unknown_session_or_no_store_says_so(session_store, capsys, tmp_path):  # noqa: F811
    store, _ = session_store
    main(["--db", str(store.path)], stdin=claude_code_status("nope"))
    assert "no call of this session" in capsys.readouterr().out
    main(["--db", str(tmp_path / "none.db")], stdin=claude_code_status("nope"))
    assert f"no store at {tmp_path / 'none.db'}" in capsys.readouterr().out  # not "no call recorded yet"
    main(["--db", str(tmp_path / "none.db")], stdin="not json")
    assert "no session id" in capsys.readouterr().out


def test_the_line_marks_unpriced_calls_and_reads_only_numeric_caps(tmp_path):
    facts = statusline.SessionFacts(1.5, 2, 3, 1000, 10, 0, 0, 0, None, 0, 1.5)
    assert statusline.line(facts).startswith("gatewatch $1.50+? · 1.0k in / 10 out")
    bad = tmp_path / "g.toml"
    bad.write_text('[budget]\nsession_usd = "${CAP}"\n')
    assert statusline.caps_from(str(bad)) == statusline.Caps()


async def test_the_gatewatch_command_runs_statusline_without_importing_the_gateway(session_store):  # noqa: F811
    store, _ = session_store
    code = (
        "import sys; from console.entry import main; sys.argv = ['gatewatch', 'statusline', '--db', sys.argv[1]];"
        "main(); heavy = [m for m in ('aiohttp', 'pydantic', 'textual', 'genai_prices', 'sqlite_utils') "
        "if m in sys.modules]; print(heavy)"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, str(store.path)],
        input=claude_code_status(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=30,
    ).stdout
    elapsed = time.perf_counter() - t0
    line, heavy = out.strip().splitlines()
    assert line.startswith("gatewatch $") and heavy == "[]"
    assert elapsed < 5  # a generous bound for a loaded CI machine; bench/store_bench.py measures it


@pytest.mark.parametrize("n", [0, 5_000, 999_999])
def test_tokens_read_short(n):
    assert len(statusline.tokens(n)) <= 5


async def test_the_full_cli_hands_statusline_its_own_options(session_store, capsys, monkeypatch):  # noqa: F811
    import io

    from console.cli import main as cli

    store, _ = session_store
    monkeypatch.setattr("sys.stdin", io.StringIO(claude_code_status()))
    assert cli(["statusline", "--db", str(store.path)]) == 0
    assert capsys.readouterr().out.startswith("gatewatch $")


async def test_options_given_before_statusline_are_the_statusline_s(session_store, capsys, monkeypatch):  # noqa: F811
    """`gatewatch --db F statusline` is the statusline on F (it once opened the console on Claude Code's
    stdin)."""
    import io

    from console.cli import main as cli

    store, _ = session_store
    monkeypatch.setattr("sys.stdin", io.StringIO(claude_code_status()))
    assert cli(["--db", str(store.path), "statusline"]) == 0
    assert capsys.readouterr().out.startswith("gatewatch $")


async def test_statusline_with_config_reads_its_store_and_keeps_the_budget_within_80_columns(
    session_store,  # noqa: F811
    capsys,
    tmp_path,
    monkeypatch,
):
    """Issue 22: `--config` names the gateway's [store] too (as `stats` reads it), and the budget it is set up
    for comes before the details a narrow terminal cuts."""
    store, records = session_store
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))  # the default store: not this one
    monkeypatch.delenv("GATEWATCH_DB", raising=False)
    config = tmp_path / "gatewatch.toml"
    config.write_text(f'[store]\npath = "{store.path}"\n[budget]\nsession_usd = 2.0\n')
    assert main(["--config", str(config)], stdin=claude_code_status()) == 0
    out = capsys.readouterr().out.strip()
    cost = sum(r.usage.cost for r in records)
    assert out.startswith(f"gatewatch {usd(cost)} · ")
    assert f"budget {usd(2.0 - cost)} left" in out[:80], out
