"""A whole Claude Code session as the CLI sends it, written by us from the traffic notes: a main agent whose
answer spawns two sub-agents with its `Agent` tool (in parallel), the sub-agents' calls (header
`x-claude-code-agent-id`, billing header `cc_is_subagent=true`, the spawn's prompt as their first message), a
small-fast side call on the main agent, the context growing, and a compaction.

`play(url, fake)` scripts the fake Gemini and sends every call over HTTP, as the CLI does."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import aiohttp

from proxy.simulator import GeminiSimulator, Reply, issue_signature
from tests import cc_requests as cc

SESSION = "7b1e0c44-2f6a-4c1e-9a53-0d6f1c2e9b10"
AGENT_A = "a3c1f09e2b7d4e5f6"
AGENT_B = "b9d2e18f3a6c4b7e1"
PROMPT_A = "List the files under src/ and say what each module does."
PROMPT_B = "Find the tests that cover the parser."

AGENT_TOOL = {
    "name": "Agent",
    "description": "Launch a new agent to handle a task on its own.",
    "input_schema": {
        "$schema": cc.SCHEMA_URL,
        "type": "object",
        "properties": {
            "description": {"type": "string", "description": "A short description of the task"},
            "prompt": {"type": "string", "description": "The task for the agent to perform"},
            "subagent_type": {"type": "string", "description": "The type of agent"},
        },
        "required": ["description", "prompt"],
        "additionalProperties": False,
    },
}


def headers(agent: str | None = None) -> dict[str, str]:
    h = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
        "User-Agent": "claude-cli/2.1.331 (external, cli)",
        "X-Claude-Code-Session-Id": SESSION,
        "x-app": "cli",
        "X-Stainless-Retry-Count": "0",
        "anthropic-dangerous-direct-browser-access": "true",
        "x-api-key": "sk-ant-test-secret-key",
        "content-type": "application/json",
    }
    if agent:
        h["x-claude-code-agent-id"] = agent
    return h


def body(
    prompt: str, model: str = "gemini-2.5-flash", agent: bool = False, history: list | None = None
) -> dict:
    req = cc.first_turn(prompt, model=model)
    req["metadata"] = {
        "user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": SESSION})
    }
    sub = "true" if agent else "false"
    req["system"][0]["text"] = (
        f"x-anthropic-billing-header: cc_version=2.1.331.03b; cc_entrypoint=cli; cc_is_subagent={sub};"
    )
    if not agent:
        req["tools"].append(copy.deepcopy(AGENT_TOOL))
    if history:
        req["messages"] += history
    return req


def spawn_reply(prompt_tokens: int) -> Reply:
    """The main agent's answer: two `Agent` tool_uses at once."""
    parts = [
        {"text": "I'll look at the code and the tests in parallel."},
        {
            "functionCall": {
                "name": "Agent",
                "args": {"description": "Survey src", "prompt": PROMPT_A, "subagent_type": "Explore"},
            },
            "thoughtSignature": issue_signature(),
        },
        {
            "functionCall": {
                "name": "Agent",
                "args": {"description": "Find parser tests", "prompt": PROMPT_B, "subagent_type": "Explore"},
            }
        },
    ]
    return Reply(parts=parts, prompt_tokens=prompt_tokens)


@dataclass(frozen=True)
class Step:
    agent: str | None
    prompt: str
    reply: Reply
    model: str = "gemini-2.5-flash"


def steps() -> list[Step]:
    """The session, in the order the CLI sends it; prompt sizes are what Gemini reports (cached included)."""
    return [
        Step(None, "Refactor the parser.", spawn_reply(30_000)),
        Step(
            AGENT_A,
            PROMPT_A,
            Reply.text("src/ holds four modules.", prompt_tokens=12_000, cached_tokens=2_000),
        ),
        Step(AGENT_B, PROMPT_B, Reply.text("tests/test_parser.py covers it.", prompt_tokens=9_000)),
        Step(AGENT_A, PROMPT_A, Reply.text("Done.", prompt_tokens=15_000, cached_tokens=12_000)),
        # the small-fast model on the main agent (a title, a check): a small prompt that is no compaction
        Step(
            None, "Summarise this session in five words.", Reply.text("Parser refactor"), "claude-haiku-5-5"
        ),
        Step(
            None,
            "Refactor the parser.",
            Reply.text("Working on it.", prompt_tokens=80_000, cached_tokens=60_000),
        ),
        Step(
            None,
            "Refactor the parser.",
            Reply.text("Almost there.", prompt_tokens=190_000, cached_tokens=150_000),
        ),
        # Claude Code compacted: the next prompt is a fraction of the last
        Step(None, "Continue the refactor.", Reply.text("Resuming.", prompt_tokens=24_000)),
    ]


async def play(url: str, fake: GeminiSimulator) -> int:
    """Send the session; returns how many calls were made."""
    all_steps = steps()
    fake.script(*(s.reply for s in all_steps))
    async with aiohttp.ClientSession() as http:
        for s in all_steps:
            req = body(s.prompt, s.model, agent=s.agent is not None)
            async with http.post(
                f"{url}/v1/messages?beta=true", data=json.dumps(req), headers=headers(s.agent)
            ) as resp:
                text = await resp.text()
                assert resp.status == 200, text
    return len(all_steps)
