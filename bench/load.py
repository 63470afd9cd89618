"""The load generator, run as its own process: N requests at concurrency C against one endpoint, bounded in
count and time. Prints one JSON object: per-request latency and time to first event, and throughput.

    python bench/load.py --kind gateway|direct --url URL --concurrency 10 --requests 500 [--stream] [--body FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp


async def one(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict, stream: bool
) -> tuple[float, float, bool]:
    t0 = time.perf_counter()
    first = None
    ok = False
    async with http.post(url, data=body, headers=headers) as r:
        if stream:
            async for line in r.content:
                if first is None and line.startswith(b"data:"):
                    first = time.perf_counter()
                if b"message_stop" in line or b'"finishReason"' in line:
                    ok = r.status == 200
        else:
            data = await r.read()
            first = time.perf_counter()
            ok = r.status == 200 and len(data) > 0
    end = time.perf_counter()
    return (end - t0) * 1000, ((first or end) - t0) * 1000, ok


async def run(args) -> dict:
    body = open(args.body, "rb").read()
    headers = {"content-type": "application/json"}
    if args.kind == "gateway":
        headers.update({"x-api-key": args.key, "anthropic-version": "2023-06-01"})
    elif args.kind == "direct":
        headers["x-goog-api-key"] = "bench-key"
    lat: list[float] = []
    ttfe: list[float] = []
    errors = 0
    conn = aiohttp.TCPConnector(limit=args.concurrency)
    deadline = time.monotonic() + args.max_seconds
    async with aiohttp.ClientSession(connector=conn) as http:
        # warm the connections (not counted)
        await asyncio.gather(
            *(one(http, args.url, body, headers, args.stream) for _ in range(args.concurrency))
        )
        queue = iter(range(args.requests))
        t0 = time.perf_counter()

        async def worker():
            nonlocal errors
            for _ in queue:
                if time.monotonic() > deadline:
                    return
                try:
                    total, first, ok = await one(http, args.url, body, headers, args.stream)
                except aiohttp.ClientError:
                    errors += 1
                    continue
                if not ok:
                    errors += 1
                lat.append(total)
                ttfe.append(first)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - t0
    return {"latency_ms": lat, "ttfe_ms": ttfe, "errors": errors, "wall_s": wall, "done": len(lat)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--key", default="bench")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=60)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()
    json.dump(asyncio.run(run(args)), sys.stdout)


if __name__ == "__main__":
    main()
