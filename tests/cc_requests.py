"""Our own Claude-Code-shaped requests: every structural feature the real CLI sends (see the traffic notes),
with our own wording. Builders, so each test can vary one thing."""

from __future__ import annotations

import copy
import json

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
SESSION = "5f0c3a52-8a64-4a3e-9d0e-6f5bb1c0a111"
MAX_SAFE = 9007199254740991

TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command and return its output.",
        "input_schema": {
            "$schema": SCHEMA_URL,
            "type": "object",
            "properties": {
                "command": {"description": "The command line", "type": "string"},
                "timeout": {"description": "Milliseconds", "type": "number", "maximum": 600000},
                "description": {"description": "What it does, in a few words", "type": "string"},
                "run_in_background": {"type": "boolean", "default": False},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Read",
        "description": "Read a file.",
        "input_schema": {
            "$schema": SCHEMA_URL,
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "Absolute path"},
                "offset": {"type": "integer", "minimum": 0, "maximum": MAX_SAFE},
                "limit": {"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_SAFE},
                "pages": {"type": "string", "pattern": "^[0-9,-]+$"},
            },
            "required": ["file_path"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Edit",
        "description": "Replace text in a file.",
        "input_schema": {
            "$schema": SCHEMA_URL,
            "type": "object",
            "properties": {
                "file_path": {"type": "string"},
                "old_string": {"type": "string", "minLength": 1},
                "new_string": {"type": "string", "maxLength": 100000},
                "replace_all": {"type": "boolean", "default": False},
            },
            "required": ["file_path", "old_string", "new_string"],
            "additionalProperties": False,
        },
    },
    {
        "name": "WebFetch",
        "description": "Fetch a URL.",
        "defer_loading": True,
        "input_schema": {
            "$schema": SCHEMA_URL,
            "type": "object",
            "properties": {"url": {"type": "string", "format": "uri"}, "prompt": {"type": "string"}},
            "required": ["url", "prompt"],
            "additionalProperties": False,
        },
    },
    {
        "name": "TaskUpdate",
        "description": "Change a task.",
        "input_schema": {
            "$schema": SCHEMA_URL,
            "type": "object",
            "properties": {
                "taskId": {"type": "string"},
                # no type at all, anyOf with const members
                "status": {
                    "description": "New status",
                    "anyOf": [
                        {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                        {"type": "string", "const": "deleted"},
                    ],
                },
                # a free-form value: no type, arrays/objects welcome
                "payload": {"description": "Any JSON value"},
                # properties NAMED like keywords are data
                "name": {"type": "string"},
                "title": {"type": "string"},
                "metadata": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "propertyNames": {"pattern": "^[a-z]+$"},
                },
                "extra": {"type": "object", "additionalProperties": {}},
            },
            "required": ["taskId"],
            "additionalProperties": False,
        },
    },
    {
        "name": "ReportFindings",
        "description": "Report findings.",
        "input_schema": {
            "$schema": SCHEMA_URL,
            "type": "object",
            "properties": {
                "level": {"type": "string", "enum": ["low", "medium", "high"]},
                "grid": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 10,
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "cell": {"type": "string"},
                                "weight": {"type": "number", "minimum": -MAX_SAFE},
                            },
                        },
                    },
                },
                "ref": {"type": "string", "allOf": [{"pattern": "^[A-Z]"}, {"pattern": "[0-9]$"}]},
            },
        },
    },
    {
        "name": "DeferredToolPlaceholder",
        "description": "Placeholder for tools loaded later.",
        "input_schema": {"type": "object", "properties": {}},
        "defer_loading": True,
    },
]


def metadata() -> dict:
    return {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": SESSION})}


def system_blocks() -> list[dict]:
    return [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=9.9.9; cc_entrypoint=test;"},
        {
            "type": "text",
            "text": "You are a coding agent under test.",
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "text", "text": "Be brief. Use tools when needed.", "cache_control": {"type": "ephemeral"}},
    ]


def first_turn(prompt: str = "say hello", model: str = "gemini-2.5-flash", stream: bool = True) -> dict:
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nreminder text\n</system-reminder>\n"},
                    {"type": "text", "text": prompt},
                ],
            },
            {
                "role": "system",
                "content": [{"type": "text", "text": "# Environment\n - cwd: /home/dev/project"}],
            },
        ],
        "system": system_blocks(),
        "tools": copy.deepcopy(TOOLS),
        "metadata": metadata(),
        "max_tokens": 32000,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "stream": stream,
    }


def tool_turn(result: str | list = "hello", is_error: bool = False, signature: str | None = None) -> dict:
    """The second call of a tool loop: the model asked for Bash, the client answers."""
    req = first_turn("run echo hello")
    req["messages"][1]["content"] = (
        "# Environment\n - cwd: /home/dev/project"  # a plain string after turn one
    )
    assistant: list[dict] = []
    if signature is not None:
        assistant.append({"type": "thinking", "thinking": "", "signature": signature})
    assistant += [
        {"type": "text", "text": "Running it."},
        {
            "type": "tool_use",
            "id": "toolu_01abc",
            "name": "Bash",
            "input": {"command": "echo hello", "description": "Print hello"},
        },
    ]
    req["messages"] += [
        {"role": "assistant", "content": assistant},
        {
            "role": "user",
            "content": [
                {
                    "tool_use_id": "toolu_01abc",
                    "type": "tool_result",
                    "content": result,
                    "is_error": is_error,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
    return req


def toolsearch_turn() -> dict:
    """After ToolSearch: a tool_result holding tool_reference blocks, and the found tool now declared."""
    req = first_turn("fetch the page")
    req["messages"] += [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_02ts",
                    "name": "ToolSearch",
                    "input": {"query": "select:WebFetch"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_02ts",
                    "content": [{"type": "tool_reference", "tool_name": "WebFetch"}],
                },
                {"type": "text", "text": "Tool loaded.", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ]
    req["tools"].append(
        {
            "name": "ToolSearch",
            "description": "Find deferred tools.",
            "input_schema": {
                "$schema": SCHEMA_URL,
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": False,
            },
        }
    )
    return req


def count_request() -> dict:
    """What /context sends: no system, tools listed."""
    return {
        "model": "claude-opus-5-5",
        "messages": [{"role": "user", "content": "# Memory\nsome notes"}],
        "tools": copy.deepcopy(TOOLS[:2]),
    }


ALL = {
    "first_turn": first_turn(),
    "tool_turn": tool_turn(),
    "tool_turn_denied": tool_turn("The user denied this tool call.", is_error=True),
    "tool_turn_blocks": tool_turn(
        [{"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}]
    ),
    "toolsearch_turn": toolsearch_turn(),
    "oneshot_fallback": {**first_turn(stream=False), "max_tokens": 64000},
    "haiku_subagent": {**first_turn(model="claude-haiku-5-5"), "thinking": {"type": "adaptive"}},
}
