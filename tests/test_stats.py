"""`gatewatch stats --price-as MODEL`: stored usage re-priced at another model's published prices, nothing called."""

import os
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
