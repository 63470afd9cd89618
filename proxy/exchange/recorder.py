"""The per-call recorder: a `Call` is the only writer of its `Record` (attempts, clocks, usage, payloads).

Payloads are kept only under `gateway.log_payloads`; that choice is made here and nowhere else. Hot-path
counters (stream chunks) live on the `Call` and reach the record when progress is reported and at the end, so
a stream chunk costs no pydantic attribute write.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from random import getrandbits
from typing import Any

import orjson
from aiohttp import web

from proxy.config import TargetConfig
from proxy.errors import GatewayError
from proxy.providers import Provider
from proxy.record import (
    HEADER_CHARS,
    Attempt,
    Record,
    cut_headers,
    pricing,
    redact_headers,
    redact_query,
    safe_text,
)
from proxy.record.events import Bus, CallProgressed
from proxy.translate.notes import Note

Event = tuple[str, dict[str, Any]]
RESPONSE_TEXT_CHARS = 4000
SPAWNING_TOOLS = frozenset({"Agent", "Task"})
"""Claude Code's tool that starts a sub-agent (`Task` before 2.1)"""
SPAWN_PROMPT_CHARS = 200
"""as much of a spawn's prompt as the sub-agent's preview keeps (`messages.PREVIEW_CHARS`): they are matched"""


def new_id() -> str:
    """24 random hex digits. Ids name calls, messages and tool uses, they guard nothing: the process's
    random generator (seeded from the OS, reseeded in a forked child) serves, not `os.urandom`, whose system
    call lets go of the GIL on every call and so handed the loop's thread to the store's writer mid-call."""
    return "%024x" % getrandbits(96)


_NAMES: dict[str, bytes] = {}


def _name_json(name: str) -> bytes:
    """An event's name as JSON (a handful of names: each written once)"""
    got = _NAMES.get(name)
    if got is None:
        got = orjson.dumps(name)
        if len(_NAMES) < 256:
            _NAMES[name] = got
    return got


class Call:
    """One call in flight. `t0` is its arrival (perf_counter); every clock in the record is ms from there."""

    def __init__(self, request: web.Request, count: bool, keep_payloads: bool, bus: Bus) -> None:
        self.t0 = time.perf_counter()
        self.keep = keep_payloads
        self.bus = bus
        self.record = Record.live(
            id="req_" + new_id(),
            kind="count_tokens" if count else "messages",
            started_at=time.time(),
            client_ip=request.remote or "",
            user_agent=safe_text(request.headers.get("user-agent", ""))[: HEADER_CHARS * 4],
            method=request.method,
            path=safe_text(request.path),
            query=redact_query(request.query_string),
            request_headers=redact_headers(request.headers),
        )
        self.chunks = 0
        self._progressed = float("-inf")
        self._attempt: Attempt | None = None
        self._upstream_id = False
        """the current attempt's upstream answer id was looked for"""
        # A stream's payloads are kept as the JSON text that crossed the wire: kept as parsed objects, every
        # chunk's dozen containers stayed alive for the whole stream, the collector scanned them again and
        # again, and the store serialised them back at the end.
        self._events: list[bytes] | None = [] if keep_payloads else None
        """each sent event's data as JSON"""
        self._event_names: list[str] = []
        """each sent event's name (kept beside `_events`)"""
        self._upstream_chunks: list[bytes] | None = [] if keep_payloads else None
        """each upstream chunk's JSON, as received"""

    @property
    def id(self) -> str:
        return self.record.id

    def ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000

    # -- the inbound request -----------------------------------------------------------------------------------
    def request_read(self, raw: bytes, body: dict[str, Any]) -> None:
        self.record.request_size = len(raw)
        self.record.bodies.client = body
        if self.keep:
            self.record.client_request = body

    def accepted(
        self,
        model: str,
        stream: bool,
        metadata: dict[str, Any] | None,
        session_id: str | None,
        preview: str,
        tools_offered: int,
    ) -> None:
        r = self.record
        r.request_model = model
        r.request_mode = "stream" if stream else "oneshot"
        r.metadata = metadata
        # A replay keeps its original's session (from the body it sends again): it spends the session's money,
        # so its session budget and roll-up count it; `replay_of` tells it from the session's own turns.
        r.session_id = session_id
        r.preview = preview
        r.tools_offered = tools_offered

    def replaying(self, original: str) -> None:
        """This call sends a stored one again (`gatewatch replay`): linked to it."""
        self.record.replay_of = original

    # -- routing and attempts ----------------------------------------------------------------------------------
    def routed(self, provider: Provider) -> None:
        r = self.record
        r.target, r.provider, r.response_model = provider.name, provider.kind, provider.model
        r.error_type = r.error_message = None
        self.progress()

    @contextmanager
    def attempt(self, provider: Provider, action: str) -> Iterator[Attempt]:
        """Bracket one try of one target: its entry in tried_targets, its status, error and latency."""
        scheme, port, host, _ = provider.where()
        a = Attempt.live(
            target=provider.name,
            provider=provider.kind,
            model=provider.model,
            host=host,
            port=port,
            upstream_scheme=scheme,
            upstream_uri=provider.path(action),
        )
        self.record.tried_targets.append(a)
        self._attempt = a
        self._upstream_id = False
        a0 = time.perf_counter()
        a.started_ms = (a0 - self.t0) * 1000
        try:
            yield a
        except GatewayError as err:
            a.error = err.message
            a.status = err.upstream_status or a.status
            raise
        finally:
            a.latency_ms = self.record.llm_latency_ms = (time.perf_counter() - a0) * 1000

    def answered(self, status: int) -> None:
        """The upstream's response headers arrived."""
        assert self._attempt is not None
        self._attempt.status = status
        self.record.usage.time_to_first_byte = self.ms()

    def attempt_failed(self, message: str, status: int | None = None) -> None:
        """The current attempt failed without raising (a count answered by an estimate)."""
        assert self._attempt is not None
        self._attempt.error = message
        self._attempt.status = status or self._attempt.status

    def note(self, *notes: Note) -> None:
        """What translation or the relay decided that the client can't see (`translate.notes`)."""
        self.record.notes.extend(n for n in notes if n not in self.record.notes)  # once, even after fallback

    def claude_code(
        self, agent_id: str | None, fields: Mapping[str, str], parent_agent_id: str | None = None
    ) -> None:
        """Who in a Claude Code session sent this: its sub-agent id and the sub-agent that spawned it
        (headers), and billing-header fields."""
        self.record.agent_id = agent_id or None
        self.record.parent_agent_id = (parent_agent_id or None) if agent_id else None
        self.billing(fields)

    def billing(self, fields: Mapping[str, str]) -> None:
        """Claude Code's billing-header fields, kept on the record though not sent upstream."""
        if fields:
            self.record.cc_version = fields.get("cc_version")
            self.record.cc_is_subagent = fields.get("cc_is_subagent", "false").lower() == "true"

    def upstream_request(self, payload: Any) -> None:
        self.record.bodies.upstream = payload
        if self.keep:
            self.record.upstream_request = payload

    def upstream_error(self, target: str, status: int, body: bytes, err: GatewayError) -> None:
        """A target answered with an error: its own body is kept (beside what the client is told) and noted."""
        try:
            payload: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = {"raw": safe_text(body[:4000].decode("utf-8", "replace"))}
        google = payload.get("error") if isinstance(payload, dict) else None
        said = ""
        if isinstance(google, dict):
            said = f" {google.get('status') or ''}: {safe_text(str(google.get('message') or ''))[:200]}"
        self.note(
            Note(
                "upstream-error",
                f"{target} answered {status}{said} (read as {err.status} {err.type})",
                {
                    "target": target,
                    "status": status,
                    "google_status": google.get("status") if isinstance(google, dict) else None,
                    "answered": err.status,
                    "type": err.type,
                },
            )
        )
        self.upstream_response(payload)

    def upstream_response(self, payload: Any) -> None:
        if isinstance(payload, dict) and not self._upstream_id:
            self._answer_id(payload)
        if self.keep:
            self.record.upstream_response = payload

    def _answer_id(self, answer: Mapping[str, Any]) -> None:
        """The upstream's id of its answer, from its first chunk (or its one response)."""
        self._upstream_id = True
        rid = answer.get("responseId") or answer.get("id")
        if self._attempt is not None and isinstance(rid, str):
            self._attempt.response_id = rid

    # -- answering ---------------------------------------------------------------------------------------------
    def responding(self) -> None:
        """The client's 200 status line is out: from here a failure travels inside the body."""
        self.record.status = 200

    def answered_whole(self) -> None:
        """A non-streamed answer: its first token came with the rest, when the attempt ended."""
        self.record.usage.time_to_first_token = self.record.llm_latency_ms

    def first_token(self) -> None:
        if self.record.usage.time_to_first_token is None:
            self.record.usage.time_to_first_token = self.ms()

    def chunk(self, chunk: dict[str, Any] | None = None, raw: bytes | None = None) -> None:
        """An upstream stream chunk arrived: `chunk` parsed, `raw` its JSON text (kept with the payloads)."""
        self.chunks += 1
        if chunk is not None and not self._upstream_id:
            self._answer_id(chunk)
        if raw is not None and self._upstream_chunks is not None:
            self._upstream_chunks.append(raw)
        if self.bus.wants(CallProgressed):
            self.progress()

    def sent(self, events: list[Event], size: int, data: list[bytes] | None = None) -> None:
        """Events went to the client (kept with the payloads); `data`: each event's data as JSON, when the
        caller has it already."""
        if data is None and self._events is not None:
            data = [orjson.dumps(d) for _, d in events]
        self.sent_json([name for name, _ in events], data or [], size)

    def sent_one(self, name: str, data: bytes, size: int) -> None:
        """`sent_json` of one event."""
        self.record.response_size += size
        kept = self._events
        if kept is not None:
            kept.append(data)
            self._event_names.append(name)

    def sent_json(self, names: list[str], data: list[bytes], size: int) -> None:
        """Events already in JSON went to the client: `names[i]`'s data is `data[i]` (kept with the payloads)."""
        self.record.response_size += size
        kept = self._events
        if kept is not None:
            kept += data
            self._event_names += names

    def progress(self) -> None:
        """Tell subscribers, at most every `Bus.PROGRESS_EVERY_S` per call, and only when someone listens."""
        if not self.bus.wants(CallProgressed):
            return
        now = time.monotonic()
        if now - self._progressed < Bus.PROGRESS_EVERY_S:
            return
        self._progressed = now
        self.record.stream_chunks = self.chunks
        self.bus.emit(CallProgressed(self.record))

    def gemini_usage(self, u: Mapping[str, int]) -> None:
        """Usage from `translate.response.usage` (already in Anthropic's terms)."""
        us = self.record.usage
        us.input_tokens = u["input_tokens"]
        us.output_tokens = u["output_tokens"]
        us.cache_read_tokens = u["cache_read_input_tokens"]
        us.thinking_tokens = u["thinking_tokens"]

    def output_estimated(self, tokens: int) -> None:
        """A stream cut before Google reported its output: priced at an estimate, marked `estimated`."""
        us = self.record.usage
        if tokens > us.output_tokens:
            us.output_tokens = tokens
            us.estimated = True
            self.note(
                Note(
                    "usage-mapped",
                    f"the stream was cut before Google reported its output: ~{tokens} output tokens "
                    "estimated from the text received (Google bills what it generated)",
                    {"output_tokens": tokens},
                )
            )

    def anthropic_usage(self, u: Mapping[str, Any]) -> None:
        """Usage as an Anthropic upstream reports it; absent fields keep what an earlier event said."""
        us = self.record.usage
        for ours, theirs in (
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("cache_read_tokens", "cache_read_input_tokens"),
            ("cache_creation_tokens", "cache_creation_input_tokens"),
        ):
            if u.get(theirs) is not None:
                setattr(us, ours, int(u[theirs]))

    def counted(self, tokens: int, estimated: bool, answer: dict[str, Any]) -> None:
        self.record.usage.input_tokens = tokens
        self.record.usage.estimated = estimated
        self.record.status = 200
        if self.keep:
            self.record.response = answer

    def response_model(self, model: str | None) -> None:
        if model:
            self.record.response_model = model

    def message(self, msg: Mapping[str, Any]) -> None:
        """The Anthropic message the client received (assembled from the stream, or the one answer)."""
        r = self.record
        content = msg.get("content") or []
        r.stop_reason = msg.get("stop_reason")
        r.response_id = msg.get("id") or r.response_id
        r.tools_used = [b["name"] for b in content if b.get("type") == "tool_use"]
        r.spawned = [
            str((b.get("input") or {}).get("prompt") or "")[:SPAWN_PROMPT_CHARS]
            for b in content
            if b.get("type") == "tool_use" and b.get("name") in SPAWNING_TOOLS
        ]
        r.response_text = "".join(b.get("text", "") for b in content if b.get("type") == "text")[
            :RESPONSE_TEXT_CHARS
        ]
        r.bodies.answer = msg
        if self.keep:
            r.response = msg

    def body_size(self, size: int) -> None:
        self.record.response_size = size

    def failed_midstream(self, err: GatewayError) -> None:
        """A failure after the stream began: no fallback, the error is the last SSE event."""
        if self._attempt is not None:
            self._attempt.error = err.message
        self.failed_upstream(err.type, err.message)

    def failed_upstream(self, type_: str | None, message: str | None) -> None:
        """The upstream's own error event inside a stream that was passed through."""
        self.record.error_type, self.record.error_message = type_, message

    # -- the end -----------------------------------------------------------------------------------------------
    def failed(self, err: GatewayError, answer: web.Response) -> None:
        """The call is answered with an error (status line and all)."""
        r = self.record
        r.status, r.error_type, r.error_message = err.status, err.type, err.message
        r.response = err.body() if self.keep else None
        r.response_size = len(answer.body) if isinstance(answer.body, bytes) else 0

    def refused(self, err: GatewayError, answer: web.Response) -> None:
        """Refused at the door (401, 403, 415): the record keeps only the first headers, cut short, so
        unauthenticated traffic can't fill the disk."""
        self.failed(err, answer)
        r = self.record
        r.request_headers = cut_headers(r.request_headers)
        r.user_agent = r.user_agent[:HEADER_CHARS]
        r.path = r.path[:HEADER_CHARS]
        r.query = r.query[:HEADER_CHARS]

    def refused_body(self, size: int, reason: str) -> None:
        """A body read but not kept (nested too deep to store)."""
        self.record.request_size = size
        self.note(Note("body-not-kept", reason))

    def cancelled(self) -> None:
        """The client went away: the upstream call was cancelled with us. Keep what we know."""
        r = self.record
        r.cancelled = True
        r.error_type = r.error_type or "cancelled"
        r.error_message = r.error_message or "client disconnected before the answer was complete"

    def close(self, response: web.StreamResponse | None, target: TargetConfig | None) -> Record:
        """Stop the clocks, price the call; the record is complete."""
        r = self.record
        r.latency_ms = self.ms()
        r.ended_at = time.time()
        r.stream_chunks = self.chunks
        if response is not None:
            r.response_headers = redact_headers(response.headers)
        # JSON as it crossed the wire, written into the store as is: never rebuilt as objects on the loop
        # (the store's copy reads back as lists; `proxy.record.payload` reads either)
        if self._events:
            r.events = orjson.Fragment(
                b"[%s]"
                % b",".join(
                    [
                        b'{"event":%s,"data":%s}' % (_name_json(n), d)
                        for n, d in zip(self._event_names, self._events, strict=True)
                    ]
                )
            )
        if self._upstream_chunks:
            r.upstream_response = orjson.Fragment(b"[%s]" % b",".join(self._upstream_chunks))
        u = r.usage
        if r.llm_latency_ms and u.output_tokens:  # Kong's definition: generation latency / output tokens
            u.time_per_token = r.llm_latency_ms / u.output_tokens
        u.total_tokens = u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_creation_tokens
        u.cost = pricing.price(r, target)
        return r
