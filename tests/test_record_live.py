"""`Live` (proxy/record): the gateway's records made and written without pydantic's validation and serializer
equal what pydantic's own paths make of the same values."""

from __future__ import annotations

import orjson
import pytest

from proxy.edge.feed import HIDDEN, record_json
from proxy.record import Attempt, Record, Usage, dumps
from proxy.store.payloads import PAYLOADS, serialize_parts
from proxy.translate.notes import Note

FIELDS = {
    "id": "req_1",
    "kind": "messages",
    "started_at": 1_700_000_000.25,
    "client_ip": "127.0.0.1",
    "user_agent": "claude-cli/2.1",
    "method": "POST",
    "path": "/v1/messages",
    "query": "beta=true",
    "request_headers": {"content-type": "application/json", "x-api-key": "REDACTED"},
}
ATTEMPT = {
    "target": "vertex",
    "provider": "gemini",
    "model": "gemini-2.5-flash",
    "host": "example.com",
    "port": 443,
    "upstream_scheme": "https",
    "upstream_uri": "/v1/models/gemini-2.5-flash:generateContent",
}


def fill(r: Record) -> Record:
    """What a call writes into its record, as `Call` writes it."""
    a = Attempt.live(**ATTEMPT)
    r.tried_targets.append(a)
    a.status, a.latency_ms, a.started_ms, a.response_id = 200, 12.5, 0.4, "resp-1"
    r.request_model, r.request_mode, r.session_id, r.preview = "claude-x", "stream", "s1", "hi"
    r.target, r.provider, r.response_model = "vertex", "gemini", "gemini-2.5-flash"
    r.usage.input_tokens, r.usage.output_tokens, r.usage.cost = 10, 20, 0.000125
    r.usage.time_to_first_token = 3.25
    r.notes.append(Note("tool-dropped", "dropped", {"tools": ["web_search"], "n": 1}))
    r.tools_used = ["Read"]
    r.status, r.latency_ms, r.ended_at, r.stream_chunks = 200, 15.0, 1_700_000_001.5, 3
    r.response_headers = {"request-id": "req_1"}
    r.client_request = {"system": "s" * 3000, "tools": [{"name": "Read"}], "messages": []}
    r.events = [{"event": "ping", "data": {"type": "ping"}}]
    r.bodies.client = {"x": 1}
    return r


def test_live_equals_validated() -> None:
    live, made = Record.live(**FIELDS), Record(**FIELDS)
    assert live == made
    assert live.model_fields_set == made.model_fields_set
    assert live.__pydantic_private__ == made.__pydantic_private__
    assert Usage.live() == Usage() and Attempt.live(**ATTEMPT) == Attempt(**ATTEMPT)
    assert fill(Record.live(**FIELDS)) == fill(Record(**FIELDS))
    back = Record.model_validate(fill(Record.live(**FIELDS)).model_dump())
    assert back.model_dump() == fill(Record(**FIELDS)).model_dump()


def test_live_fields_are_fresh() -> None:
    """A default factory's value is made per record, never shared."""
    a, b = Record.live(**FIELDS), Record.live(**FIELDS)
    a.tried_targets.append(Attempt.live(**ATTEMPT))
    a.usage.input_tokens = 3
    a.notes.append(Note("other", "x"))
    assert b.tried_targets == [] and b.usage.input_tokens == 0 and b.notes == []


@pytest.mark.parametrize("maker", [Record, Record.live])
def test_written_as_pydantic_writes_it(maker: type[Record]) -> None:
    r = fill(maker(**FIELDS))
    assert dumps(r.head(PAYLOADS)) == orjson.dumps(r.model_dump(mode="json", exclude=set(PAYLOADS)))
    assert dumps(r.head(HIDDEN)) == orjson.dumps(r.model_dump(mode="json", exclude=set(HIDDEN)))
    data, blobs = serialize_parts(r, ["secret-value-1"])
    doc = orjson.loads(data)
    assert {k: v for k, v in doc.items() if k not in PAYLOADS} == r.model_dump(
        mode="json", exclude=set(PAYLOADS)
    )
    assert doc["client_request"]["system"] == {"$blob": next(iter(blobs))}
    assert orjson.loads(record_json(r, [])) == r.model_dump(mode="json", exclude=set(HIDDEN))


def test_what_orjson_cannot_write_goes_through_pydantic() -> None:
    """A value orjson refuses (a set in a note's data) is written as pydantic writes it, as before."""
    r = fill(Record.live(**FIELDS))
    r.notes.append(Note("other", "odd", {"seen": {1}}))
    data, _ = serialize_parts(r, [])
    assert orjson.loads(data)["notes"][-1]["data"] == {"seen": [1]}
    assert orjson.loads(record_json(r, []))["notes"][-1]["data"] == {"seen": [1]}
