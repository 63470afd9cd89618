"""What a budget's reservation costs per call: the same calls with `[budget]` on and off, SQLite and PostgreSQL.

    python bench/budget_bench.py              # 3 rounds × 300 calls per setting, c=10 (~2 minutes)
    python bench/budget_bench.py --quick      # 1 round × 150

In one process: the real service (store, gateway), the fake Gemini without its proto validation (the cost
under test is the gateway's), and an aiohttp client sending the bench's Claude Code request (~57 KB, one-shot,
max_tokens 32,000) ten at a time. Settings alternate round by round. Per setting: calls/s, process CPU per call
(client and fake included: on − off is the budget's), and how long a call waited for its admission (the
reservation's round trip to the store, in the budget's thread: `Budget.admit`). A PostgreSQL server of its own
(tests/pg.py; fsync off, as in the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.workload import claude_code_request  # noqa: E402
from proxy import config as cfg  # noqa: E402
from proxy.exchange.budget import Budget  # noqa: E402
from proxy.service import Service  # noqa: E402
from proxy.simulator import GeminiSimulator, Reply  # noqa: E402
from proxy.store import open_store  # noqa: E402

C = 10

waits: list[float] = []
_admit = Budget.admit


async def _timed_admit(self: Budget, *args: Any) -> None:
    t = time.perf_counter()
    try:
        await _admit(self, *args)
    finally:
        waits.append(time.perf_counter() - t)


Budget.admit = _timed_admit  # type: ignore[method-assign]


async def round_(fake: GeminiSimulator, where: str, budget: bool, n: int) -> dict[str, float]:
    raw: dict[str, Any] = {
        "gateway": {"port": 0},
        "targets": [
            {
                "name": "studio",
                "provider": "gemini",
                "model": "gemini-2.5-flash",
                "api_key": "k",
                "api_endpoint": fake.url,
            }
        ],
    }
    if budget:
        raw["budget"] = {"daily_usd": 1e9, "session_usd": 1e9}
    svc = Service(cfg.from_mapping(raw, "bench"), open_store(where))
    url = await svc.start()
    body = json.dumps(claude_code_request(False, model="gemini-2.5-flash")).encode()
    headers = {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-claude-code-session-id": "bench-session",
    }
    waits.clear()
    try:
        async with aiohttp.ClientSession() as http:

            async def worker(k: int) -> None:
                for _ in range(k):
                    async with http.post(f"{url}/v1/messages", data=body, headers=headers) as r:
                        await r.read()
                        assert r.status == 200, r.status

            await asyncio.gather(
                *(worker(2) for _ in range(C))
            )  # warm: connections, caches, the budget's thread
            waits.clear()
            hops: list[float] = []
            done = asyncio.Event()

            async def hop() -> None:  # the control: a no-op round trip to a thread on the same loop meanwhile
                while not done.is_set():
                    t = time.perf_counter()
                    await asyncio.to_thread(lambda: None)
                    hops.append(time.perf_counter() - t)
                    await asyncio.sleep(0.01)

            control = asyncio.create_task(hop())
            t, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker(n // C) for _ in range(C)))
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            done.set()
            await control
    finally:
        await svc.stop()
    out = {"calls_per_s": n / wall, "cpu_ms_per_call": 1000 * cpu / n}
    h = sorted(hops)
    out["thread_hop_ms_median"] = 1000 * statistics.median(h)
    out["thread_hop_ms_p99"] = 1000 * h[int(0.99 * (len(h) - 1))]
    if waits:
        w = sorted(waits)
        out["admit_ms_median"] = 1000 * statistics.median(w)
        out["admit_ms_p99"] = 1000 * w[int(0.99 * (len(w) - 1))]
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds, n = (1, 150) if args.quick else (3, 300)
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp()
    from tests.pg import Server

    fake = GeminiSimulator(api_key="k")
    fake.require_auth = False
    fake.responder = lambda _b: Reply.text("done", prompt_tokens=20_000)
    await fake.start()
    server = Server().start()
    results: dict[str, list[dict[str, float]]] = {}
    try:
        for _ in range(rounds):
            for backend in ("sqlite", "postgres"):
                for budget in (False, True):
                    where = (
                        str(Path(tempfile.mkdtemp()) / "b.db") if backend == "sqlite" else server.fresh_url()
                    )
                    name = f"{backend} budget {'on' if budget else 'off'}"
                    r = await round_(fake, where, budget, n)
                    results.setdefault(name, []).append(r)
                    print(name, {k: round(v, 3) for k, v in r.items()}, flush=True)
    finally:
        await fake.stop()
        server.remove()
    print("\nmedian over rounds:")
    summary = {}
    for name, rs in results.items():
        summary[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"  {name:22} " + ", ".join(f"{k} {v:.2f}" for k, v in summary[name].items()))
    out = ROOT / "bench" / "results" / "budget.json"
    out.write_text(json.dumps({"rounds": results, "median": summary, "calls": n, "concurrency": C}, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    asyncio.run(main())
