"""The gateway through real sockets: the official anthropic SDK as client, the strict fake as upstream,
once against Vertex AI (service-account OAuth) and once against the Gemini API (API key)."""

import asyncio
import base64
import json

import aiohttp
import anthropic
import pytest

from proxy.record import payload
from proxy.simulator import Reply
from tests import cc_requests


def sdk_args(req: dict) -> dict:
    """Claude Code's body as SDK arguments: fields the stable SDK doesn't type travel in extra_body."""
    known = {"model", "messages", "system", "tools", "metadata", "max_tokens", "thinking"}
    args = {k: v for k, v in req.items() if k in known}
    args["extra_body"] = {k: v for k, v in req.items() if k not in known and k != "stream"}
    return args


async def test_a_plain_message_comes_back_translated(gw):
    gw.fake.script(Reply.text("Hello there!", prompt_tokens=12))
    msg = await gw.client.messages.create(
        model="gemini-2.5-flash", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].text == "Hello there!"
    assert msg.stop_reason == "end_turn" and msg.model == "gemini-2.5-flash"
    assert msg.usage.input_tokens == 12 and msg.usage.output_tokens == 2
    sent = gw.fake.received[-1]
    assert sent.action == "generateContent"
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    rec = gw.records[-1]
    assert rec.status == 200 and rec.usage.input_tokens == 12 and rec.tried_targets[0].status == 200


async def test_vertex_calls_carry_a_bearer_token_and_gemini_calls_an_api_key(gw):
    await gw.client.messages.create(model="x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    headers = {k.lower(): v for k, v in gw.fake.received[-1].headers.items()}
    if gw.gateway.providers[0].kind == "vertex":
        assert headers["authorization"].startswith("Bearer ya29.sim-") and "x-goog-api-key" not in headers
        assert gw.fake.received[-1].path.startswith("/v1/projects/example-project/locations/us-central1/")
    else:
        assert headers["x-goog-api-key"] and "authorization" not in headers
        assert gw.fake.received[-1].path == "/v1beta/models/gemini-2.5-flash:generateContent"
    # the client's own Anthropic key never goes upstream
    assert "sk-ant-test-secret-key" not in json.dumps(headers)


async def test_streaming_yields_a_valid_event_sequence_and_final_message(gw):
    gw.fake.script(Reply.text("one two three four five six", chunks=4))
    async with gw.client.messages.stream(
        model="gemini-2.5-flash", max_tokens=100, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        kinds = [ev.type async for ev in stream]
        final = await stream.get_final_message()
    assert final.content[0].text == "one two three four five six"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 6
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert gw.fake.received[-1].action == "streamGenerateContent"
    rec = gw.records[-1]
    assert rec.request_mode == "stream" and rec.usage.time_to_first_token is not None
    # a live record holds the events as the JSON sent (payload reads it), the store's copy as a list
    assert [e["event"] for e in payload(rec.events)][:2] == ["message_start", "content_block_start"]
    events = payload(rec.events)
    assert events[-1]["event"] == "message_stop" and all(e["data"]["type"] == e["event"] for e in events)
    assert "".join(
        e["data"]["delta"].get("text", "") for e in events if e["event"] == "content_block_delta"
    ) == ("one two three four five six")
    chunks = payload(rec.upstream_response)
    assert len(chunks) == rec.stream_chunks >= 2 and all("candidates" in c for c in chunks)


async def test_a_tool_loop_with_claude_code_shapes_round_trips_the_thought_signature(gw):
    gw.fake.script(
        Reply.call("Bash", {"command": "echo hello", "description": "Print hello"}, text="Running it.")
    )
    first = cc_requests.first_turn("run echo hello", stream=True)
    async with gw.client.messages.stream(**sdk_args(first)) as s:
        msg = await s.get_final_message()
    kinds = [b.type for b in msg.content]
    assert kinds == ["text", "thinking", "tool_use"] and msg.stop_reason == "tool_use"
    tool = msg.content[-1]
    assert tool.id.startswith("toolu_") and tool.input == {
        "command": "echo hello",
        "description": "Print hello",
    }
    sig = gw.fake.received[-1]  # the first call
    first_sent = sig.body
    assert "systemInstruction" in first_sent and first_sent["generationConfig"]["maxOutputTokens"] == 32000
    # turn two: Claude Code echoes the assistant content (with the thinking block) and the tool result
    gw.fake.script(Reply.text("It printed hello."))
    second = dict(first)
    second["messages"] = first["messages"] + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "hello"}]},
    ]
    async with gw.client.messages.stream(**sdk_args(second)) as s:
        done = await s.get_final_message()
    assert done.content[-1].text == "It printed hello."
    sent = gw.fake.received[-1].body["contents"]
    call = [p for p in sent[1]["parts"] if "functionCall" in p][0]
    original = [p for p in gw.fake.received[-2].body["contents"]]  # unchanged request history
    assert call["thoughtSignature"] and base64.b64decode(call["thoughtSignature"])
    assert sent[2]["parts"][0]["functionResponse"] == {"name": "Bash", "response": {"content": "hello"}}
    assert len(original) == 1


async def test_thinking_comes_back_as_thinking_blocks(gw):
    gw.fake.script(Reply.thinking("Let me think about it.", "The answer is 4."))
    async with gw.client.messages.stream(
        model="m",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "2+2?"}],
    ) as s:
        msg = await s.get_final_message()
    assert msg.content[0].type == "thinking" and msg.content[0].thinking == "Let me think about it."
    assert msg.content[0].signature
    assert msg.content[1].text == "The answer is 4."
    assert gw.fake.received[-1].body["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 976,  # 1024 asked, but the answer keeps 1024 of the 2000
        "includeThoughts": True,
    }
    assert gw.records[-1].usage.thinking_tokens == 5


async def test_an_image_reaches_gemini_as_inline_data(gw):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 20).decode()
    await gw.client.messages.create(
        model="m",
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    {"type": "text", "text": "what is this"},
                ],
            }
        ],
    )
    assert gw.fake.received[-1].body["contents"][0]["parts"][0] == {
        "inlineData": {"mimeType": "image/png", "data": png}
    }


async def test_count_tokens_asks_gemini_to_count(gw):
    req = cc_requests.count_request()
    n = await gw.client.messages.count_tokens(
        model=req["model"], messages=req["messages"], tools=req["tools"]
    )
    assert n.input_tokens > 10
    sent = gw.fake.received[-1]
    assert sent.action == "countTokens"
    rec = gw.records[-1]
    assert rec.kind == "count_tokens" and not rec.usage.estimated and rec.usage.input_tokens == n.input_tokens


@pytest.mark.parametrize(
    "reply,status,etype",
    [
        (
            Reply.error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded",
                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}],
            ),
            429,
            "rate_limit_error",
        ),
        (Reply.error(503, "UNAVAILABLE", "The model is overloaded."), 529, "overloaded_error"),
        (Reply.error(500, "INTERNAL", "oops"), 500, "api_error"),
        (
            Reply.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            400,
            "invalid_request_error",
        ),
        # the gateway's credential: its failure, not the client's login (Claude Code reads 403 as /login)
        (Reply.error(403, "PERMISSION_DENIED", "Vertex AI API has not been used"), 502, "api_error"),
        (Reply.error(404, "NOT_FOUND", "Publisher Model was not found"), 404, "not_found_error"),
    ],
)
async def test_google_errors_become_the_anthropic_errors_claude_code_retries_on(gw, reply, status, etype):
    gw.fake.script(reply)
    with pytest.raises(anthropic.APIStatusError) as e:
        await gw.client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == status
    assert e.value.body["error"]["type"] == etype
    assert reply.error_message in e.value.body["error"]["message"]
    if status == 429:
        assert e.value.response.headers["retry-after"] == "17"
    rec = gw.records[-1]
    assert rec.status == status and rec.error_type == etype and rec.tried_targets[0].status == reply.status
    assert rec.usage.cost == 0.0  # nothing was billed: known to cost nothing, not "unknown"


async def test_a_stream_error_before_any_byte_is_a_plain_http_error(gw):
    gw.fake.script(Reply.error(429, "RESOURCE_EXHAUSTED", "slow down"))
    with pytest.raises(anthropic.RateLimitError):
        async with gw.client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as s:
            await s.get_final_message()


async def test_a_stream_cut_mid_way_ends_with_an_sse_error_event(gw):
    gw.fake.script(Reply.text("a b c d e f g h", chunks=4, cut_after=2))
    async with aiohttp.ClientSession() as http:
        async with http.post(
            gw.url + "/v1/messages",
            json={
                "model": "m",
                "max_tokens": 10,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
        ) as r:
            text = await r.text()
    assert r.status == 200
    assert "event: message_start" in text and text.rstrip().split("\n")[-2] == "event: error"
    assert '"type":"api_error"' in text and "without a finish reason" in text
    assert gw.records[-1].error_type == "api_error"


async def test_a_stall_becomes_a_retryable_error_instead_of_a_hang(fake, sa_json):
    from tests.conftest import run_gateway, target_for

    raw = {
        "gateway": {"idle_timeout": 0.3, "ping_interval": 0.1},
        "targets": [target_for("gemini", fake, sa_json)],
    }
    async for gw in run_gateway(raw, fake):
        fake.script(Reply.text("a b c d", chunks=4, stall_after=1))
        async with aiohttp.ClientSession() as http:
            async with http.post(
                gw.url + "/v1/messages",
                json={
                    "model": "m",
                    "max_tokens": 10,
                    "stream": True,
                    "messages": [{"role": "user", "content": "x"}],
                },
            ) as r:
                text = await r.text()
        assert "event: ping" in text
        assert "event: error" in text and "overloaded_error" in text and "idle_timeout" in text
        rec = gw.records[-1]
        assert rec.error_type == "overloaded_error" and rec.status == 200


async def test_a_client_disconnect_cancels_the_upstream_call_and_is_recorded(fake, sa_json):
    from tests.conftest import run_gateway, target_for

    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake):
        fake.script(Reply.text("a b c d", chunks=4, stall_after=1))
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                gw.url + "/v1/messages",
                json={
                    "model": "m",
                    "max_tokens": 10,
                    "stream": True,
                    "messages": [{"role": "user", "content": "x"}],
                },
            )
            await r.content.readline()
            # the stream's pump runs in a task of its own (the gateway shares this loop)
            pumps = [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__name__", "") == "_pump"]
            assert len(pumps) == 1
            r.close()
        for _ in range(50):
            if gw.records:
                break
            await asyncio.sleep(0.05)
        assert gw.records[-1].cancelled and gw.records[-1].error_type == "cancelled"
        assert not gw.gateway.in_flight
        # the handler's cancel reached the pump through its await (not the upstream's release after it)
        assert pumps[0].cancelled()


async def test_a_client_that_stops_reading_holds_the_stream_back_with_its_frames_taken_as_they_arrive(
    fake, sa_json, monkeypatch
):
    """A long answer's frames go on as the socket delivers them (`Body.take`), but not past a client that has
    stopped reading: once aiohttp's writer would wait for it, the frame is read by the relay, which waits, and
    the upstream with it. The gateway never holds more than a little of the answer for the client."""
    import socket

    from proxy.exchange.relay import gemini as relay
    from tests.conftest import run_gateway, target_for

    held: list[int] = []  # bytes the transport to the client holds, after each frame taken
    took = 0
    put = relay.Sink.put_delta

    def spied(self, data):
        nonlocal took
        put(self, data)
        took += 1
        held.append(self._chunks._protocol.transport.get_write_buffer_size())

    monkeypatch.setattr(relay.Sink, "put_delta", spied)
    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake):
        fake.script(Reply.text(" ".join(["word"] * 2_400_000), chunks=400, chunk_delay=0.001))  # 12 MB
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        body = b'{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"x"}]}'
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await reader.readuntil(b"\r\n\r\n")  # the headers; then it reads no more
        before = -1
        for _ in range(50):  # until the client's buffers are full and the stream is held
            await asyncio.sleep(0.2)
            if took > 20 and took == before:
                break
            before = took
        assert took > 20  # frames went on while the client's buffers filled
        assert max(held) < 1_000_000, max(held)
        assert not gw.records  # still streaming, held back by the client
        writer.close()
        for _ in range(100):
            if gw.records:
                break
            await asyncio.sleep(0.05)
        assert gw.records[-1].cancelled


def test_a_delta_is_not_put_on_the_transport_while_the_client_is_behind():
    """`Sink.ready`: no writer of plain chunks, held events, bytes due to drain, or aiohttp's writer paused for
    the client (the pinger may be waiting on it) mean the delta waits for the relay's own write."""
    from types import SimpleNamespace

    from proxy.exchange.relay.gemini import _DRAIN_AT, Sink

    transport = SimpleNamespace(is_closing=lambda: False)
    sink = Sink.__new__(Sink)
    sink.held = []
    sink._chunks = None
    assert not sink.ready()
    protocol = SimpleNamespace(writing_paused=False, transport=transport)
    sink._chunks = SimpleNamespace(buffer_size=0, _protocol=protocol)
    assert sink.ready()
    protocol.writing_paused = True
    assert not sink.ready()
    protocol.writing_paused = False
    sink._chunks.buffer_size = _DRAIN_AT + 1
    assert not sink.ready()
    sink._chunks.buffer_size = 0
    transport.is_closing = lambda: True
    assert not sink.ready()


@pytest.mark.parametrize(
    "body,needle",
    [
        (b"{not json", "not valid JSON"),
        (b"[1,2]", "must be a JSON object"),
        (b'{"messages": []}', "model: Field required"),
        (b'{"model": "m", "messages": [{"role":"user","content":"x"}]}', "max_tokens"),
        (
            b'{"model": "m", "max_tokens": 5, "messages": [{"role":"user","content":[{"type":"hologram"}]}]}',
            "hologram",
        ),
    ],
)
async def test_malformed_client_requests_get_clear_400s(gw, body, needle):
    async with aiohttp.ClientSession() as http:
        async with http.post(
            gw.url + "/v1/messages", data=body, headers={"content-type": "application/json"}
        ) as r:
            data = await r.json()
    assert r.status == 400 and data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error" and needle in data["error"]["message"]
    assert gw.records[-1].status == 400
    assert not gw.fake.received  # nothing malformed went upstream


async def test_a_body_over_the_limit_is_413(fake, sa_json):
    from tests.conftest import run_gateway, target_for

    async for gw in run_gateway(
        {"gateway": {"max_body_bytes": 1000}, "targets": [target_for("gemini", fake, sa_json)]}, fake
    ):
        with pytest.raises(anthropic.APIStatusError) as e:
            await gw.client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x" * 5000}]
            )
        assert e.value.status_code == 413 and e.value.body["error"]["type"] == "request_too_large"


async def test_paths_prefixes_query_strings_probes_and_health(gw):
    async with aiohttp.ClientSession() as http:
        async with http.head(gw.url + "/") as r:
            assert r.status == 200
        async with http.post(
            gw.url + "/anything/v1/messages?beta=true",
            json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        ) as r:
            assert r.status == 200 and (await r.json())["type"] == "message"
        async with http.post(
            gw.url + "/kong/route/v1/messages/count_tokens?beta=true",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        ) as r:
            assert r.status == 200 and (await r.json())["input_tokens"] >= 1
        async with http.get(gw.url + "/health") as r:
            health = await r.json()
            assert health["status"] == "ok" and health["targets"][0]["model"] == "gemini-2.5-flash"
        async with http.get(gw.url + "/v2/whatever") as r:
            data = await r.json()
            assert r.status == 404 and data["error"]["type"] == "not_found_error"


async def test_the_model_asked_for_picks_the_target_that_serves_it(fake, sa_json):
    from tests.conftest import run_gateway, target_for

    targets = [
        target_for("gemini", fake, sa_json),
        target_for("gemini", fake, sa_json, name="pro", model="gemini-2.5-pro"),
    ]
    async for gw in run_gateway({"targets": targets}, fake):
        await gw.client.messages.create(
            model="gemini-2.5-pro", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        assert gw.fake.received[-1].model == "gemini-2.5-pro"
        await gw.client.messages.create(
            model="claude-opus-5-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        assert gw.fake.received[-1].model == "gemini-2.5-flash"
        assert gw.records[-1].request_model == "claude-opus-5-5" and gw.records[-1].target == "studio"


@pytest.mark.parametrize("name", sorted(cc_requests.ALL))
async def test_claude_code_shaped_requests_pass_through_the_strict_fake(gw, name):
    req = cc_requests.ALL[name]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            gw.url + "/v1/messages?beta=true",
            json=req,
            headers={"x-api-key": "sk-ant-xyz", "anthropic-version": "2023-06-01"},
        ) as r:
            text = await r.text()
    assert r.status == 200, text
    if req.get("stream"):
        assert text.startswith("event: message_start") and "event: message_stop" in text
    rec = gw.records[-1]
    assert rec.session_id == cc_requests.SESSION and rec.request_headers["x-api-key"] == "REDACTED"


@pytest.mark.parametrize(
    "reply",
    [
        lambda: Reply.text("Plain words, a few of them.", chunks=3),
        lambda: Reply.call("Bash", {"command": "ls"}, text="Let me look."),
        lambda: Reply.thinking("Ponder the question.", "Forty-two."),
        lambda: Reply.text("cut short", finish="MAX_TOKENS"),
        lambda: Reply.text("", finish="MALFORMED_FUNCTION_CALL"),
    ],
)
async def test_oneshot_and_streamed_answers_of_the_same_reply_are_the_same_message(gw, reply):
    """One state machine for both: the whole answer is the stream translator fed one chunk."""
    args = {
        "model": "gemini-2.5-flash",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "go"}],
        "thinking": {"type": "enabled", "budget_tokens": 500},
    }
    r = reply()
    gw.fake.script(r)
    oneshot = await gw.client.messages.create(**args)
    gw.fake.script(r)
    async with gw.client.messages.stream(**args) as s:
        streamed = await s.get_final_message()

    def shape(m):
        d = m.model_dump()
        for b in d["content"]:
            if b["type"] == "tool_use":
                b["id"] = "toolu_x"  # minted per call
        return {k: d[k] for k in ("content", "stop_reason", "model", "role")} | {
            "output_tokens": d["usage"]["output_tokens"]
        }

    assert shape(oneshot) == shape(streamed)


async def test_a_stream_read_a_frame_at_a_time_and_in_one_burst_sends_the_same_events_and_record(
    gw, monkeypatch
):
    """Frames 20 ms apart arrive one per read and take the relay's fast path for plain text (each framed as
    an HTTP chunk and put on the transport by the relay, and, after the first, taken as the socket delivers
    it); with no delay they arrive together and take the general one; the fast path again with every frame
    written by aiohttp's writer (none taken then); and once more with none taken. The client's bytes (but for
    the ids minted per call) and the record are the same."""
    from proxy.exchange import upstream
    from proxy.exchange.relay import gemini as relay
    from proxy.translate.stream import StreamTranslator

    taken = []
    took: list[bytes] = []  # the frames taken as they arrived
    real_take = upstream.Body.take
    offering = []

    def take(self, taker):
        return offering[-1] and real_take(self, lambda data: taker(data) and (took.append(data) or True))

    monkeypatch.setattr(upstream.Body, "take", take)
    fast = StreamTranslator.text_delta

    def counted(self, chunk):
        out = fast(self, chunk)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(StreamTranslator, "text_delta", counted)
    direct: list[bool] = []
    plain = relay._plain_chunks
    modes = []

    def spied(out):
        w = plain(out) if modes[-1] == "on" else None
        direct.append(w is not None)
        return w

    words = " ".join(f'w{i} "q" é' for i in range(30))

    def sse(text, msg_id):
        out = []
        for frame in text.strip().split("\n\n"):
            name, data = frame.split("\n", 1)
            out.append((name, data.replace(msg_id, "msg_X")))
        return out

    seen = []
    for delay, mode, offer in (
        (0.02, "on", True),
        (0.0, "on", True),
        (0.02, "off", True),
        (0.02, "on", False),
    ):
        taken.clear()
        took.clear()
        modes.append(mode)
        offering.append(offer)
        monkeypatch.setattr(relay, "_plain_chunks", spied)
        gw.fake.script(Reply.text(words, chunks=12, chunk_delay=delay))
        body = {
            "model": "m",
            "max_tokens": 500,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.url + "/v1/messages", json=body) as r:
                text = await r.text()
        rec = gw.records[-1]
        msg_id = payload(rec.events)[0]["data"]["message"]["id"]
        events = [(e["event"], json.dumps(e["data"]).replace(msg_id, "msg_X")) for e in payload(rec.events)]
        chunks = [{k: v for k, v in c.items() if k != "responseId"} for c in payload(rec.upstream_response)]
        seen.append((sse(text, msg_id), events, rec.response_size, rec.stream_chunks, chunks, rec.status))
        if delay:
            assert sum(taken) >= 8, taken  # the plain chunks after the first went the fast way
            assert direct[-1] is (mode == "on"), direct  # on the transport directly, or through aiohttp
            # taken as they arrived: all but the first plain one (and the last, which ends the answer)
            assert len(took) == (sum(taken) - 1 if mode == "on" and offer else 0), (took, taken)
    assert seen[0] == seen[1] == seen[2] == seen[3]
    assert seen[0][0][-1][0] == "event: message_stop" and len(seen[0][0]) >= 15
