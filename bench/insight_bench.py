"""What the findings cost (issue 25): the detector and the writer's insight step per call, on Claude-Code-sized
calls (a ~15 KB system prompt, ~40 KB of tools, a conversation that grows a tool round per call, payloads kept),
and the store's write rate with the step and without it. Both run on the store's writer thread, never on the
event loop that serves calls: what a call's client waits for is unchanged, the writer's budget is what they cost.

    python bench/insight_bench.py            # 2,000 calls in 50 sessions
    python bench/insight_bench.py --calls 20000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.insight.detector import Detector  # noqa: E402
from proxy.record import Record, Usage  # noqa: E402
from proxy.store import Store  # noqa: E402

SYSTEM = [{"text": "You are Claude Code. " + "Follow the rules of the repository. " * 420}]
TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": f"Tool{i}",
                "description": "Does one thing well. " * 60,
                "parameters": {
                    "type": "OBJECT",
                    "properties": {f"arg{j}": {"type": "STRING"} for j in range(8)},
                },
            }
            for i in range(30)
        ]
    }
]


def session_calls(sid: int, n: int, t0: float) -> list[Record]:
    """One session's calls in order: the same prefix, the conversation growing by a tool round each call; the
    system prompt edited at call 10 (one cache break per session)."""
    out: list[Record] = []
    contents: list[dict] = [{"role": "user", "parts": [{"text": "tidy the repository " * 20}]}]
    for i in range(n):
        system = SYSTEM if i < 10 else [{"text": SYSTEM[0]["text"].replace("Claude Code.", "Claude Code!")}]
        upstream = {"systemInstruction": {"parts": system}, "tools": TOOLS, "contents": list(contents)}
        client = {
            "model": "claude-opus-5-5",
            "system": [{"type": "text", "text": system[0]["text"]}],
            "n": i,
            "messages": len(contents),
        }
        prompt = len(json.dumps(upstream)) // 4
        cached = 0 if i in (0, 10) else prompt - 800
        answer = {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": f"ls dir{i}"}}]}
        r = Record(
            id=f"req_{sid:05d}{i:05d}",
            started_at=t0 + i,
            ended_at=t0 + i + 1,
            status=200,
            session_id=f"s{sid}",
            request_model="claude-opus-5-5",
            response_model="gemini-2.5-flash",
            usage=Usage(
                input_tokens=prompt - cached,
                cache_read_tokens=cached,
                output_tokens=50,
                total_tokens=prompt + 50,
                cost=0.001,
            ),
            client_request=client,
            upstream_request=upstream,
            response=answer,
        )
        out.append(r)
        contents += [
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "Bash", "args": {"command": f"ls dir{i}"}}}],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "Bash", "response": {"out": "file " * 300}}}],
            },
        ]
    return out


def calls(total: int, per_session: int) -> list[Record]:
    t0 = time.time() - 86400
    out: list[Record] = []
    for s in range(total // per_session):
        out += session_calls(s, per_session, t0 + s * 100)
    return out


def time_detector(recs: list[Record]) -> list[float]:
    d = Detector()
    times = []
    for r in recs:
        t = time.perf_counter()
        d.observe(r)
        times.append((time.perf_counter() - t) * 1e6)
    return times


def write_rate(recs: list[Record], with_insight: bool) -> float:
    tmp = Path(tempfile.mkdtemp())
    store = Store(tmp / "b.db")
    if not with_insight:
        store.insight.before = lambda conn, records: {}  # type: ignore[method-assign]
        store.insight.after = lambda conn, new: None  # type: ignore[method-assign]
    store.start()
    t = time.perf_counter()
    for r in recs:
        store.submit(r)
    store.close(timeout=600)
    return len(recs) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--per-session", type=int, default=40)
    args = p.parse_args()
    recs = calls(args.calls, args.per_session)
    size = statistics.mean(len(json.dumps(r.upstream_request)) for r in recs) / 1024
    det = time_detector(recs)
    rates = {}
    for label, on in (("without", False), ("with", True), ("without ", False), ("with ", True)):
        rates.setdefault(label.strip(), []).append(write_rate(recs, on))
    off, on = max(rates["without"]), max(rates["with"])
    result = {
        "calls": len(recs),
        "upstream_kb_mean": round(size, 1),
        "detector_us_p50": round(statistics.median(det), 1),
        "detector_us_p95": round(sorted(det)[int(len(det) * 0.95)], 1),
        "detector_us_mean": round(statistics.mean(det), 1),
        "writer_records_per_s_without": round(off),
        "writer_records_per_s_with": round(on),
        "writer_us_per_call_added": round((1 / on - 1 / off) * 1e6, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
