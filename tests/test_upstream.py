"""Upstream I/O: SSE read by whole frames under one deadline per stream, large chunks, stalls, timeouts."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from proxy.config import GatewaySettings, TargetConfig
from proxy.errors import GatewayError
from proxy.exchange import upstream
from proxy.simulator import Reply
from tests.conftest import run_gateway, target_for

FAST = upstream.Timeouts(connect=5, first_byte=0.4, idle=0.3)


@asynccontextmanager
async def serve(writes: list[bytes | float]) -> AsyncIterator[str]:
    """A server that writes the given pieces (a float is a pause in seconds)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for w in writes:
            if isinstance(w, float):
                await asyncio.sleep(w)
            else:
                await resp.write(w)
        return resp

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"
    finally:
        await runner.cleanup()


async def events_of(writes: list[bytes | float], timeouts: upstream.Timeouts = FAST) -> list[bytes]:
    async with serve(writes) as url, aiohttp.ClientSession() as http:
        resp = await upstream.post(http, "t", url, b"{}", {}, timeouts, lambda s, b, h: GatewayError(s, "x"))
        try:
            with upstream.Body(resp, "t", timeouts) as body:
                return [e async for e in body.events()]
        finally:
            resp.release()


async def test_frames_split_across_reads_and_crlf_framing_come_out_whole():
    out = await events_of([b'data: {"a":', 0.02, b" 1}\r", 0.02, b"\n\r\ndata: 2\n\n", b"data: 3\n\ndata: 4"])
    assert out == [b'{"a": 1}', b"2", b"3", b"4"]


async def test_frames_that_arrive_together_come_out_together():
    """The relay answers the frames of one read with one write: `batches` groups them by read."""
    async with serve([b"data: 1\n\ndata: 2\n\ndata: 3\n\n", 0.05, b"data: 4\n\n"]) as url:
        async with aiohttp.ClientSession() as http:
            resp = await upstream.post(http, "t", url, b"{}", {}, FAST, lambda s, b, h: GatewayError(s, "x"))
            try:
                with upstream.Body(resp, "t", FAST) as body:
                    batches = [b async for b in body.batches()]
            finally:
                resp.release()
    assert batches == [[b"1", b"2", b"3"], [b"4"]]


async def test_an_event_of_several_data_lines_is_joined_and_other_fields_are_ignored():
    out = await events_of([b"event: x\nid: 7\ndata: [1,\ndata: 2]\n\n: a comment\n\n"])
    assert out == [b"[1,2]"]


async def test_a_frame_over_a_megabyte_is_one_event():
    big = b'data: {"text": "' + b"x" * 1_500_000 + b'"}\n\n'
    out = await events_of([big[:70_000], big[70_000:], b"data: 2\n\n"])
    assert len(out) == 2 and len(json.loads(out[0])["text"]) == 1_500_000


async def test_no_first_frame_in_time_is_a_first_byte_stall():
    with pytest.raises(GatewayError) as e:
        await events_of([b": still thinking\n", 2.0])
    assert e.value.status == 504 and "no first chunk within 0.4s (first_byte_timeout)" in e.value.message


async def test_silence_after_a_frame_is_an_idle_stall():
    with pytest.raises(GatewayError) as e:
        await events_of([b"data: 1\n\n", 2.0])
    assert e.value.status == 504 and "no next chunk within 0.3s (idle_timeout)" in e.value.message


async def test_frames_that_keep_coming_never_stall_however_long_the_stream():
    out = await events_of([x for i in range(8) for x in (f"data: {i}\n\n".encode(), 0.1)])
    assert out == [str(i).encode() for i in range(8)]  # 0.8 s in all, more than either timeout


async def taken_and_read(
    writes: list[bytes | float], takes=lambda data: True, timeouts: upstream.Timeouts = FAST
) -> list[tuple[str, object]]:
    """What a taker (installed once the first frame is read) took and what `batches` read, in one list in the
    order they came: ("take", data) or ("read", batch)."""
    seen: list[tuple[str, object]] = []

    def taker(data: bytes) -> bool:
        if not takes(data):
            return False
        seen.append(("take", data))
        return True

    async with serve(writes) as url, aiohttp.ClientSession() as http:
        resp = await upstream.post(http, "t", url, b"{}", {}, timeouts, lambda s, b, h: GatewayError(s, "x"))
        try:
            with upstream.Body(resp, "t", timeouts) as body:
                try:
                    async for batch in body.batches():
                        seen.append(("read", batch))
                        if len(seen) == 1:
                            assert body.take(taker)
                finally:
                    reader = resp.content
                    assert reader in upstream._TAKERS
            # done with: aiohttp's own reader again, and no taker kept
            assert type(reader) is aiohttp.StreamReader and reader not in upstream._TAKERS
        finally:
            resp.release()
    return seen


async def test_a_frame_that_arrives_whole_while_the_reader_waits_is_taken_and_the_rest_read_in_order():
    """Only a read that is exactly one single-line frame, with no partial frame held, is offered; one the taker
    declines is read as any other."""
    seen = await taken_and_read(
        [b"data: 0\n\n", 0.03, b"data: 1\n\n", 0.03, b'data: {"a":', 0.03, b" 2}\n\n", 0.03]
        + [b"data: 3\n\ndata: 4\n\n", 0.03, b"data: 5\n\n", 0.03, b"data: no\n\n", 0.03, b"data: 7\r\n\r\n"]
        + [0.03, b"event: x\ndata: 8\n\n", 0.03, b"data: [1,\n", 0.03, b"data: 2]\n\n", 0.03, b"data: 9\n\n"],
        takes=lambda data: data != b"no",
    )
    assert seen == [
        ("read", [b"0"]),
        ("take", b"1"),
        ("read", [b'{"a": 2}']),  # its first piece was no whole frame: read, and the second then held
        ("read", [b"3", b"4"]),  # two frames in one read
        ("take", b"5"),
        ("read", [b"no"]),  # declined
        ("take", b"7"),
        ("read", [b"8"]),  # not one data line
        ("read", [b"[1,2]"]),  # its second line came as a whole frame would, but a partial one was held
        ("take", b"9"),
    ]


async def test_taken_frames_keep_the_stream_alive_and_silence_after_them_is_an_idle_stall():
    # 0.8 s of frames 0.1 s apart, against an idle timeout of 0.3 s: each taken frame moves the deadline
    seen = await taken_and_read([x for i in range(8) for x in (f"data: {i}\n\n".encode(), 0.1)])
    assert seen == [("read", [b"0"])] + [("take", str(i).encode()) for i in range(1, 8)]
    with pytest.raises(GatewayError) as e:
        await taken_and_read([b"data: 0\n\n", 0.05, b"data: 1\n\n", 0.05, b"data: 2\n\n", 2.0])
    assert e.value.status == 504 and "no next chunk within 0.3s (idle_timeout)" in e.value.message


async def test_what_a_taker_raises_is_raised_by_the_waiting_read():
    def takes(data: bytes) -> bool:
        if data == b"2":
            raise ValueError("the taker failed on 2")
        return True

    with pytest.raises(ValueError, match="the taker failed on 2"):
        await taken_and_read(
            [b"data: 0\n\n", 0.03, b"data: 1\n\n", 0.03, b"data: 2\n\n", 0.03, b"data: 3\n\n"], takes
        )


async def test_a_frame_is_not_offered_while_the_read_is_being_cancelled():
    """The reading task cancelled while it waits: its future is done but it has not run yet. A frame arriving
    then is queued, not taken (nobody will read what follows it)."""

    class Protocol:
        _reading_paused = False

        def pause_reading(self) -> None:
            self._reading_paused = True

    reader = aiohttp.StreamReader(Protocol(), 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    taken: list[bytes] = []
    reader.__class__ = upstream._Offering
    upstream._TAKERS[reader] = lambda data: taken.append(data) is None
    try:
        reader._waiter = asyncio.get_running_loop().create_future()
        reader.feed_data(b"data: 1\n\n")
        assert taken == [b"data: 1\n\n"] and not reader._buffer  # waiting: offered, and taken
        reader._waiter = asyncio.get_running_loop().create_future()
        reader._waiter.cancel()
        reader.feed_data(b"data: 2\n\n")
        assert len(taken) == 1 and list(reader._buffer) == [b"data: 2\n\n"]  # being cancelled: queued
    finally:
        upstream._TAKERS.pop(reader)


def test_a_target_s_timeouts_override_the_gateway_s():
    t = TargetConfig(name="t", provider="gemini", model="m", api_key="k", idle_timeout=5)
    g = GatewaySettings(connect_timeout=1, first_byte_timeout=2, idle_timeout=3)
    assert upstream.Timeouts.of(g, t) == upstream.Timeouts(connect=1, first_byte=2, idle=5)


# -- through the gateway -------------------------------------------------------------------------------------
async def test_a_function_call_of_several_megabytes_streams_through_intact(fake, sa_json):
    content = "".join(f"line {i}: " + "y" * 60 + "\n" for i in range(25_000))  # ~1.7 MB: Claude Code's Write
    raw = {"targets": [target_for("gemini", fake, sa_json)]}
    async for gw in run_gateway(raw, fake):
        fake.script(Reply.call("Write", {"file_path": "/tmp/big.txt", "content": content}))
        async with gw.client.messages.stream(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "write it"}]
        ) as s:
            final = await s.get_final_message()
        block = next(b for b in final.content if b.type == "tool_use")
        assert block.input == {"file_path": "/tmp/big.txt", "content": content}
        assert final.stop_reason == "tool_use" and gw.records[-1].status == 200


async def test_a_text_chunk_of_over_a_megabyte_streams_through_intact(fake, sa_json):
    text = "z" * 1_200_000
    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake):
        fake.script(Reply.text(text, chunks=1))
        async with gw.client.messages.stream(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "say it"}]
        ) as s:
            final = await s.get_final_message()
        assert final.content[0].text == text


async def test_a_target_nothing_listens_on_is_said_in_words_not_as_a_python_tuple(fake, sa_json):
    """asyncio words a refused connect `Connect call failed ('127.0.0.1', 9)`; the client's 502, the record
    (what `gatewatch show` prints) and the credential check at start (serve's line) say the errno's words."""
    from proxy.exchange.credentials import check_all
    from proxy.providers import make
    from tests.serving import free_port

    port = free_port()  # bound and let go: nothing listens there now
    t = target_for("gemini", fake, sa_json, name="dead", api_endpoint=f"http://127.0.0.1:{port}")
    async for gw in run_gateway({"targets": [t]}, fake):
        async with aiohttp.ClientSession() as s:
            body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
            async with s.post(gw.url + "/v1/messages", json=body) as r:
                status, answer = r.status, await r.json()
        said = f"cannot connect to upstream target 'dead' at 127.0.0.1:{port}: connection refused"
        assert status == 502 and answer["type"] == "error" and answer["error"]["type"] == "api_error"
        assert said in answer["error"]["message"], answer
        assert gw.records[-1].tried_targets[0].error == said
        assert "Connect call failed" not in (gw.records[-1].error_message or "")
        (check,) = await check_all([make(p.target) for p in gw.gateway.providers], timeout=5)
    assert check.state == "unchecked"
    assert check.detail == f"http://127.0.0.1:{port} could not be reached: connection refused", check.detail
