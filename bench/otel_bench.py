"""What the OpenTelemetry export costs, in-process: CPU per finished call, on the loop and in the exporter.

    python bench/otel_bench.py

A Claude Code-sized record (one attempt, tokens, latencies, a session) is emitted on a bus with only the export
subscribed, exporting to a loopback OTLP/HTTP collector (bench/otlp_sink.py, another process). Per round: N
emits, then a flush; two figures: the emitting thread's CPU during the emits (what a call's event loop pays: a
put on the export's queue) and the whole process's CPU up to the end of the flush (the worker thread's metrics
and spans, the batch processor's encoding and the HTTP posts). `bench/run.py --peers otel` measures it end to end.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.config import OtelSettings  # noqa: E402
from proxy.observe import otel  # noqa: E402
from proxy.record import Attempt, Record, Usage  # noqa: E402
from proxy.record.events import Bus, CallFinished  # noqa: E402

N = 2_000
ROUNDS = 5


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "otlp_sink.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    sink.stdout.readline()
    bus = Bus()
    p = otel.plan(
        OtelSettings(endpoint=f"http://127.0.0.1:{port}", metrics_interval=5, max_queue_size=N * 2), {}
    )
    assert p is not None
    telemetry = otel.Telemetry(bus, p)
    now = time.time()
    rec = Record(
        id="req_x",
        started_at=now,
        ended_at=now + 0.9,
        provider="gemini",
        request_model="claude-sonnet-4-6",
        response_model="gemini-2.5-flash",
        response_id="msg_0123456789abcdef01234567",
        stop_reason="tool_use",
        session_id="5f0c7e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
        request_mode="stream",
        target="studio",
        status=200,
        latency_ms=900,
        llm_latency_ms=850,
        tried_targets=[
            Attempt(
                target="studio",
                provider="gemini",
                model="gemini-2.5-flash",
                host="generativelanguage.example",
                status=200,
                started_ms=20,
                latency_ms=850,
                response_id="a1b2c3d4e5f60718",
            )
        ],
        usage=Usage(input_tokens=40000, output_tokens=500, cache_read_tokens=20000, time_to_first_token=400),
    )
    event = CallFinished(rec)
    try:
        for _ in range(200):
            bus.emit(event)
        telemetry.flush()
        emit, whole = [], []
        for _ in range(ROUNDS):
            t, own = time.process_time(), time.thread_time()
            for _ in range(N):
                bus.emit(event)
            emit.append((time.thread_time() - own) / N * 1e6)  # this thread only: the exporter's excluded
            telemetry.flush()  # on this thread: the encoding and posting of what is left
            whole.append((time.process_time() - t) / N * 1e6)
        emit.sort()
        whole.sort()
        mid = ROUNDS // 2
        print(f"per finished call, on the loop: min {emit[0]:.1f} us, median {emit[mid]:.1f} us CPU")
        print(f"per finished call, with the export: min {whole[0]:.1f} us, median {whole[mid]:.1f} us CPU")
        print(f"spans dropped: {telemetry.counts.dropped}, exported: {telemetry.counts.exported}")
    finally:
        telemetry.close()
        sink.terminate()
        out, _ = sink.communicate(timeout=30)
        print(f"otlp sink took {out.strip()}")


if __name__ == "__main__":
    main()
