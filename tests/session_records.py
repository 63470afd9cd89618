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
