"""A fast loopback Gemini stand-in for the benchmarks: fixed answer size, chunk count and inter-chunk delay.

    python bench/standin.py --port 9100 --words 100 --chunks 20 --chunk-delay 0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

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
    sim = GeminiSimulator(api_key="bench-key",
                          responder=lambda body: Reply.text(text, chunks=a.chunks, chunk_delay=a.chunk_delay,
                                                            prompt_tokens=15000))
    sim.require_auth = False
    if os.environ.get("GW_ACCESS_LOG"):  # debugging a peer: print what it asks for
        from aiohttp import web as _web

        @_web.middleware
        async def log_mw(request, handler):
            print(request.method, request.path_qs, file=sys.stderr, flush=True)
            return await handler(request)
        sim.app_middlewares = [log_mw]
    await sim.start(port=a.port)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
