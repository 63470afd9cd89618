"""The floor a Python gateway can reach: a bare aiohttp relay, no translation, no record, no metrics.

    python bench/floor.py --port 9000 --upstream http://127.0.0.1:8001

Every POST is forwarded to the same path at the upstream (body and query unchanged); a whole answer is sent
back in one write, a stream's bytes as they arrive (chunked), on uvloop where installed, as the gateway runs. `bench/run.py
--peers floor` measures gatewatch ÷ this beside gatewatch ÷ claude-code-router.
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    a = p.parse_args()
    session: aiohttp.ClientSession | None = None

    async def relay(request: web.Request) -> web.StreamResponse:
        assert session is not None
        body = await request.read()
        headers = {
            "content-type": "application/json",
            "x-goog-api-key": request.headers.get("x-goog-api-key", ""),
        }
        async with session.post(a.upstream + request.path_qs, data=body, headers=headers) as up:
            if "event-stream" not in up.headers.get("content-type", ""):  # a whole answer: one write
                return web.Response(body=await up.read(), status=up.status, content_type="application/json")
            out = web.StreamResponse(status=up.status, headers={"content-type": up.headers["content-type"]})
            out.enable_chunked_encoding()
            await out.prepare(request)
            async for data in up.content.iter_any():
                await out.write(data)
            await out.write_eof()
            return out

    async def ctx(app: web.Application):
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        yield
        await session.close()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.cleanup_ctx.append(ctx)
    app.router.add_post("/{tail:.*}", relay)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
