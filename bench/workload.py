"""The benchmark's request: Claude-Code-shaped (system blocks, a role-system message, 16 tools with JSON
Schemas, adaptive thinking, metadata), about 60 KB, built here so the bench needs nothing outside the repo."""

from __future__ import annotations

import json

SCHEMA = "https://json-schema.org/draft/2020-12/schema"
WORDS = (
    "read the file list the directory run the command edit the text search the pattern fetch the page "
    "schedule the task report the finding "
).split()


def _prose(n_words: int, seed: int) -> str:
    return " ".join(WORDS[(i * 7 + seed) % len(WORDS)] for i in range(n_words))


def tools(n: int = 16) -> list[dict]:
    out = []
    for i in range(n):
        out.append(
            {
                "name": f"Tool{i}",
                "description": _prose(380, i),
                "input_schema": {
                    "$schema": SCHEMA,
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "path": {"type": "string", "description": _prose(12, i)},
                        "limit": {"type": "integer", "minimum": 0, "maximum": 9007199254740991},
                        "mode": {"type": "string", "enum": ["a", "b", "c"]},
                        "options": {
                            "type": "object",
                            "properties": {
                                "deep": {"type": "boolean"},
                                "tags": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "name": {"type": "string"},
                    },
                    "required": ["path"],
                },
            }
        )
    return out


def claude_code_request(stream: bool, model: str = "claude-opus-5-5") -> dict:
    return {
        "model": model,
        "max_tokens": 32000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=bench;"},
            {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": _prose(2500, 3), "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nbench\n</system-reminder>"},
                    {"type": "text", "text": "list the files and summarise them"},
                ],
            },
            {
                "role": "system",
                "content": [{"type": "text", "text": "# Environment\n - cwd: /home/dev/project"}],
            },
        ],
        "tools": tools(),
        "metadata": {
            "user_id": json.dumps({"device_id": "bench", "account_uuid": "", "session_id": "bench"})
        },
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }


def small_request(stream: bool, model: str = "claude-haiku-4-5") -> dict:
    """A small call, as Claude Code makes besides its big turns (a haiku title or topic check, a quota
    check): one short system block, one user message, no tools, ~0.6 KB. The fixed cost of a call shows here."""
    return {
        "model": model,
        "max_tokens": 512,
        "stream": stream,
        "system": [
            {"type": "text", "text": "Summarise the user's request as a title of at most five words."}
        ],
        "messages": [{"role": "user", "content": "please list the files in this folder and summarise them"}],
        "metadata": {
            "user_id": json.dumps({"device_id": "bench", "account_uuid": "", "session_id": "bench-small"})
        },
    }
