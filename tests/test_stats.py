"""`gatewatch stats --price-as MODEL`: stored usage re-priced at another model's published prices, nothing called."""

import os
import re
import subprocess
import sys

import pytest

from proxy.record import Usage
from proxy.reports.stats import aggregate
from proxy.store import Store
from tests import warmcli
from tests.serving import ROOT
from tests.test_store import filled, make

# Google's published gemini-2.5-pro prices for prompts up to 200k tokens, USD per 1M tokens
PRO_INPUT, PRO_OUTPUT, PRO_CACHE_READ = 1.25, 10.00, 0.125
# gemini-2.5-flash-lite, one price at every prompt size
LITE_INPUT, LITE_OUTPUT, LITE_CACHE_READ = 0.10, 0.40, 0.01


def stored(tmp_path) -> Store:
    return filled(
        tmp_path,
        [
            # served by flash; what would pro have cost for this usage?
            make(
                1, usage=Usage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000, cost=0.0104)
            ),
            make(2, usage=Usage(input_tokens=3_000, output_tokens=500, cost=0.00215)),
            make(3, kind="count_tokens", usage=Usage(input_tokens=99_000, cost=0.0)),  # counting is free
            make(4, status=500, usage=Usage()),  # billed nothing
        ],
    )


def by_hand(pin: float, pout: float, pread: float) -> float:
    return (
        (10_000 * pin + 4_000 * pread + 2_000 * pout) / 1e6  # call 1
        + (3_000 * pin + 500 * pout) / 1e6  # call 2
    )


def test_price_as_gives_the_hand_computed_figure_from_the_published_prices(tmp_path):
    store = stored(tmp_path)
    (group,) = aggregate(store.summaries(), ("target",), price_as="gemini-2.5-pro")["target"]
    assert by_hand(PRO_INPUT, PRO_OUTPUT, PRO_CACHE_READ) == pytest.approx(
        0.033 + 0.00875
    )  # 12,500 + 500 + 20,000 and 3,750 + 5,000 micro-dollars
    assert group.cost_as == pytest.approx(by_hand(PRO_INPUT, PRO_OUTPUT, PRO_CACHE_READ), rel=1e-9)
    assert group.cost == pytest.approx(0.0104 + 0.00215) and group.cost_as_unknown == 0
    (lite,) = aggregate(store.summaries(), ("target",), price_as="gemini-2.5-flash-lite")["target"]
    assert lite.cost_as == pytest.approx(by_hand(LITE_INPUT, LITE_OUTPUT, LITE_CACHE_READ), rel=1e-9)


def test_a_model_without_a_price_counts_as_unknown_never_zero(tmp_path):
    (group,) = aggregate(stored(tmp_path).summaries(), ("target",), price_as="no-such-model-9")["target"]
    assert group.cost_as_unknown == 2 and group.cost_as == 0.0  # the two billed calls; count and error cost 0


def stats(*args: str, cwd) -> subprocess.CompletedProcess:
    return warmcli.run(
        [sys.executable, "-m", "console.cli", "stats", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": ROOT},
    )


def test_the_stats_command_prints_the_what_if_column(tmp_path):
    stored(tmp_path)
    r = stats("--by", "target", "--price-as", "gemini-2.5-pro", "--db", str(tmp_path / "g.db"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    head, _, row = r.stdout.splitlines()[:3]
    assert "as gemini-2.5-pro $" in head
    assert f"{by_hand(PRO_INPUT, PRO_OUTPUT, PRO_CACHE_READ):.4f}" in row.split()
    assert row.split()[0] == "vertex-flash"
    r = stats("--price-as", "no-such-model-9", "--db", str(tmp_path / "g.db"), cwd=tmp_path)
    assert r.returncode == 2 and "no price for this model" in r.stderr


def wide_store(tmp_path) -> Store:
    """Figures as a day of Claude Code makes them: tens of millions of tokens, minutes of latency."""
    return filled(
        tmp_path,
        [
            make(
                i,
                response_model="gemini-3.8-flash",
                session_id="7f3a9c21-1b2c-4d5e-8f90-aabbccddeeff",
                usage=Usage(
                    input_tokens=690_000 + i,
                    output_tokens=45_000,
                    cache_read_tokens=300_000,
                    cost=2.4,
                    time_to_first_token=18_309.0 + i,
                ),
                latency_ms=108_248.0 + i,
            )
            for i in range(120)
        ],
    )


@pytest.mark.parametrize("by", [["--by", "model", "--by", "target"], ["--by", "session"]])
def test_stats_fits_an_80_column_terminal_leaving_out_the_least_needed_columns_and_saying_so(tmp_path, by):
    wide_store(tmp_path)
    db = ["--db", str(tmp_path / "g.db")]
    env = {**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "80"}

    def stats() -> subprocess.CompletedProcess[str]:
        return warmcli.run(
            [sys.executable, "-m", "console.cli", "stats", *by, *db],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
        )

    r = stats()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines) <= 80, "\n".join(x for x in lines if len(x) > 80)
    head, row = re.split(r"\s{2,}", lines[0].strip()), lines[2].split()
    assert head[0] == by[1] and "calls" in head and "cost $" in head and "ttft95" not in head
    assert row[head.index("calls")] == "120" and row[head.index("cost $")] == "288.0000"
    assert any(x.startswith("(left out at 80 columns: ttft p95") for x in lines)
    # piped into a program with no terminal to fit: every column, as before
    del env["COLUMNS"]
    r = stats()
    assert "ttft p95" in r.stdout.splitlines()[0] and "left out" not in r.stdout


def test_a_turns_prompt_is_cut_with_an_ellipsis_to_the_room_left():
    from console.commands.stats import table
    from proxy.reports.stats import Group

    g = Group("p-0001")
    g.requests = 3
    text = "explain why the router sends haiku calls to the lite target and how to change it " * 2
    out = table("prompt", [g], labels={"p-0001": text}, width=80)
    lines = out.splitlines()
    assert max(len(x) for x in lines) <= 80 and lines[2].endswith("…")
    assert "explain why the" in lines[2]
