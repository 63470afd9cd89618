"""The synthetic Claude Code session of `cc_session`, as fixed records (fixed ids, times and usage), for the
console's pictures: the same tree, roll-ups, context and compaction, with nothing that changes between runs."""

from __future__ import annotations

from proxy.record import Record, Usage
from tests import cc_session as cs

T0 = 1_790_000_000.0


def records(session: str = cs.SESSION, t0: float = T0) -> list[Record]:
    def r(
        i: int,
        agent: str | None,
        prompt: int,
        cached: int = 0,
        out: int = 200,
        model: str = "gemini-2.5-flash",
        **kw,
    ) -> Record:
        u = Usage(
            input_tokens=prompt - cached,
            cache_read_tokens=cached,
            output_tokens=out,
            total_tokens=prompt + out,
            cost=round(((prompt - cached) * 0.30 + cached * 0.03 + out * 2.5) / 1e6, 6),
        )
        return Record(
            id=f"req_{session[:4]}{i:04d}",
            started_at=t0 + i * 20,
            ended_at=t0 + i * 20 + 3,
            status=200,
            session_id=session,
            agent_id=agent,
            cc_version="2.1.331.03b",
            cc_is_subagent=agent is not None,
            request_model=model,
            response_model="gemini-2.5-flash",
            target="vertex-flash",
            provider="vertex",
            request_mode="stream",
            usage=u,
            latency_ms=3000,
            preview=kw.pop("preview", "Refactor the parser."),
            **kw,
        )

    return [
        r(0, None, 30_000, spawned=[cs.PROMPT_A, cs.PROMPT_B], tools_used=["Agent", "Agent"]),
        r(1, cs.AGENT_A, 12_000, 2_000, preview=cs.PROMPT_A),
        r(2, cs.AGENT_B, 9_000, preview=cs.PROMPT_B),
        r(3, cs.AGENT_A, 15_000, 12_000, preview=cs.PROMPT_A),
        r(4, None, 400, out=8, model="claude-haiku-5-5", preview="Summarise this session in five words."),
        r(5, None, 80_000, 60_000),
        r(6, None, 190_000, 150_000),
        r(7, None, 24_000, preview="Continue the refactor."),
    ]


TURN_1, TURN_2 = "5e1f0000-0000-4000-8000-00000000aaaa", "5e1f0000-0000-4000-8000-00000000bbbb"
PROMPT_1, PROMPT_2 = "Refactor the parser.", "Continue the refactor."


def with_prefixes(recs: list[Record]) -> list[Record]:
    """The main agent's upstream requests (held as a call holds them, for the writer's detector): the same
    system and tools each time and a growing conversation, until the compaction of call 7 rewrites it — a
    cache break at messages index 0."""
    system = {"parts": [{"text": "You are Claude Code. " * 200}]}
    tools = [{"functionDeclarations": [{"name": "Bash", "description": "Run a command."}]}]

    def turn(i: int) -> dict:
        return {"role": "user" if i % 2 == 0 else "model", "parts": [{"text": f"turn {i} " * 50}]}

    for i, n in ((0, 1), (5, 3), (6, 5)):
        recs[i].bodies.upstream = {
            "systemInstruction": system,
            "tools": tools,
            "contents": [turn(k) for k in range(n)],
        }
    summary = {"role": "user", "parts": [{"text": "Summary of the conversation so far."}]}
    recs[7].bodies.upstream = {"systemInstruction": system, "tools": tools, "contents": [summary, turn(5)]}
    return recs


def telemetry(recs: list[Record]) -> list[dict]:
    """Claude Code's events for the session's calls (as proxy/edge/telemetry.py hands them to the store): two
    turns, each call priced at Claude's prices by Claude Code."""
    out: list[dict] = [
        {
            "event": "user_prompt",
            "prompt_id": TURN_1,
            "session_id": cs.SESSION,
            "text": PROMPT_1,
            "length": 20,
            "at": T0,
        },
        {
            "event": "user_prompt",
            "prompt_id": TURN_2,
            "session_id": cs.SESSION,
            "text": PROMPT_2,
            "length": 22,
            "at": T0 + 139,
        },
    ]
    for i, r in enumerate(recs):
        u = r.usage
        out.append(
            {
                "event": "api_request",
                "request_id": r.id,
                "prompt_id": TURN_2 if i == 7 else TURN_1,
                "session_id": r.session_id,
                "cost_usd": round(
                    (u.input_tokens * 3 + u.cache_read_tokens * 0.3 + u.output_tokens * 15) / 1e6, 6
                ),
                "query_source": "repl_main_thread" if r.agent_id is None else "agent:builtin:general-purpose",
                "at": r.started_at + 3,
            }
        )
    return out
