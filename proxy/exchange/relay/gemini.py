"""The Gemini dialect: translate the request, call generateContent / streamGenerateContent / countTokens, and
answer in Anthropic's format. Both answers go through the one state machine in `translate.stream`."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson
from aiohttp import ClientConnectionResetError, web

from proxy.errors import GatewayError, from_google
from proxy.exchange import upstream
from proxy.exchange.recorder import Call, Event, new_id
from proxy.exchange.relay import Leg, midstream_error
from proxy.providers import Provider
from proxy.translate import request as treq
from proxy.translate.moves import reset_signatures
from proxy.translate.notes import Note
from proxy.translate.response import IdSource, usage
from proxy.translate.stream import DELTA_PREFIX, StreamTranslator, join_frames

PING = ("ping", {"type": "ping"})
CHARS_PER_TOKEN = 4
"""a cut stream's output tokens, estimated from the characters Google sent before the cut"""


class EmptyAnswer(GatewayError):
    """Gemini answered with nothing the client can use (no content, or a malformed function call)."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(
            529,
            f"upstream target '{target}' gave an empty answer ({reason})",
            "overloaded_error",
            retryable=True,
        )
        self.reason = reason


TRIES_ON_EMPTY = 2
"""An empty answer is asked again once on the same target before it counts as the target's failure."""


async def relay(leg: Leg) -> web.StreamResponse:
    p = leg.provider
    translated = treq.translate(
        leg.inbound.body,
        treq.Target(p.model, p.target.max_tokens, p.target.schema_mode),
        leg.signatures,
        leg.texts.view(leg.session_key),
    )
    if leg.moved_from is not None:  # the session's signatures belong to the target it left
        reset = reset_signatures(translated.body, p.model, leg.moved_from, p.name)
        if reset:
            translated.notes = [n for n in translated.notes if n.kind != "signature-kept"] + reset
    leg.call.note(*translated.notes)
    leg.call.billing(translated.billing)
    if leg.inbound.count:
        return await count(leg, translated.body)
    leg.call.upstream_request(translated.body)
    leg.call.progress()
    for n in range(1, TRIES_ON_EMPTY + 1):
        st = StreamTranslator(
            leg.inbound.model,
            "msg_" + new_id(),
            IdSource(new_id),
            translated.thinking,
            names=translated.names,
            search=translated.search,
        )
        try:
            if leg.inbound.stream:
                return await stream(leg, translated.body, st)
            return await oneshot(leg, translated.body, st)
        except EmptyAnswer as empty:
            if n < TRIES_ON_EMPTY:
                leg.call.note(
                    Note(
                        "empty-retried",
                        f"empty answer from {p.name} ({empty.reason}): asked again",
                        {"target": p.name, "reason": empty.reason},
                    )
                )
                continue
            leg.call.note(
                Note(
                    "empty-failed",
                    f"empty answer from {p.name} again ({empty.reason}): failed as overloaded",
                    {"target": p.name, "reason": empty.reason},
                )
            )
            raise
        finally:
            leg.call.note(*st.notes())
            leg.signatures.remember(st.signatures_out)
            leg.texts.keep(leg.session_key, st.text_signatures_out)
            leg.call.gemini_usage(usage(st.usage_meta))
            meta = st.usage_meta or {}
            if st.generated_chars and not meta.get("candidatesTokenCount") and not st.finished:
                # cut before Google's last chunk said what it generated: Google bills it all the same
                leg.call.output_estimated(math.ceil(st.generated_chars / CHARS_PER_TOKEN))
    raise AssertionError("unreachable")


class _Refused(GatewayError):
    """The upstream answered 401 to a credential that may be renewed: renew it and ask once more."""

    def __init__(self, status: int) -> None:
        super().__init__(status, "credential refused", retryable=False)


async def _post(leg: Leg, action: str, payload: dict[str, Any]) -> Any:
    p = leg.provider
    data = orjson.dumps(payload)
    for last in (False, True):
        headers = {"content-type": "application/json", **await p.headers()}

        def on_error(status: int, body: bytes, h: Any, last: bool = last) -> GatewayError:
            if status == 401 and not last and p.renewable:
                return _Refused(status)
            err = from_google(status, body, p.credential, h, p.fix)
            leg.call.upstream_error(p.name, status, body, err)
            return err

        try:
            resp = await upstream.post(
                leg.session, p.name, p.url(action), data, headers, leg.timeouts, on_error
            )
        except _Refused:
            # a token the upstream forgot (revoked, its endpoint restarted) heals here, without a restart
            await p.renew(headers)
            leg.call.note(
                Note(
                    "credential-renewed",
                    f"{p.name} refused the gateway's token (401): a new one was minted and the call sent again",
                    {"target": p.name},
                )
            )
            continue
        leg.call.answered(resp.status)
        return resp
    raise AssertionError("unreachable")


def parse_chunk(data: bytes, provider: Provider) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise GatewayError(
            502,
            f"upstream target '{provider.name}' sent a stream chunk that is not JSON: {data[:120]!r}",
            "api_error",
        ) from None
    return check_chunk(chunk, data, provider)


def check_chunk(chunk: Any, data: bytes, provider: Provider) -> dict[str, Any]:
    """`chunk` (parsed from `data`) if it is a chunk; the upstream's error object raised as its error."""
    if not isinstance(chunk, dict):
        raise GatewayError(
            502, f"upstream target '{provider.name}' sent a stream chunk that is not an object", "api_error"
        )
    if isinstance(chunk.get("error"), dict):
        raise from_google(int(chunk["error"].get("code") or 500), data, provider.credential, fix=provider.fix)
    return chunk


async def oneshot(leg: Leg, payload: dict[str, Any], st: StreamTranslator) -> web.Response:
    call, p = leg.call, leg.provider
    with call.attempt(p, "generateContent"):
        resp = await _post(leg, "generateContent", payload)
        try:
            raw = await upstream.read_all(resp, p.name, leg.timeouts)
        finally:
            resp.release()
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (orjson.JSONDecodeError, ValueError):
            raise GatewayError(
                502,
                f"upstream target '{p.name}' answered 200 with a body that is not a Gemini response: {raw[:120]!r}",
                "api_error",
            ) from None
        call.answered_whole()
        call.upstream_response(data)
        st.feed(data)
        empty = st.empty()
        if empty:  # inside the attempt: its entry in tried_targets says so
            raise EmptyAnswer(p.name, empty)
    st.finish_events()
    msg = st.message()
    call.response_model(data.get("modelVersion") or p.model)
    call.message(msg)
    out = orjson.dumps(msg)
    call.responding()
    call.body_size(len(out))
    return web.Response(body=out, content_type="application/json", headers={"request-id": call.id})


class Sink:
    """The client's SSE response, opened by the first write: until then a failure can still fall back.

    Two writers share it (the relay, also when it takes a chunk as it arrives, and the pinger). A frame is one
    `write`, which aiohttp puts on the transport whole before it can yield, so frames never interleave; only
    opening needs coordination.
    """

    def __init__(self, request: web.Request, call: Call) -> None:
        self._request = request
        self._call = call
        self.out: web.StreamResponse | None = None
        self._opening: asyncio.Future[None] | None = None
        self.held: list[Event] = []
        """Events kept back until the answer shows content: until then an empty answer can be asked again."""
        self._loop = asyncio.get_running_loop()
        self.last_write = self._loop.time()
        """when the client last got a frame (at first: when the upstream answered): the pinger's clock"""
        self._chunks: Any = None
        """aiohttp's writer of this response, once its headers are out and it only frames chunks: the text
        deltas are put on its transport directly (`send_delta`)"""

    async def open(self) -> web.StreamResponse:
        if self._opening is not None:
            await self._opening
            assert self.out is not None
            return self.out
        self._opening = asyncio.get_running_loop().create_future()
        out = web.StreamResponse(
            status=200,
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "request-id": self._call.id,
                "x-accel-buffering": "no",
            },
        )
        out.enable_chunked_encoding()
        try:
            await out.prepare(self._request)
        except BaseException as exc:
            self._opening.set_exception(exc)
            self._opening.exception()  # retrieved: the other writer may never look
            raise
        self._call.responding()
        self.out = out
        self._opening.set_result(None)
        return out

    async def send(self, events: list[Event]) -> None:
        if self.held:
            events, self.held = self.held + events, []
        if self.out is None:
            await self.open()
        await self.send_json([name for name, _ in events], [orjson.dumps(d) for _, d in events])

    @property
    def direct(self) -> bool:
        """Text deltas are framed here and put on the transport (`put_delta`), not written through aiohttp."""
        return self._chunks is not None

    def ready(self) -> bool:
        """A text delta can go out now, without waiting (`put_delta`): the stream is open and frames plain
        chunks, its transport is open, and the client is not so far behind that aiohttp's writer would drain
        first (or the pinger already waits for it to catch up)."""
        w = self._chunks
        if w is None or self.held or w.buffer_size > _DRAIN_AT or w._protocol.writing_paused:
            return False
        transport = w._protocol.transport
        return transport is not None and not transport.is_closing()

    def put_delta(self, data: bytes) -> None:
        """`send_delta`'s frame put on the transport, once `ready`: as an HTTP chunk, as aiohttp's writer would
        frame it, without its two coroutines and checks per frame (a chunk's path is the stream's cost:
        bench/RESULTS.md)."""
        w = self._chunks
        size = len(data) + _DELTA_FRAMING
        self._call.sent_one("content_block_delta", data, size)
        self.last_write = self._loop.time()
        framed = b"%x\r\n%s%s\n\n\r\n" % (size, DELTA_PREFIX, data)
        w._protocol.transport.write(framed)
        w.output_size += len(framed)
        w.buffer_size += len(framed)

    async def send_delta(self, data: bytes) -> None:
        """`send_json` of one `content_block_delta` (`StreamTranslator.text_delta`'s): most of a long answer's
        frames."""
        assert self.out is not None and not self.held
        w = self._chunks
        if w is None:
            size = len(data) + _DELTA_FRAMING
            self._call.sent_one("content_block_delta", data, size)
            self.last_write = self._loop.time()  # before the write yields: the pinger sees it
            await self.out.write(b"".join((DELTA_PREFIX, data, b"\n\n")))
            return
        transport = w._protocol.transport
        if transport is None or transport.is_closing():
            raise ClientConnectionResetError("Cannot write to closing transport")  # as aiohttp's writer
        self.put_delta(data)
        if w.buffer_size > _DRAIN_AT:  # as aiohttp's: a slow reader holds the relay, not the gateway's memory
            w.buffer_size = 0
            await w.drain()

    async def send_json(self, names: list[str], data: list[bytes]) -> None:
        """`send` for events already in JSON (`names[i]`'s data is `data[i]`), once the stream is open. (Events
        the relay held while the pinger opened the stream go out with its next `send`.)"""
        assert self.out is not None
        frame = join_frames(names, data)
        self._call.sent_json(names, data, len(frame))
        self.last_write = self._loop.time()  # before the write yields: the pinger sees it
        await self.out.write(frame)
        if self._chunks is None:
            self._chunks = _plain_chunks(self.out)


_DELTA_FRAMING = len(DELTA_PREFIX) + 2
"""a delta's frame: its data between the event's prefix and the blank line"""
_DRAIN_AT = 0x10000
"""aiohttp's own: bytes written since the last drain past which a write waits for the client"""


def _plain_chunks(out: web.StreamResponse) -> Any:
    """`out`'s writer if writing a frame is only framing it as a chunk (headers sent, no compression, no
    length, nobody told of each write); else None, and frames go through aiohttp's `write`."""
    w = getattr(out, "_payload_writer", None)
    plain = (
        w is not None
        and getattr(w, "chunked", False) is True
        and getattr(w, "_headers_buf", b"") is None
        and getattr(w, "_compress", False) is None
        and getattr(w, "length", False) is None
        and getattr(w, "_on_chunk_sent", False) is None
        and getattr(w, "on_body_write", None) is None
        and hasattr(w, "_protocol")
        and hasattr(w, "drain")
    )
    return w if plain else None


async def stream(leg: Leg, payload: dict[str, Any], st: StreamTranslator) -> web.StreamResponse:
    call, p = leg.call, leg.provider
    sink = Sink(leg.inbound.request, call)
    interval = leg.settings.ping_interval
    with call.attempt(p, "streamGenerateContent"):
        resp = await _post(leg, "streamGenerateContent", payload)
        try:
            with upstream.Body(resp, p.name, leg.timeouts) as body:
                # a silent upstream still gets the client keep-alive pings; before the first chunk the
                # stream is opened so the client sees life. One timer per stream, not one per chunk.
                pinger = asyncio.create_task(_pinger(sink, st, interval))
                try:
                    # in a task of its own: each chunk wakes the pump's few frames, not the ten of
                    # aiohttp's handler, routing and relay above it (a cancel still reaches it, through
                    # the await)
                    await asyncio.get_running_loop().create_task(_pump(leg, body, sink, st))
                except (GatewayError, Exception, asyncio.CancelledError) as exc:
                    err = midstream_error(exc, sink.out is not None)
                    # already streaming: the status line is gone, so the error travels as an SSE event,
                    # after the open block is closed
                    call.failed_midstream(err)
                    await sink.send(st.abort() + [("error", {**err.body(), "request_id": call.id})])
                finally:
                    pinger.cancel()
        finally:
            resp.release()
            call.message(st.message())
    assert sink.out is not None
    # No write_eof here: aiohttp ends the body once the handler has returned, which is after the
    # record was handed to the store, so a client that saw the end of its response has a record.
    return sink.out


async def _pump(leg: Leg, body: upstream.Body, sink: Sink, st: StreamTranslator) -> None:
    call, p = leg.call, leg.provider
    first_token = False
    served: str | None = None
    offered = False

    def plain(raw: bytes) -> tuple[Any, bytes | None]:
        """`raw` parsed (None: not JSON), and its `content_block_delta`'s data when it is the usual chunk of a
        long answer: plain text for the open block (`StreamTranslator.text_delta`)."""
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, None
        return parsed, st.text_delta(parsed) if type(parsed) is dict else None

    def take(raw: bytes) -> bool:
        """`body.take`'s taker: the usual chunk sent on as the socket delivers it, when the client's stream can
        take it now (else the pump reads it as any other)."""
        if not sink.ready():
            return False
        parsed, delta = plain(raw)
        if delta is None:
            return False
        call.chunk(parsed, raw)
        sink.put_delta(delta)
        return True

    async for batch in body.batches():
        parsed: Any = None
        if first_token and served is not None and len(batch) == 1:
            # the usual read of a long answer: one frame, more text for the open block. Parsed and sent with
            # the fewest steps (each step a chunk takes costs several times its warm cost here: between two
            # chunks 10 ms apart the CPU's caches have moved on); anything else takes the path below, with
            # the frame as parsed here. Once one has gone this way, the next are taken as they arrive.
            raw = batch[0]
            parsed, delta = plain(raw)
            if delta is not None:
                call.chunk(parsed, raw)
                await sink.send_delta(delta)
                if not offered:  # once; only where the taker could write (aiohttp's writer frames plainly)
                    offered = True
                    if sink.direct:
                        body.take(take)
                continue
        # the answer to the frames of one read goes out in one write (after the write that opens the stream,
        # when one of them opens it): events' names and their data as JSON
        names: list[str] = []
        data: list[bytes] = []
        try:
            for raw in batch:
                tried = parsed is not None
                chunk = check_chunk(parsed, raw, p) if tried else parse_chunk(raw, p)
                call.chunk(chunk, raw)
                if served is None and isinstance(chunk.get("modelVersion"), str):
                    served = chunk["modelVersion"]  # what Google served (an alias resolved, a dated version)
                    call.response_model(served)
                if (
                    first_token and not tried
                ):  # the stream is open and its text flows: most chunks are more of it
                    delta = st.text_delta(chunk)
                    if delta is not None:
                        names.append("content_block_delta")
                        data.append(delta)
                        continue
                evs = st.feed(chunk)
                if evs and sink.out is None and st.index < 0:
                    sink.held += evs  # no content yet
                    continue
                if evs:
                    if not first_token and st.first_content:
                        first_token = True
                        call.first_token()
                    if sink.out is None or sink.held:  # opens the stream (with what was held) in order
                        await sink.send(evs)
                        continue
                    names += [name for name, _ in evs]
                    data += [orjson.dumps(d) for _, d in evs]
        except Exception:
            # a bad frame (or a bug) after good ones: what the good ones gave goes out first, as it would have
            # frame by frame (and the stream is open, so the error is an SSE event)
            if names:
                await sink.send_json(names, data)
            raise
        if names:
            await sink.send_json(names, data)
    if st.finish is None and not st.blocked:
        raise GatewayError(
            502, f"upstream target '{p.name}' ended the stream without a finish reason (cut off)", "api_error"
        )
    empty = st.empty()
    if empty:
        raise EmptyAnswer(p.name, empty)
    last = st.finish_events()
    if not first_token and st.first_content:  # an answer held back until the end (web search's sources)
        call.first_token()
    await sink.send(last)


PING_AHEAD = 0.8
"""a ping goes out once the client has had nothing for this share of `ping_interval`, so that with the loop's
delays the client never waits longer than the interval"""


async def _pinger(sink: Sink, st: StreamTranslator, interval: float) -> None:
    """Keep the client's stream alive while the upstream is silent (a model thinking at length): no gap
    between two frames the client gets reaches `interval`, from the first byte to the last. Claude Code ends
    a stream silent for 300 s; Gemini sends nothing while it thinks."""
    loop = asyncio.get_running_loop()
    quiet = interval * PING_AHEAD
    while True:
        due = sink.last_write + quiet
        now = loop.time()
        if now < due:
            await asyncio.sleep(due - now)
            continue
        if sink.out is None:  # nothing sent yet: the stream opens with message_start, then the ping
            opening = st.open()
            if opening:
                await sink.send(opening + [PING])
                continue
        await sink.send([PING])


async def count(leg: Leg, translated: dict[str, Any]) -> web.Response:
    call, p = leg.call, leg.provider
    payload = p.count_body(translated)
    call.upstream_request(payload)
    estimated = False
    with call.attempt(p, "countTokens"):
        try:
            resp = await _post(leg, "countTokens", payload)
            try:
                data = orjson.loads(await upstream.read_all(resp, p.name, leg.timeouts))
            finally:
                resp.release()
            n = int(data.get("totalTokens", 0))
            call.upstream_response(data)
        except (GatewayError, orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
            # /context fires ~25 counts at once; an estimate beats an error the user can't act on.
            if isinstance(exc, GatewayError):
                call.attempt_failed(exc.message, exc.upstream_status)
            else:
                call.attempt_failed(f"unreadable countTokens answer: {exc}")
            n = max(1, len(orjson.dumps(payload)) // 4)
            estimated = True
    out = {"input_tokens": n}
    call.counted(n, estimated, out)
    body = orjson.dumps(out)
    call.body_size(len(body))
    return web.Response(body=body, content_type="application/json", headers={"request-id": call.id})
