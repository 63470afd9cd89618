"""OTLP/HTTP log bodies as Claude Code exports them (the attribute set measured in the contract's Telemetry
section), built here: OTLP/JSON documents and the same in protobuf."""

from __future__ import annotations

import time
import uuid

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

RESOURCE = {"service.name": "claude-code", "service.version": "2.1.332", "os.type": "linux"}


def _value(v) -> dict:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}  # int64 travels as a string in OTLP/JSON
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def _attrs(d: dict) -> list[dict]:
    return [{"key": k, "value": _value(v)} for k, v in d.items()]


class Exporter:
    """One Claude Code process's events: a session id, a user id, a running sequence."""

    def __init__(self, session_id: str | None = None) -> None:
        self.session_id = session_id or str(uuid.uuid4())
        self.sequence = 0

    def event(self, name: str, **attrs) -> dict:
        now = time.time()
        common = {
            "user.id": "f" * 64,
            "session.id": self.session_id,
            "terminal.type": "xterm",
            "event.name": name,
            "event.timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
            "event.sequence": self.sequence,
        }
        self.sequence += 1
        return {
            "timeUnixNano": str(int(now * 1e9)),
            "observedTimeUnixNano": str(int(now * 1e9)),
            "body": {"stringValue": f"claude_code.{name}"},
            "attributes": _attrs({**common, **attrs}),
        }

    def user_prompt(self, prompt_id: str, text: str | None) -> dict:
        return self.event(
            "user_prompt",
            **{"prompt.id": prompt_id, "prompt_length": str(len(text or "")), "prompt": text or "<REDACTED>"},
        )

    def api_request(
        self, request_id: str, prompt_id: str, cost: float, source: str = "repl_main_thread"
    ) -> dict:
        return self.event(
            "api_request",
            **{
                "prompt.id": prompt_id,
                "model": "gemini-2.5-flash",
                "input_tokens": 11756,
                "output_tokens": 5,
                "cache_read_tokens": 0,
                "cache_creation_tokens": 0,
                "cost_usd": cost,
                "duration_ms": 420,
                "ttft_ms": 300,
                "request_id": request_id,
                "query_source": source,
                "effort": "high",
            },
        )

    def body(self, *records: dict) -> dict:
        return {
            "resourceLogs": [
                {
                    "resource": {"attributes": _attrs(RESOURCE)},
                    "scopeLogs": [
                        {
                            "scope": {"name": "com.anthropic.claude_code.events", "version": "2.1.332"},
                            "logRecords": list(records),
                        }
                    ],
                }
            ]
        }


def protobuf(doc: dict) -> bytes:
    """The same document as an ExportLogsServiceRequest (what http/protobuf sends)."""
    return json_format.ParseDict(doc, ExportLogsServiceRequest()).SerializeToString()
