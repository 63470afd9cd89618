"""A loopback OTLP/HTTP collector for the benchmarks: takes every export, decodes it, counts its spans.

python bench/otlp_sink.py --port 4318      # prints "ready"; on SIGTERM prints the spans and exports it took
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    took = {"spans": 0, "trace_exports": 0, "metric_exports": 0}

    async def traces(request: web.Request) -> web.Response:
        req = ExportTraceServiceRequest.FromString(await request.read())
        took["spans"] += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        took["trace_exports"] += 1
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    async def metrics(request: web.Request) -> web.Response:
        ExportMetricsServiceRequest.FromString(await request.read())
        took["metric_exports"] += 1
        return web.Response(
            body=ExportMetricsServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", a.port).start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    print(took, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
