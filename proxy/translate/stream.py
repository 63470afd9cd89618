"""Gemini → Anthropic: one state machine for both answers. A stream feeds it chunk by chunk and sends the
events; a whole generateContent answer is the same machine fed one chunk (`whole`)."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.translate import marks
from proxy.translate.names import ToolNames
from proxy.translate.notes import Note, Notes
from proxy.translate.response import REFUSAL, IdSource, anthropic_usage, finish_note, stop_reason, usage
from proxy.translate.signatures import TextParts

Event = tuple[str, dict[str, Any]]


_PREFIX: dict[str, bytes] = {}


def _prefix(event: str) -> bytes:
    """`event: NAME` and the `data: ` that follows (a handful of event names: each built once)"""
    prefix = _PREFIX.get(event)
    if prefix is None:
        prefix = _PREFIX[event] = b"event: " + event.encode() + b"\ndata: "
    return prefix


DELTA_PREFIX = b"event: content_block_delta\ndata: "
"""what precedes a `content_block_delta` event's data in its SSE frame"""


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One SSE frame, as the Messages API frames it."""
    return b"".join((_prefix(event), orjson.dumps(data), b"\n\n"))


def _append(block: dict[str, Any], key: str, text: str) -> None:
    """`block[key] += text` in linear time: a string the dict still holds is copied whole by `+=` (every
    chunk of a long answer copied all the text before it: quadratic); taken out first, it is the only
    reference and CPython extends it in place."""
    whole = block[key]
    block[key] = ""
    whole += text
    block[key] = whole


def join_frames(names: list[str], data: list[bytes]) -> bytes:
    """The SSE frames of events already in JSON (`data`, named `names`), as one write."""
    if len(names) == 1:  # the usual write: one chunk's one delta
        return b"".join((_prefix(names[0]), data[0], b"\n\n"))
    parts: list[bytes] = []
    for event, d in zip(names, data, strict=True):
        parts += (_prefix(event), d, b"\n\n")
    return b"".join(parts)


_PLAIN_CHUNK = frozenset(("candidates", "modelVersion", "responseId", "usageMetadata", "createTime"))
"""the keys of a chunk that can carry nothing but text (no feedback, no block reason, no error); Vertex adds
`createTime` to each"""
_PLAIN_CANDIDATE = frozenset(("content", "index"))
"""a candidate with no finish reason, no grounding, no safety ratings"""
_PLAIN_CONTENT = frozenset(("role", "parts"))


class StreamTranslator:
    """Feed Gemini chunks with `feed`, close with `finish`; each returns the Anthropic events to send.

    Also assembles the final message (`message`) so the record holds what the client saw.
    """

    def __init__(
        self,
        model: str,
        msg_id: str,
        ids: IdSource,
        thinking: bool,
        signatures_out: dict[str, str] | None = None,
        names: ToolNames | None = None,
        search: bool = False,
    ):
        self.model = model
        self.msg_id = msg_id
        self.ids = ids
        self.thinking = thinking
        self.signatures_out = signatures_out if signatures_out is not None else {}
        self.names = names if names is not None else ToolNames()
        self.started = False
        self.finished = False
        self.generated_chars = 0
        """text, thoughts and call arguments received: a cut stream's output estimate when no usage says"""
        self.index = -1
        self.open_kind: str | None = None  # "text" | "thinking" | None
        self.open_sig: str | None = None
        self.segments: dict[int, list[dict[str, str]]] = {}
        """Per text block: the Gemini text parts it was made of, their signatures on them (kept by the
        gateway, never shown: Claude's content has no place for them)"""
        self.after_call: dict[int, list[dict[str, str]]] = {}
        """Per tool_use block: signed empty parts Gemini sent after the call"""
        self.text_signatures_out: dict[str, TextParts] = {}
        """What the gateway keeps for the next request (`TextSignatures`), set by `finish_events`"""
        self.signatures_lost = 0
        self.search = search
        """the client declared web_search (sent as Google Search grounding): the answer's parts are held
        until Gemini says what it searched, so the search blocks come before the text, as Claude's do"""
        self.deferred: list[dict[str, Any]] = []
        self.grounding: dict[str, Any] | None = None
        self.searches = 0
        self.sources = 0
        """signed empty parts with no block to belong to (before any content)"""
        self.has_call = False
        self.finish: str | None = None
        self.finish_message: str | None = None
        self.blocked = False
        self.usage_meta: dict[str, Any] | None = None
        self.content: list[dict[str, Any]] = []
        self.first_content = False  # set once a real content token was emitted (time to first token)
        self.stop_reason: str | None = None
        self.thoughts_dropped = 0
        """thought parts Gemini sent that the client did not ask for"""
        self._delta_head: bytes | None = None
        self._delta_index = -1
        """`text_delta`'s JSON up to the text, for the block at `_delta_index`"""

    # -- helpers -------------------------------------------------------------------------------------------
    def _start(self, first: dict[str, Any]) -> list[Event]:
        self.started = True
        u = usage(first.get("usageMetadata"))
        msg: dict[str, Any] = {
            "id": self.msg_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": u["input_tokens"],
                "output_tokens": 1,
                "cache_read_input_tokens": u["cache_read_input_tokens"],
                "cache_creation_input_tokens": 0,
            },
        }
        return [("message_start", {"type": "message_start", "message": msg})]

    def _close(self) -> list[Event]:
        if self.open_kind is None:
            return []
        out: list[Event] = []
        if self.open_kind == "thinking":
            sig = self.open_sig or marks.SYNTHETIC
            self.content[-1]["signature"] = sig
            out.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.index,
                        "delta": {"type": "signature_delta", "signature": sig},
                    },
                )
            )
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self.index}))
        self.open_kind, self.open_sig = None, None
        return out

    def _open(self, kind: str, block: dict[str, Any]) -> list[Event]:
        out = self._close()
        self.index += 1
        self.open_kind = kind
        self.content.append(dict(block))
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
        )
        return out

    # -- the machine ---------------------------------------------------------------------------------------
    def text_delta(self, chunk: dict[str, Any]) -> bytes | None:
        """The most common chunk of a long answer, one plain text part that continues the open text block: its
        `content_block_delta` event's data as JSON, the bytes `orjson.dumps` makes of the event `feed` would
        return, with the same state change. None (and nothing changed) for any other chunk: `feed` it.

        A 1,000-word answer is ~200 of these; building each event's dicts and walking the general machine
        cost more than the rest of the chunk's path through the gateway."""
        if self.open_kind != "text" or self.search or not chunk.keys() <= _PLAIN_CHUNK:
            return None
        try:  # a shape other than one candidate with one part falls out here
            (cand,) = chunk["candidates"]
            content = cand["content"]
            (part,) = content["parts"]
            text = part["text"]
        except (KeyError, TypeError, ValueError):
            return None
        if (
            type(text) is not str
            or not text
            or len(part) != 1
            or not cand.keys() <= _PLAIN_CANDIDATE
            or not content.keys() <= _PLAIN_CONTENT
        ):
            return None
        usage_meta = chunk.get("usageMetadata")
        if usage_meta:
            self.usage_meta = usage_meta
        self.generated_chars += len(text)
        segs = self.segments[self.index]
        seg = segs[-1] if segs else None
        if seg is not None and "thoughtSignature" not in seg:
            whole = seg["text"]  # `_append`, inlined
            seg["text"] = ""
            whole += text
            seg["text"] = whole
        else:
            segs.append({"text": text})
        block = self.content[-1]
        whole = block["text"]
        block["text"] = ""
        whole += text
        block["text"] = whole
        head = self._delta_head
        if head is None or self._delta_index != self.index:
            head = self._delta_head = (
                b'{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":'
                % (self.index)
            )
            self._delta_index = self.index
        return b"".join((head, orjson.dumps(text), b"}}"))

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if not self.started:
            out += self._start(chunk)
        if chunk.get("usageMetadata"):
            self.usage_meta = chunk["usageMetadata"]
        self._count_generated(chunk)
        feedback = chunk.get("promptFeedback") or {}
        if not chunk.get("candidates") and feedback.get("blockReason"):
            self.blocked = True
            self.finish = str(feedback["blockReason"])  # SAFETY, PROHIBITED_CONTENT, MODEL_ARMOR…
            self.finish_message = feedback.get("blockReasonMessage")
        for cand in (chunk.get("candidates") or [])[:1]:
            out += self._candidate(cand)
        return out

    def _count_generated(self, chunk: dict[str, Any]) -> None:
        """What Google generated, for a cut stream's price."""
        for cand in (chunk.get("candidates") or [])[:1]:
            for part in (cand.get("content") or {}).get("parts") or () if isinstance(cand, dict) else ():
                if isinstance(part, dict):
                    text, fc = part.get("text"), part.get("functionCall")
                    self.generated_chars += (len(text) if isinstance(text, str) else 0) + (
                        len(str(fc)) if fc else 0
                    )

    def _candidate(self, cand: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if isinstance(cand.get("groundingMetadata"), dict):
            self.grounding = cand["groundingMetadata"]
        for part in ((cand.get("content") or {}).get("parts")) or []:
            if self.search and (self.deferred or not part.get("thought")):
                self.deferred.append(part)  # thoughts flow; the answer waits for the search blocks
                continue
            out += self._part(part)
        if cand.get("finishReason"):
            self.finish = cand["finishReason"]
            self.finish_message = cand.get("finishMessage")
        return out

    def _part(self, part: dict[str, Any]) -> list[Event]:
        sig = part.get("thoughtSignature")
        if part.get("thought"):
            return self._thought(part, sig)
        if "functionCall" in part:
            return self._call(part, sig)
        return self._text(part, sig)

    def _thought(self, part: dict[str, Any], sig: str | None) -> list[Event]:
        out: list[Event] = []
        if not self.thinking:
            self.thoughts_dropped += 1
            return out
        if self.open_kind != "thinking":
            out += self._open("thinking", {"type": "thinking", "thinking": ""})
        if sig:
            self.open_sig = marks.wrap(sig)
        text = part.get("text", "")
        if text:
            self.first_content = True
            _append(self.content[-1], "thinking", text)
            out.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.index,
                        "delta": {"type": "thinking_delta", "thinking": text},
                    },
                )
            )
        return out

    def _call(self, part: dict[str, Any], sig: str | None) -> list[Event]:
        out: list[Event] = []
        fc = part["functionCall"] or {}
        tid = fc.get("id") or self.ids.tool_id()
        if not str(tid).startswith("toolu_"):
            tid = "toolu_" + str(tid)
        if sig:
            self.signatures_out[tid] = sig
            if self.thinking:
                out += self._call_signature(sig)
        args = fc.get("args") or {}
        out += self._open(
            "tool_use",
            {"type": "tool_use", "id": tid, "name": self.names.back(fc.get("name", "")), "input": {}},
        )
        self.content[-1]["input"] = args
        self.first_content = True
        out.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self.index,
                    "delta": {"type": "input_json_delta", "partial_json": orjson.dumps(args).decode()},
                },
            )
        )
        out += self._close()
        self.has_call = True
        return out

    def _call_signature(self, sig: str) -> list[Event]:
        """A signed call's signature reaches the client on a thinking block before the call (the open one,
        or a new one)."""
        if self.open_kind == "thinking":
            self.open_sig = self.open_sig or marks.wrap(sig)
            return []
        out = self._open("thinking", {"type": "thinking", "thinking": ""})
        self.open_sig = marks.wrap(sig)
        return out

    def _text(self, part: dict[str, Any], sig: str | None) -> list[Event]:
        out: list[Event] = []
        text = part.get("text")
        if text:
            if self.open_kind != "text":
                out += self._open("text", {"type": "text", "text": ""})
                self.segments[self.index] = []
            segs = self.segments[self.index]
            if segs and "thoughtSignature" not in segs[-1]:
                _append(segs[-1], "text", text)  # one Gemini part streamed in pieces
            else:
                segs.append({"text": text})
            if sig:
                segs[-1]["thoughtSignature"] = sig  # the part ends here; what follows is a new part
            self.first_content = True
            _append(self.content[-1], "text", text)
            out.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.index,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            )
        if sig and not text:
            out += self._empty_signed(sig)
        return out

    def _empty_signed(self, sig: str) -> list[Event]:
        """A signed empty part (Gemini's last chunk often is one) belongs to the block before it."""
        last = self.content[-1] if self.content else None
        if last is not None and last["type"] == "text" and self.index in self.segments:
            self.segments[self.index].append({"text": "", "thoughtSignature": sig})
        elif last is not None and last["type"] == "tool_use":
            self.after_call.setdefault(self.index, []).append({"text": "", "thoughtSignature": sig})
        elif self.open_kind == "thinking":
            # right after the thoughts: the thinking block carries it, and it goes back before the next part
            self.open_sig = self.open_sig or marks.wrap(sig)
        else:
            self.signatures_lost += 1
        return []

    def empty(self) -> str | None:
        """Why the answer is no answer (retried, then a retryable failure), or None. Call at the end."""
        if self.blocked or self.finish == "MAX_TOKENS" or self.finish in REFUSAL:
            return None
        if self.finish == "MALFORMED_FUNCTION_CALL":
            return "MALFORMED_FUNCTION_CALL" + (f": {self.finish_message}" if self.finish_message else "")
        if any(b["type"] != "thinking" for b in self.content):
            return None
        if any(not p.get("thought") for p in self.deferred) or _sources(self.grounding):
            return None
        return f"finishReason {self.finish or 'missing'} with no content"

    def abort(self) -> list[Event]:
        """Close the open block before an error event ends the stream."""
        return self._close()

    def open(self) -> list[Event]:
        """`message_start` before any chunk arrived (the gateway opens a silent stream to send pings)."""
        return [] if self.started else self._start({})

    def finish_events(self) -> list[Event]:
        """Close the message. Call only when the upstream stream ended normally."""
        out: list[Event] = []
        if not self.started:
            out += self._start({})
        if self.search:
            out += self._search_blocks()
            for part in self.deferred:
                out += self._part(part)
            self.deferred = []
        note = finish_note(self.finish, self.finish_message)
        if note:
            out += self._open("text", {"type": "text", "text": ""})
            self.content[-1]["text"] = note
            out.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.index,
                        "delta": {"type": "text_delta", "text": note},
                    },
                )
            )
        out += self._close()
        reason = "refusal" if self.blocked else stop_reason(self.finish, self.has_call)
        u = usage(self.usage_meta)
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": self._usage(u),
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        self._keep_text_signatures()
        self.finished = True
        self.stop_reason = reason
        return out

    def _keep_text_signatures(self) -> None:
        """Every text block of the answer by its text (its parts when one is signed), and the parts after a
        call: what the next request puts back (`translate.request`)."""
        for i, block in enumerate(self.content):
            if block["type"] == "text" and block["text"]:
                segs = self.segments.get(i) or []
                signed = any("thoughtSignature" in p for p in segs)
                joined = "".join(p["text"] for p in segs)
                self.text_signatures_out[marks.textkey(block["text"])] = (
                    [dict(p) for p in segs] if signed and joined == block["text"] else None
                )
            elif block["type"] == "tool_use" and i in self.after_call:
                self.text_signatures_out[marks.callkey(str(block["id"]))] = self.after_call[i]

    def held(self) -> int:
        """How many text-part signatures the gateway keeps for this answer (none reaches the client)."""
        return sum(
            1 for parts in self.text_signatures_out.values() for p in parts or () if "thoughtSignature" in p
        )

    def notes(self) -> list[Note]:
        """What translating the answer decided that the client can't see. Call at the end."""
        notes = Notes()
        self._finish_notes(notes)
        self._usage_notes(notes)
        self._kept_notes(notes)
        return notes.items

    def _finish_notes(self, notes: Notes) -> None:
        finish = self.finish
        reason = self.stop_reason or ("refusal" if self.blocked else stop_reason(finish, self.has_call))
        said = f": {self.finish_message}" if self.finish_message else ""
        if self.blocked:
            notes.add(
                "refusal",
                f"the prompt was blocked ({finish}){said} → stop_reason refusal",
                finish=finish,
                message=self.finish_message,
            )
        elif finish in REFUSAL or finish in ("MODEL_ARMOR", "BLOCKED_REASON_UNSPECIFIED", "OTHER_BLOCK"):
            notes.add(
                "refusal",
                f"Gemini declined ({finish}){said} → stop_reason {reason}, its reason given as text",
                finish=finish,
                message=self.finish_message,
            )
        elif finish not in (None, "STOP", "MAX_TOKENS", "FINISH_REASON_UNSPECIFIED"):
            text = " with an explanatory text" if finish_note(finish, self.finish_message) else ""
            notes.add(
                "finish-mapped",
                f"finishReason {finish} → stop_reason {reason}{text}",
                finish=finish,
                stop_reason=reason,
            )

    def _usage_notes(self, notes: Notes) -> None:
        meta = self.usage_meta or {}
        cached = int(meta.get("cachedContentTokenCount") or 0)
        thoughts = int(meta.get("thoughtsTokenCount") or 0)
        tool_prompt = int(meta.get("toolUsePromptTokenCount") or 0)
        if not (cached or thoughts or tool_prompt):
            return
        u = usage(meta)
        said = []
        if cached or tool_prompt:
            said.append(
                f"input_tokens {u['input_tokens']} = promptTokenCount {meta.get('promptTokenCount', 0)}"
                + (f" + toolUsePromptTokenCount {tool_prompt}" if tool_prompt else "")
                + (f" − cachedContentTokenCount {cached} (→ cache_read_input_tokens)" if cached else "")
            )
        if thoughts:
            said.append(
                f"output_tokens {u['output_tokens']} = candidatesTokenCount "
                f"{u['output_tokens'] - thoughts} + thoughtsTokenCount {thoughts}"
            )
        notes.add("usage-mapped", "; ".join(said), gemini=dict(meta), anthropic=anthropic_usage(u))

    def _kept_notes(self, notes: Notes) -> None:
        """What the gateway kept back or left out: signatures, search, thoughts."""
        held = self.held()
        if held:
            notes.add(
                "signature-held",
                f"{held} text-part signature(s) kept by the gateway for the next request: Claude's content "
                "has no place for them (Google documents them as optional)",
                count=held,
            )
        if self.signatures_lost:
            notes.add(
                "signature-lost",
                f"{self.signatures_lost} signed empty part(s) before any content not kept: no block to belong to",
                count=self.signatures_lost,
            )
        if self.searches:
            notes.add(
                "search-mapped",
                f"Google Search grounding → {self.searches} web_search call(s), {self.sources} source(s), as "
                "server_tool_use / web_search_tool_result blocks before the text (held until Gemini named them)",
                queries=self.searches,
                sources=self.sources,
            )
        if self.thoughts_dropped:
            notes.add(
                "thoughts-dropped",
                f"{self.thoughts_dropped} thought part(s) not passed on: the client did not ask for thinking",
                count=self.thoughts_dropped,
            )

    def whole(self, resp: dict[str, Any]) -> dict[str, Any]:
        """The message for a whole (non-streamed) generateContent answer: the machine fed one chunk."""
        self.feed(resp)
        self.finish_events()
        return self.message()

    def message(self) -> dict[str, Any]:
        """The message as assembled so far (complete after `finish_events`)."""
        u = usage(self.usage_meta)
        return {
            "id": self.msg_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": self._usage(u),
        }

    def _usage(self, u: dict[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = dict(anthropic_usage(u))
        if self.searches:
            out["server_tool_use"] = {"web_search_requests": self.searches}
        return out

    def _search_blocks(self) -> list[Event]:
        """Google Search grounding as Claude's web search: a server_tool_use per query Gemini ran, and its
        web_search_tool_result with the sources (Gemini does not say which query found which: all go with the
        first)."""
        gm = self.grounding or {}
        queries = [q for q in gm.get("webSearchQueries") or [] if isinstance(q, str) and q]
        results = _sources(gm)
        if not queries and not results:
            return []
        out: list[Event] = []
        for n, query in enumerate(queries or [""]):
            sid = self.ids.server_tool_id()
            out += self._open(
                "server_tool_use", {"type": "server_tool_use", "id": sid, "name": "web_search", "input": {}}
            )
            self.content[-1]["input"] = {"query": query}
            out.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.index,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": orjson.dumps({"query": query}).decode(),
                        },
                    },
                )
            )
            out += self._close()
            found = results if n == 0 else []
            out += self._open(
                "web_search_tool_result",
                {"type": "web_search_tool_result", "tool_use_id": sid, "content": found},
            )
            out += self._close()
        self.first_content = True
        self.searches, self.sources = len(queries or [""]), len(results)
        return out


def _sources(grounding: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Gemini's grounding chunks as Anthropic's web_search_result items (Google gives no page age, nothing to
    encrypt: the client gets the link and its title)."""
    out: list[dict[str, Any]] = []
    for chunk in (grounding or {}).get("groundingChunks") or []:
        web = chunk.get("web") if isinstance(chunk, dict) else None
        if isinstance(web, dict) and isinstance(web.get("uri"), str) and web["uri"]:
            out.append(
                {
                    "type": "web_search_result",
                    "url": web["uri"],
                    "title": str(web.get("title") or web["uri"]),
                    "encrypted_content": "",
                    "page_age": None,
                }
            )
    return out
