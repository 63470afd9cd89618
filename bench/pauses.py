"""The gateway's own pauses, one by one (issue 26): what holds its event loop, measured in process.

    python bench/pauses.py            # ~1 minute
    python bench/pauses.py --seconds 10

1. Steps a call runs on the loop without yielding, each timed alone (median and max of repeated runs): the
   57 KB request's JSON parse and translation, the record's serialisation (`Store.submit`), pricing (the
   library's computation against the cached rates), and a full garbage collection with and without the
   collector policy's freeze (proxy/collector.py).
2. The store's writer thread, which shares the GIL: how late a 1 ms timer on the loop fires (p50/p99/max)
   while records like Claude Code's (57 KB request, sessions and sub-agents: FTS and roll-ups) are submitted
   at a steady rate, against the same loop with no store, at the interpreter's default switch interval (5 ms)
   and at the policy's (1 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import OUT  # noqa: E402
from bench.store_bench import record  # noqa: E402
from bench.workload import claude_code_request  # noqa: E402
from proxy.exchange.messages import depth  # noqa: E402
from proxy.loop import new_loop  # noqa: E402
from proxy.record import Record, pricing  # noqa: E402
from proxy.store import Store  # noqa: E402
from proxy.store.payloads import serialize_parts  # noqa: E402
from proxy.translate import request as treq  # noqa: E402


def timed(fn, n: int) -> dict[str, float]:
    """Wall ms (median, max) and the thread's CPU ms (median): on a busy machine the wall is stretched."""
    wall, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return {
        "median_ms": round(statistics.median(wall), 4),
        "max_ms": round(max(wall), 4),
        "cpu_median_ms": round(statistics.median(cpu), 4),
    }


def full_record(i: int, rng: random.Random, body: dict, translated: dict) -> Record:
    r = record(i, time.time(), rng, True)
    return r.model_copy(update={"client_request": body, "upstream_request": translated})


def steps() -> dict[str, dict[str, float]]:
    body = claude_code_request(True)
    raw = json.dumps(body).encode()
    target = treq.Target("gemini-2.5-flash", 8192)
    translated = treq.translate(body, target).body
    rec = full_record(1, random.Random(1), body, translated)
    out = {
        "orjson.loads 57 KB request": timed(lambda: orjson.loads(raw), 200),
        "nesting check of the 57 KB body (messages.depth)": timed(lambda: depth(raw), 200),
        "translate 57 KB request (tools memoised)": timed(
            lambda: treq.translate(orjson.loads(raw), target), 200
        ),
        "serialise the record (submit)": timed(lambda: serialize_parts(rec, []), 200),
        "price: the library's computation": timed(
            lambda: pricing.library_cost("gemini-2.5-flash", 15000, 100, 2000, 0), 200
        ),
        "price: cached rates (plain arithmetic)": timed(
            lambda: pricing.rated_cost("gemini-2.5-flash", 15000, 100, 2000, 0), 2000
        ),
    }
    # a gateway's start-up heap: its modules (aiohttp, pydantic, the price library's data) and a Gateway
    from proxy import config as cfg
    from proxy.edge.server import Gateway

    gw = Gateway(
        cfg.from_mapping(
            {"targets": [{"name": "b", "provider": "gemini", "model": "gemini-2.5-flash", "api_key": "k"}]},
            "b",
        )
    )
    out[f"full collection, start-up heap ({len(gc.get_objects())} objects), nothing frozen"] = timed(
        gc.collect, 5
    )
    gc.freeze()
    out["full collection, start-up frozen (the policy)"] = timed(gc.collect, 5)
    gc.unfreeze()
    del gw
    return out


async def probe(seconds: float, submit_every: float, store: Store | None, recs: list[Record]) -> list[float]:
    """How late a 1 ms sleep wakes, ms, while `store` takes a record every `submit_every` s (None: no store)."""
    lags: list[float] = []
    stop = time.monotonic() + seconds

    async def feeder() -> None:
        i = 0
        while time.monotonic() < stop:
            if store is not None:
                r = recs[i % len(recs)]
                store.submit(r.model_copy(update={"id": f"req_{time.monotonic_ns()}_{i}"}))
            i += 1
            await asyncio.sleep(submit_every)

    task = asyncio.ensure_future(feeder())
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - t0) * 1000 - 1)
    await task
    return lags


def writer_share(seconds: float, rate: float) -> dict[str, dict[str, float]]:
    body = claude_code_request(True)
    translated = treq.translate(body, treq.Target("gemini-2.5-flash", 8192)).body
    rng = random.Random(2)
    recs = [full_record(i, rng, body, translated) for i in range(200)]
    out = {}
    for switch in (0.005, 0.001):
        sys.setswitchinterval(switch)
        for with_store in (False, True):
            tmp = Path(tempfile.mkdtemp(prefix="gatewatch-pauses-"))
            store = Store(tmp / "p.db").start() if with_store else None
            loop = new_loop()
            try:
                lags = loop.run_until_complete(probe(seconds, 1 / rate, store, recs))
            finally:
                loop.close()
                if store is not None:
                    store.close(timeout=120)
            lags.sort()
            key = f"switch {switch * 1000:.0f} ms, " + (
                f"store taking {rate:.0f} records/s" if with_store else "no store"
            )
            out[key] = {
                "p50_ms": round(lags[len(lags) // 2], 3),
                "p99_ms": round(lags[int(len(lags) * 0.99)], 3),
                "max_ms": round(lags[-1], 3),
                "samples": len(lags),
            }
            print(
                f"{key:50} lag p50 {out[key]['p50_ms']:.3f} p99 {out[key]['p99_ms']:.3f} max {out[key]['max_ms']:.3f} ms",
                flush=True,
            )
    sys.setswitchinterval(0.005)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rate", type=float, default=300, help="records submitted per second")
    args = ap.parse_args()
    result = {"steps": steps()}
    for k, v in result["steps"].items():
        print(
            f"{k:50} median {v['median_ms']:.4f} ms (CPU {v['cpu_median_ms']:.4f})  max {v['max_ms']:.4f} ms"
        )
    result["writer"] = writer_share(args.seconds, args.rate)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pauses.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT / 'pauses.json'}")


if __name__ == "__main__":
    main()
