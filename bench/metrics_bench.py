"""What `/metrics` costs, in-process: CPU per finished call of the subscriber that counts it, and per scrape.

    python bench/metrics_bench.py

A Claude Code-sized record (one attempt, tokens, cost, latencies) is emitted on a bus with only the metrics
subscribed, 200,000 times per round, five rounds; the figure is process CPU time per emit. `bench/run.py --peers
nometrics` measures the same end to end (the gateway with `gateway.metrics = false` beside the default), where
the difference is below the run's noise.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.observe.metrics import Metrics  # noqa: E402
from proxy.record import Attempt, Record, Usage  # noqa: E402
from proxy.record.events import Bus, CallFinished  # noqa: E402

N = 200_000


def main() -> None:
    bus = Bus()
    metrics = Metrics(bus)
    rec = Record(
        id="x",
        started_at=time.time(),
        provider="gemini",
        response_model="gemini-2.5-flash",
        request_mode="stream",
        target="studio",
        latency_ms=900,
        llm_latency_ms=850,
        tried_targets=[Attempt(target="studio", provider="gemini", model="gemini-2.5-flash", status=200)],
        usage=Usage(
            input_tokens=40000,
            output_tokens=500,
            cache_read_tokens=20000,
            total_tokens=60500,
            cost=0.02,
            time_to_first_token=400,
            time_per_token=8,
        ),
    )
    event = CallFinished(rec)
    for _ in range(1000):
        bus.emit(event)
    rounds = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(N):
            bus.emit(event)
        rounds.append((time.process_time() - t) / N * 1e6)
    rounds.sort()
    print(f"per finished call: min {rounds[0]:.2f} us, median {rounds[2]:.2f} us CPU")
    t = time.process_time()
    for _ in range(1000):
        body = metrics.exposition()
    print(f"per scrape: {time.process_time() - t:.3f} ms CPU ({len(body)} bytes, one label set)")


if __name__ == "__main__":
    main()
