"""Gemini → Anthropic: one state machine for both answers. A stream feeds it chunk by chunk and sends the
events; a whole generateContent answer is the same machine fed one chunk (`whole`)."""

from __future__ import annotations

from typing import Any

import orjson

from . import marks
from .names import ToolNames
from .notes import Note, Notes
from .response import REFUSAL, IdSource, anthropic_usage, finish_note, stop_reason, usage

Event = tuple[str, dict[str, Any]]


_PREFIX: dict[str, bytes] = {}


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One SSE frame, as the Messages API frames it."""
    prefix = _PREFIX.get(event)
    if prefix is None:  # a handful of event names: each prefix is built once
        prefix = _PREFIX[event] = b"event: " + event.encode() + b"\ndata: "
    return b"".join((prefix, orjson.dumps(data), b"\n\n"))


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
        self.after_sig: str | None = None
        """A signature that came on a text part (wrapped): given to the client after that text."""
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
        if self.after_sig:
            out += self._signed_block(self.after_sig)
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

    def _signed_block(self, sig: str) -> list[Event]:
        """An empty thinking block carrying a (wrapped) signature Gemini put on a text part: the client echoes
        it and the request translation puts it back where it came from."""
        self.after_sig = None
        out = self._open("thinking", {"type": "thinking", "thinking": ""})
        self.open_sig = sig
        return out + self._close()

    # -- the machine ---------------------------------------------------------------------------------------
    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if not self.started:
            out += self._start(chunk)
        if chunk.get("usageMetadata"):
            self.usage_meta = chunk["usageMetadata"]
        for cand in (chunk.get("candidates") or [])[:1]:  # what Google generated, for a cut stream's price
            for part in (cand.get("content") or {}).get("parts") or () if isinstance(cand, dict) else ():
                if isinstance(part, dict):
                    text, fc = part.get("text"), part.get("functionCall")
                    self.generated_chars += (len(text) if isinstance(text, str) else 0) + (
                        len(str(fc)) if fc else 0
                    )
        feedback = chunk.get("promptFeedback") or {}
        if not chunk.get("candidates") and feedback.get("blockReason"):
            self.blocked = True
            self.finish = str(feedback["blockReason"])  # SAFETY, PROHIBITED_CONTENT, MODEL_ARMOR…
            self.finish_message = feedback.get("blockReasonMessage")
        for cand in (chunk.get("candidates") or [])[:1]:
            for part in ((cand.get("content") or {}).get("parts")) or []:
                out += self._part(part)
            if cand.get("finishReason"):
                self.finish = cand["finishReason"]
                self.finish_message = cand.get("finishMessage")
        return out

    def _part(self, part: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        sig = part.get("thoughtSignature")
        if part.get("thought"):
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
                self.content[-1]["thinking"] += text
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
        if "functionCall" in part:
            fc = part["functionCall"] or {}
            tid = fc.get("id") or self.ids.tool_id()
            if not str(tid).startswith("toolu_"):
                tid = "toolu_" + str(tid)
            if sig:
                self.signatures_out[tid] = sig
                if self.thinking:
                    if self.open_kind == "thinking":
                        self.open_sig = self.open_sig or marks.wrap(sig)
                    else:
                        out += self._open("thinking", {"type": "thinking", "thinking": ""})
                        self.open_sig = marks.wrap(sig)
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
        text = part.get("text")
        if text:
            if self.open_kind != "text" or self.after_sig:  # a signed text part ended: a new one begins
                out += self._open("text", {"type": "text", "text": ""})
            self.first_content = True
            self.content[-1]["text"] += text
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
        if sig and self.thinking:
            if self.after_sig:
                out += self._close() + self._signed_block(self.after_sig)
            # after the text, streamed or not: a signed text part is given back signed, an empty one as is
            self.after_sig = marks.wrap(sig, prev=bool(text))
        return out

    def empty(self) -> str | None:
        """Why the answer is no answer (retried, then a retryable failure), or None. Call at the end."""
        if self.blocked or self.finish == "MAX_TOKENS" or self.finish in REFUSAL:
            return None
        if self.finish == "MALFORMED_FUNCTION_CALL":
            return "MALFORMED_FUNCTION_CALL" + (f": {self.finish_message}" if self.finish_message else "")
        if any(b["type"] != "thinking" for b in self.content):
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
        if self.after_sig:
            out += self._close() + self._signed_block(self.after_sig)
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
                    "usage": anthropic_usage(u),
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        self.finished = True
        self.stop_reason = reason
        return out

    def notes(self) -> list[Note]:
        """What translating the answer decided that the client can't see. Call at the end."""
        notes = Notes()
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
        meta = self.usage_meta or {}
        cached = int(meta.get("cachedContentTokenCount") or 0)
        thoughts = int(meta.get("thoughtsTokenCount") or 0)
        tool_prompt = int(meta.get("toolUsePromptTokenCount") or 0)
        if cached or thoughts or tool_prompt:
            u = usage(meta)
            said_ = []
            if cached or tool_prompt:
                said_.append(
                    f"input_tokens {u['input_tokens']} = promptTokenCount {meta.get('promptTokenCount', 0)}"
                    + (f" + toolUsePromptTokenCount {tool_prompt}" if tool_prompt else "")
                    + (f" − cachedContentTokenCount {cached} (→ cache_read_input_tokens)" if cached else "")
                )
            if thoughts:
                said_.append(
                    f"output_tokens {u['output_tokens']} = candidatesTokenCount "
                    f"{u['output_tokens'] - thoughts} + thoughtsTokenCount {thoughts}"
                )
            notes.add("usage-mapped", "; ".join(said_), gemini=dict(meta), anthropic=anthropic_usage(u))
        if self.thoughts_dropped:
            notes.add(
                "thoughts-dropped",
                f"{self.thoughts_dropped} thought part(s) not passed on: the client did not ask for thinking",
                count=self.thoughts_dropped,
            )
        return notes.items

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
            "usage": anthropic_usage(u),
        }
