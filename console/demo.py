"""`gatewatch demo`: the console over a simulated Gemini upstream, fed with Claude-Code-like traffic
(tool loops, streams, thinking, count_tokens bursts, the odd 429/503, Google's implicit cache, now and then a
system prompt edited mid-session or a call sent twice) and Claude Code's own telemetry (OTLP/JSON to the
gateway's /v1/logs), on a throwaway database."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from proxy import config as cfg
from proxy.simulator import GeminiSimulator, ImplicitCache, Reply
from proxy.store import Store

Json = dict[str, Any]
"""a JSON object: a request body, an answer, an OTLP document"""

DEMO_API_KEY = "demo-api-key-not-a-secret"
DEMO_KEEP = 0
"""requests the demo's upstream keeps (none: nothing reads them back, and a demo left running must not grow)"""
SA_EMAIL = "demo@gatewatch-demo.iam.gserviceaccount.com"

PROMPTS = [
    "fix the failing test in tests/test_api.py",
    "why is the build slow?",
    "add a --verbose flag to the CLI",
    "rename UserStore to AccountStore everywhere",
    "explain what src/router.py does",
    "write a unit test for parse_duration",
    "find where we leak file handles",
    "update the README install steps",
    "make the retry loop respect Retry-After",
    "list the TODOs in the repo",
    "summarise the whole monorepo, every file",
]
TOO_LONG = "whole monorepo"
"""A prompt with this in it is "too long" for the simulated Gemini: the demo's call that fails upstream."""
TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command.",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "description": {"type": "string"},
                "timeout": {"type": "number", "maximum": 600000},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Read",
        "description": "Read a file.",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "file_path": {"type": "string"},
                "offset": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "exclusiveMinimum": 0},
            },
            "required": ["file_path"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Grep",
        "description": "Search files.",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string"},
                "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Edit",
        "description": "Edit a file.",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "file_path": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
            },
            "required": ["file_path", "old_string", "new_string"],
            "additionalProperties": False,
        },
    },
]
CALLS = [
    ("Bash", {"command": "pytest -x -q", "description": "Run the tests"}),
    ("Read", {"file_path": "/home/dev/project/src/router.py"}),
    ("Grep", {"pattern": "TODO", "path": "src", "output_mode": "content"}),
    (
        "Edit",
        {
            "file_path": "/home/dev/project/README.md",
            "old_string": "pip install",
            "new_string": "pipx install",
        },
    ),
    ("Bash", {"command": "git status --short", "description": "Show changes"}),
]
ANSWERS = [
    "Done. The test now passes because the fixture closes its connection.",
    "The router maps each path prefix to a handler and falls back to a 404 handler.",
    "I found three TODOs: two in src/router.py and one in src/store.py.",
    "The slow part is the dependency resolution step; caching the wheel directory fixes it.",
    "I've updated the README and kept the old command as a note for existing users.",
]


def responder(rng: random.Random) -> Callable[[Json], Reply]:
    def respond(body: Json) -> Reply:
        roll = rng.random()
        delay = rng.uniform(0.05, 0.35)
        chunk_delay = rng.uniform(0.02, 0.12)
        asked = [p.get("text", "") for c in body.get("contents") or [] for p in c.get("parts", [])]
        if any(TOO_LONG in t for t in asked):  # Google's words for a prompt over the window
            return Reply.error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1250000) exceeds the maximum number of tokens allowed (1048576).",
                delay=delay,
            )
        if roll < 0.04:
            return Reply.error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for aiplatform.googleapis.com/"
                "generate_content_requests_per_minute_per_project_per_base_model.",
                delay=delay,
                details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
            )
        if roll < 0.06:
            return Reply.error(
                503, "UNAVAILABLE", "The model is overloaded. Please try again later.", delay=delay
            )
        last = (body.get("contents") or [{}])[-1]
        answered = any("functionResponse" in p for p in last.get("parts", []))
        if not answered and roll < 0.55 and body.get("tools"):
            name, args = rng.choice(CALLS)
            return Reply.call(
                name,
                args,
                text=rng.choice(["Let me check.", "Looking at it.", ""]),
                delay=delay,
                chunk_delay=chunk_delay,
                chunks=3,
            )
        if roll < 0.7:
            return Reply.thinking(
                "Weighing what the user asked against the files I have seen so far.",
                rng.choice(ANSWERS),
                delay=delay,
                chunk_delay=chunk_delay,
                chunks=6,
            )
        return Reply.text(
            rng.choice(ANSWERS), delay=delay, chunk_delay=chunk_delay, chunks=rng.randint(3, 10)
        )

    return respond


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def demo_config(sim_url: str, key_json: str, port: int) -> cfg.Config:
    """Four targets: Vertex first, the Gemini API as its fallback, a lite model for Claude Code's haiku
    calls, and pro for whoever names it."""
    return cfg.from_mapping(
        {
            "gateway": {"host": "127.0.0.1", "port": port, "ping_interval": 5},
            "balancer": {"algorithm": "priority", "failure_threshold": 4, "cooldown": 20},
            "routes": [{"model": "claude-*haiku*", "targets": ["studio-lite"]}],
            "targets": [
                {
                    "name": "vertex-flash",
                    "provider": "vertex",
                    "model": "gemini-3.8-flash",
                    "max_tokens": 8192,
                    "project_id": "gatewatch-demo",
                    "location_id": "global",
                    "api_endpoint": sim_url,
                    "service_account_json": key_json,
                    "weight": 100,
                },
                {
                    "name": "studio-flash",
                    "provider": "gemini",
                    "model": "gemini-3.8-flash",
                    "api_key": DEMO_API_KEY,
                    "api_endpoint": sim_url,
                    "weight": 50,
                },
                {
                    "name": "studio-lite",
                    "provider": "gemini",
                    "model": "gemini-3.5-flash-lite",
                    "api_key": DEMO_API_KEY,
                    "api_endpoint": sim_url,
                },
                {
                    "name": "studio-pro",
                    "provider": "gemini",
                    "model": "gemini-4-neon",
                    "api_key": DEMO_API_KEY,
                    "api_endpoint": sim_url,
                    "weight": 10,
                },
            ],
        },
        "demo",
        {},
    )


def demo_key(sim_url: str) -> tuple[str, object]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "gatewatch-demo",
        "private_key_id": "demo",
        "private_key": pem,
        "client_email": SA_EMAIL,
        "client_id": "0",
        "token_uri": f"{sim_url}/token",
    }
    return json.dumps(info), key.public_key()


RULES = [
    "Read the code before changing it, and say what you read.",
    "Keep each change small; one concern per edit.",
    "Run the tests after every change and report what failed.",
    "Prefer the project's own helpers to new dependencies.",
    "Never print secrets, tokens or keys, even in examples.",
    "Explain a failing command before retrying it.",
    "Ask before deleting files or rewriting history.",
    "Match the surrounding style: naming, comments, line length.",
]
SYSTEM = "You are a coding agent (gatewatch demo traffic).\n\n" + "\n\n".join(
    f"# {area}\n" + "\n".join(f"- {rule}" for rule in RULES)
    for area in (
        "Reading",
        "Editing",
        "Testing",
        "Shell",
        "Git",
        "Reviews",
        "Docs",
        "Releases",
        "Safety",
        "Style",
    )
)
"""~4.5 KB with the tools past the 1,024 tokens Google's implicit cache starts at (Claude Code's own is ~15 KB)"""
CLAUDE_PRICES = {"claude-opus-5-5": (5.0, 25.0), "claude-haiku-5-5": (1.0, 5.0)}
"""USD per million input/output tokens: what Claude Code believes a call costs (it prices Claude models)"""


def request_body(model: str, messages: list[Json], stream: bool, session: str, system: str = SYSTEM) -> Json:
    return {
        "model": model,
        "messages": messages,
        "max_tokens": 32000,
        "stream": stream,
        "system": [{"type": "text", "text": system}],
        "tools": TOOLS,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "medium"},
        "metadata": {"user_id": json.dumps({"device_id": "demo", "account_uuid": "", "session_id": session})},
    }


async def _call(http: aiohttp.ClientSession, url: str, body: Json, agent: str | None = None) -> Json | None:
    """One call as Claude Code makes it; returns the assistant message (assembled from SSE when streaming)."""
    headers = {
        "x-api-key": "sk-ant-demo",
        "anthropic-version": "2023-06-01",
        "user-agent": "claude-cli/2.1.331 (external, cli)",
    }
    if agent:
        headers["x-claude-code-agent-id"] = agent  # a sub-agent of the session
    async with http.post(f"{url}/v1/messages?beta=true", json=body, headers=headers) as r:
        if r.status != 200:
            await r.read()
            return None
        if not body.get("stream"):
            return {**(await r.json()), "request_id": r.headers.get("request-id")}
        content: list[Json] = []
        async for line in r.content:
            if not line.startswith(b"data: "):
                continue
            ev = json.loads(line[6:])
            if ev["type"] == "content_block_start":
                content.append(dict(ev["content_block"]))
            elif ev["type"] == "content_block_delta" and ev["delta"]["type"] == "input_json_delta":
                content[-1]["input"] = json.loads(ev["delta"]["partial_json"])
            elif ev["type"] == "content_block_delta" and ev["delta"]["type"] == "text_delta":
                content[-1]["text"] += ev["delta"]["text"]
            elif ev["type"] == "content_block_delta" and ev["delta"]["type"] == "signature_delta":
                content[-1]["signature"] = ev["delta"]["signature"]
        return {"content": content, "request_id": r.headers.get("request-id")}


def _attrs(d: dict[str, object]) -> list[Json]:
    return [
        {"key": k, "value": {"doubleValue": v} if isinstance(v, float) else {"stringValue": str(v)}}
        for k, v in d.items()
    ]


async def telemetry(http: aiohttp.ClientSession, url: str, session: str, name: str, **attrs: object) -> None:
    """One Claude Code event, as its OTLP/JSON log export sends it to the gateway's /v1/logs."""
    record = {
        "timeUnixNano": str(time.time_ns()),
        "body": {"stringValue": f"claude_code.{name}"},
        "attributes": _attrs({"session.id": session, "event.name": name, **attrs}),
    }
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    try:
        async with http.post(f"{url}/v1/logs", json=doc) as r:
            await r.read()
    except aiohttp.ClientError:
        pass  # telemetry is best-effort, as Claude Code's own is


async def reported(
    http: aiohttp.ClientSession, url: str, body: Json, session: str, prompt_id: str, agent: str | None = None
) -> Json | None:
    """A call, then Claude Code's `api_request` event about it (its estimate at Claude's prices)."""
    msg = await _call(http, url, body, agent)
    if msg is not None and msg.get("request_id"):
        inp, out = CLAUDE_PRICES.get(body["model"], (3.0, 15.0))
        tokens = len(json.dumps(body)) // 4
        await telemetry(
            http,
            url,
            session,
            "api_request",
            **{
                "prompt.id": prompt_id,
                "request_id": msg["request_id"],
                "cost_usd": round((tokens * inp + 200 * out) / 1e6, 6),
                "query_source": "agent:builtin:general-purpose" if agent else "repl_main_thread",
            },
        )
    return msg


async def conversation(http: aiohttp.ClientSession, url: str, rng: random.Random) -> None:
    session = str(uuid.UUID(int=rng.getrandbits(128)))
    model = rng.choices(["claude-opus-5-5", "claude-haiku-5-5", "gemini-4-neon"], [6, 3, 1])[0]
    prompt, prompt_id = rng.choice(PROMPTS), str(uuid.UUID(int=rng.getrandbits(128)))
    await telemetry(http, url, session, "user_prompt", **{"prompt.id": prompt_id, "prompt": prompt})
    messages: list[Json] = [
        {"role": "user", "content": [{"type": "text", "text": prompt}]},
        {"role": "system", "content": "# Environment\n - cwd: /home/dev/project"},
    ]
    system = SYSTEM
    edit_at = 1 if rng.random() < 0.3 else None  # CLAUDE.md edited mid-session: the cache breaks there
    for turn in range(4):
        if turn == edit_at:
            system = SYSTEM.replace("Rule 3:", "Rule 3 (edited):")
        body = request_body(model, messages, rng.random() < 0.85, session, system)
        msg = await reported(http, url, body, session, prompt_id)
        if msg is None:
            return
        if rng.random() < 0.08:  # the same call sent twice
            await reported(http, url, body, session, prompt_id)
        if turn == 0 and rng.random() < 0.4:  # the main agent hands a task to a sub-agent
            agent = f"{rng.getrandbits(64):016x}"[:17]
            task = [{"role": "user", "content": [{"type": "text", "text": rng.choice(PROMPTS)}]}]
            for step in range(rng.randint(1, 3)):
                body = request_body("claude-haiku-5-5", task, True, session)
                done = await reported(http, url, body, session, prompt_id, agent)
                if done is None:
                    break
                task = [  # the sub-agent's own conversation grows as the main agent's does
                    *task,
                    {"role": "assistant", "content": [{"type": "text", "text": f"Step {step + 1} done."}]},
                    {"role": "user", "content": [{"type": "text", "text": "Go on."}]},
                ]
        tools = [b for b in msg["content"] if b.get("type") == "tool_use"]
        if not tools:
            return
        messages.append({"role": "assistant", "content": msg["content"]})
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": t["id"], "content": f"(output of {t['name']})\nok"}
                    for t in tools
                ],
            }
        )
        await asyncio.sleep(rng.uniform(0.1, 0.6))


async def count_burst(http: aiohttp.ClientSession, url: str, n: int) -> None:
    body = {
        "model": "claude-opus-5-5",
        "messages": [{"role": "user", "content": "# Memory\nnotes"}],
        "tools": TOOLS,
    }
    await asyncio.gather(
        *(http.post(f"{url}/v1/messages/count_tokens?beta=true", json=body) for _ in range(n)),
        return_exceptions=True,
    )


async def traffic(url: str, rate: float, seed: int | None = None, limit: int | None = None) -> None:
    """Generated traffic until cancelled (or `limit` conversations)."""
    rng = random.Random(seed)
    tasks: set[asyncio.Task[None]] = set()
    started = 0
    async with aiohttp.ClientSession() as http:
        try:
            while limit is None or started < limit:
                if len(tasks) < 6:
                    coro = count_burst(http, url, 5) if rng.random() < 0.08 else conversation(http, url, rng)
                    t = asyncio.create_task(coro)
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                    started += 1
                await asyncio.sleep(rng.expovariate(rate) if rate > 0 else 1.0)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for t in tasks:
                t.cancel()


class Demo:
    """The simulator, its config and the traffic; `on_ready` is handed to the console."""

    def __init__(self, rate: float = 1.5, port: int = 0, seed: int | None = None, limit: int | None = None):
        self.sim_port = free_port()
        self.sim = GeminiSimulator(
            api_key=DEMO_API_KEY, responder=responder(random.Random(seed)), keep=DEMO_KEEP
        )
        self.sim.implicit_cache = ImplicitCache()
        sim_url = f"http://127.0.0.1:{self.sim_port}"
        key_json, public = demo_key(sim_url)
        self.sim.public_keys[SA_EMAIL] = public
        self.config = demo_config(sim_url, key_json, port)
        self.rate, self.seed, self.limit = rate, seed, limit

    async def before_start(self) -> None:
        """The simulated upstream listens before the gateway checks its targets' credentials against it."""
        await self.sim.start(port=self.sim_port)

    async def on_ready(self, gateway_url: str) -> None:
        if not self.sim.url:  # (a host that had no before_start: the screenshots script)
            await self.sim.start(port=self.sim_port)
        try:
            await traffic(gateway_url, self.rate, self.seed, self.limit)
            await asyncio.Event().wait()  # keep the simulator up after a limited run
        finally:
            await self.sim.stop()


def run_demo(args: argparse.Namespace) -> int:
    from console.app import GatewatchApp

    throwaway = None if args.db else Path(tempfile.mkdtemp(prefix="gatewatch-demo-"))
    db = throwaway / "demo.db" if throwaway else Path(args.db)
    demo = Demo(rate=args.rate, port=args.port)
    store = Store(db, secrets=demo.config.secrets())
    app = GatewatchApp(
        demo.config,
        store,
        on_ready=demo.on_ready,
        before_start=demo.before_start,
        banner_note=f"demo: simulated upstream, {'throwaway store' if throwaway else 'store'} {db}",
    )
    try:
        app.run()
    finally:
        app.host.stop()
        store.close()
        if throwaway:  # the demo's calls were for looking at: nothing of them is left in /tmp
            shutil.rmtree(throwaway, ignore_errors=True)
    return 0
