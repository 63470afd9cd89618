"""A fast loopback Gemini stand-in for the benchmarks: fixed answer size, chunk count and inter-chunk delay.

python bench/standin.py --port 9100 --words 100 --chunks 20 --chunk-delay 0
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from proxy.simulator import GeminiSimulator, Reply  # noqa: E402


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--words", type=int, default=100)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--chunk-delay", type=float, default=0.0)
    a = p.parse_args()
    text = " ".join(f"word{i}" for i in range(a.words))

    @web.middleware
    async def access_log(request, handler):  # GW_ACCESS_LOG=1: see what a peer asks for
        print(request.method, request.path_qs, file=sys.stderr, flush=True)
        return await handler(request)

    sim = GeminiSimulator(
        api_key="bench-key",
        responder=lambda body: Reply.text(
            text, chunks=a.chunks, chunk_delay=a.chunk_delay, prompt_tokens=15000
        ),
        middlewares=[access_log] if os.environ.get("GW_ACCESS_LOG") else [],
        keep=0,
    )
    sim.require_auth = False
    await sim.start(port=a.port)
    # The stand-in is the measuring apparatus: Google's servers don't pause for our interpreter, so its own
    # full collections (46-90 ms, every few thousand calls) must not show up as the gateway's stream gaps
    # (issue 26). What start-up made is frozen and automatic full collections are off; the young generations,
    # where a request's cycles die, still run, and a bench run is minutes long.
    gc.collect()
    gc.freeze()
    gc.set_threshold(gc.get_threshold()[0], gc.get_threshold()[1], 1_000_000_000)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
