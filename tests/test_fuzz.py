"""Property-based fuzzing of the request parser and the translator: arbitrary JSON and mutated Claude Code
requests never raise anything but a clear invalid_request_error, never a 500, and whatever is accepted is a
body Google would accept."""

import asyncio
import copy
import json
import os
import socket
import threading
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy import config as cfg
from proxy.edge.server import Gateway, start
from proxy.errors import GatewayError
from proxy.simulator import GeminiSimulator
from proxy.store.payloads import serialize_parts
from proxy.translate import request as treq
from tests import cc_requests, strict

TARGET = treq.Target("gemini-2.5-flash", 8192)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
BLOCK_TYPES = [
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "tool_reference",
    "hologram",
]


def check(req) -> None:
    try:
        out = treq.translate(req, TARGET)
    except GatewayError as err:
        assert err.status == 400 and err.type == "invalid_request_error" and err.message
        return
    problem = strict.validate("gemini", "generateContent", out.body, "gemini-2.5-flash")
    assert problem is None, (problem, req)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)),
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "model",
                "messages",
                "system",
                "tools",
                "tool_choice",
                "thinking",
                "max_tokens",
                "stop_sequences",
                "metadata",
                "temperature",
            ]
        ),
        json_values,
        max_size=8,
    )
)
def test_arbitrary_json_fields_never_escape_as_anything_but_a_400(req):
    check(req)


block = st.fixed_dictionaries(
    {"type": st.sampled_from(BLOCK_TYPES)},
    optional={
        "text": st.text(max_size=10) | json_values,
        "id": st.text(max_size=6),
        "name": st.text(max_size=8),
        "input": json_values,
        "tool_use_id": st.text(max_size=6),
        "content": json_values,
        "is_error": st.booleans(),
        "signature": st.text(max_size=10),
        "source": json_values,
        "tool_name": st.text(max_size=8),
    },
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool"]),
        "content": st.text(max_size=10) | st.lists(block, max_size=4),
    }
)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)),
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
)
@given(st.lists(message, min_size=1, max_size=6))
def test_arbitrary_conversations_translate_to_valid_bodies_or_a_400(messages):
    check({"model": "m", "max_tokens": 100, "messages": messages})


def _mutate(data, draw_path, value, action):
    """Apply one mutation at a path into a deep copy."""
    obj = copy.deepcopy(data)
    node = obj
    for key in draw_path[:-1]:
        node = node[key]
    last = draw_path[-1]
    if action == "delete" and isinstance(node, dict):
        node.pop(last, None)
    else:
        node[last] = value
    return obj


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:6]):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_requests(draw):
    base = cc_requests.ALL[draw(st.sampled_from(sorted(cc_requests.ALL)))]
    req = base
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(req) if p]
        path = draw(st.sampled_from(paths))
        req = _mutate(req, path, draw(json_values), draw(st.sampled_from(["replace", "delete"])))
    return req


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 400)),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)
@given(mutated_requests())
def test_mutated_claude_code_requests_translate_to_valid_bodies_or_a_400(req):
    check(req)


@pytest.mark.parametrize("name", sorted(cc_requests.ALL))
@pytest.mark.parametrize("tools", [True, 1, "Bash", {"name": "Bash"}])
def test_a_request_whose_tools_are_not_a_list_gets_a_400(name, tools):
    # found by the fuzz above: `tools: true` crashed the count of cache_control marks before validation
    with pytest.raises(GatewayError) as err:
        treq.translate({**cc_requests.ALL[name], "tools": tools}, TARGET)
    assert (
        err.value.status == 400 and err.value.type == "invalid_request_error" and "tools" in err.value.message
    )


def deep_body(depth: int) -> bytes:
    """A Messages body whose metadata nests `depth` levels (orjson reads 1,024 and writes 255)."""
    return b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"metadata":' + (
        b'{"a":' * depth + b"1" + b"}" * (depth + 1)
    )


@pytest.fixture(scope="module")
def live_gateway():
    """A gateway and a (lenient) simulator on their own loop in a thread, for sync hypothesis tests."""
    loop = asyncio.new_event_loop()
    state = {}

    async def boot():
        sim = GeminiSimulator(api_key="k", validator=strict.validate)
        await sim.start()
        config = cfg.from_mapping(
            {
                "targets": [
                    {
                        "name": "t",
                        "provider": "gemini",
                        "model": "gemini-2.5-flash",
                        "api_key": "k",
                        "api_endpoint": sim.url,
                    }
                ]
            },
            "fuzz",
            {},
        )
        records = []
        gw = Gateway(config, on_record=records.append)
        runner, port = await start(gw, "127.0.0.1", 0)
        state.update(
            sim=sim, runner=runner, url=f"http://127.0.0.1:{port}", records=records, gw=gw, port=port
        )

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(boot(), loop).result(20)
    yield state
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(20)
    asyncio.run_coroutine_threadsafe(state["sim"].stop(), loop).result(20)
    loop.call_soon_threadsafe(loop.stop)


@settings(
    max_examples=150,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
    deadline=None,
)
@given(
    body=st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
        mutated_requests().map(lambda r: json.dumps(r).encode()),
        st.integers(40, 1000).map(deep_body),
    )
)
def test_the_server_never_answers_500_to_any_body(live_gateway, body):
    n = len(live_gateway["records"])
    r = requests.post(
        live_gateway["url"] + "/v1/messages?beta=true",
        data=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code in (200, 400), r.text
    if r.headers["content-type"].startswith("application/json"):
        data = r.json()
        if r.status_code == 400:
            assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
            assert "INVALID_ARGUMENT" not in data["error"]["message"], "Google refused what we accepted"
        else:
            assert data["type"] == "message"
    else:
        assert r.text.startswith("event: message_start") and "event: message_stop" in r.text
    for _ in range(100):  # the record is handed over as the response ends
        if len(live_gateway["records"]) > n:
            break
        time.sleep(0.01)
    assert len(live_gateway["records"]) == n + 1
    serialize_parts(live_gateway["records"][-1], [])  # and the record can be stored


header_bytes = st.binary(min_size=1, max_size=60).map(
    lambda b: bytes(c for c in b if c not in b"\r\n\x00").strip(b" \t") or b"x"
)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 150)),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=None,
)
@given(
    name=st.sampled_from([b"User-Agent", b"X-Api-Key", b"Authorization", b"X-Custom", b"Anthropic-Beta"]),
    value=header_bytes,
    depth=st.integers(1, 400),
    where=st.sampled_from(["metadata", "schema", "input"]),
)
def test_any_header_bytes_and_any_nesting_leave_a_record_or_a_count(live_gateway, name, value, depth, where):
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    msgs = b'[{"role":"user","content":"x"}]'
    if where == "metadata":
        body = b'{"model":"m","max_tokens":5,"messages":' + msgs + b',"metadata":' + inner + b"}"
    elif where == "schema":
        body = (
            b'{"model":"m","max_tokens":5,"messages":' + msgs + b',"tools":[{"name":"t","input_schema":'
            b'{"type":"object","properties":{"p":' + inner + b"}}}]}"
        )
    else:
        body = (
            b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant",'
            b'"content":[{"type":"tool_use","id":"t1","name":"t","input":' + inner + b'}]},{"role":"user",'
            b'"content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}]}'
        )
    gw, records = live_gateway["gw"], live_gateway["records"]
    n, rejected, counted = len(records), gw.connections.rejected, gw.refusals.counted
    req = (
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + name
        + b": "
        + value
        + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )
    with socket.create_connection(("127.0.0.1", live_gateway["port"]), timeout=30) as sock:
        sock.sendall(req)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status in (200, 400, 401), answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["type"] in ("message", "error")
    for _ in range(100):
        if len(records) > n or gw.connections.rejected > rejected or gw.refusals.counted > counted:
            break
        time.sleep(0.01)
    if gw.connections.rejected > rejected:  # refused by the HTTP parser itself: counted, never served
        assert status == 400
        return
    if gw.refusals.counted > counted:  # refused past gateway.refused_records_per_s: counted
        assert status == 401
        return
    assert len(records) == n + 1
    serialize_parts(records[-1], [])
    if status == 401:  # a non-ASCII key is refused before the body is read
        assert name in (b"X-Api-Key", b"Authorization") and not value.isascii()
    elif depth >= 48:  # the body nests deeper than messages.MAX_DEPTH wherever it sits
        assert status == 400 and "levels deep" in records[-1].error_message


def _nesting(v) -> int:
    if isinstance(v, dict):
        return 1 + max((_nesting(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_nesting(x) for x in v), default=0)
    return 0


_TRICKY = st.text(alphabet='"\\[]{}/nu0a', max_size=8)
_JSON = st.recursive(
    st.none() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY, inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(value=_JSON)
def test_the_nesting_check_counts_what_the_parser_reads(value):
    """`messages.depth` reads the nesting from the bytes (strings with escaped quotes, backslashes and
    brackets inside skipped) as the parsed value has it."""
    from proxy.exchange.messages import depth

    assert depth(json.dumps(value).encode()) == _nesting(value)
    assert depth(json.dumps(value, indent=1).encode()) == _nesting(value)
