"""Export: JSON, JSON lines and Kong file-log lines, streamed from the store; and the stats aggregation."""

import io
import json
import os
import stat

import pytest

from proxy.record import Attempt, Usage
from proxy.reports.export import export_file, kong_record, write
from proxy.reports.stats import aggregate, percentile
from proxy.store.query import parse
from tests.test_store import filled, make


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
    buf = io.BytesIO()
    assert write(store.iter_records(), "json", buf) == 3
    assert [r["id"] for r in json.loads(buf.getvalue())] == ["req_000000", "req_000001", "req_000002"]
    buf = io.BytesIO()
    write(store.iter_records(parse("answer 1")), "jsonl", buf)
    assert [json.loads(line)["id"] for line in buf.getvalue().splitlines()] == ["req_000001"]
    buf = io.BytesIO()
    write(store.iter_records(), "kong", buf)
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


def test_kong_usage_counts_cache_creation_in_prompt_tokens():
    k = kong_record(make(1, usage=Usage(input_tokens=10, cache_read_tokens=5, cache_creation_tokens=100)))
    assert k["ai"]["proxy"]["usage"]["prompt_tokens"] == 115 and k["ai"]["proxy"]["usage"]["cost"] == 0


def test_export_file_is_private_and_written_whole(tmp_path):
    store = filled(tmp_path, [make(i) for i in range(3)])
    path = tmp_path / "out.jsonl"
    assert export_file(store.iter_records(parse("tool:Bash")), "jsonl", path) == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and not (tmp_path / "out.jsonl.part").exists()
    with pytest.raises(ValueError, match="format must be one of"):
        write([], "xml", io.BytesIO())


def test_percentile_interpolates_and_skips_unknowns():
    assert percentile([], 0.5) is None and percentile([None], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, None], 0.5) == 2.0 and percentile([0.0, 10.0], 0.95) == pytest.approx(
        9.5
    )


def test_stats_group_by_model_and_target(tmp_path):
    store = filled(
        tmp_path,
        [
            make(0, status=500, error_type="api_error"),
            make(1, target="b", usage=Usage(input_tokens=7, cost=None)),
            make(2, response_model=None, request_model="claude-x"),
            make(3),
        ],
    )
    grouped = aggregate(store.summaries())
    by_model = {g.key: g for g in grouped["model"]}
    assert by_model["gemini-2.5-flash"].requests == 3 and by_model["gemini-2.5-flash"].errors == 1
    assert by_model["claude-x"].requests == 1
    by_target = grouped["target"]
    assert [g.key for g in by_target] == ["vertex-flash", "b"]
    b = by_target[1]
    assert b.cost_unknown == 1 and b.cost == 0 and b.input_tokens == 7 and b.p50_ms == 101
