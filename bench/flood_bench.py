"""The gateway's memory under a flood of 1 MB bodies: `gatewatch serve` (a real process, a real SQLite store, every
payload kept) behind a loopback Gemini stand-in, `--clients` clients each sending 1 MB requests back to back for
`--seconds`. The gateway's RSS is sampled from /proc twice a second; the run ends when the store holds every
record. The writer's backlog is bounded in bytes (proxy/store/writer.py BACKLOG_BYTES): what waits beyond it is
held by the journal on disk, so RSS stays flat however far the writer falls behind.

    python bench/flood_bench.py                     # 60 s, 8 clients (the issue's figures)
    python bench/flood_bench.py --lock              # the database locked throughout: every record waits
    python bench/flood_bench.py --code /work/main   # another checkout, to compare
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.simulator import GeminiSimulator, Reply  # noqa: E402

MB = 1024 * 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def client(session: aiohttp.ClientSession, url: str, until: float, n: int, sent: list[int]) -> None:
    i = 0
    while time.monotonic() < until:
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": f"{n}-{i} " + "x" * MB}],
        }
        async with session.post(url + "/v1/messages", json=body) as resp:
            await resp.read()
            if resp.status == 200:
                sent[0] += 1
        i += 1


async def run(args: argparse.Namespace) -> dict[str, object]:
    sim = GeminiSimulator(api_key="bench-key", responder=lambda body: Reply.text("ok", prompt_tokens=300_000))
    fake = await sim.start()
    tmp = Path(tempfile.mkdtemp(prefix="gw-flood-"))
    port = free_port()
    config = tmp / "gatewatch.toml"
    config.write_text(
        f'[gateway]\nport = {port}\n[store]\npath = "{tmp / "f.db"}"\n'
        f'[[targets]]\nname = "flash"\nprovider = "gemini"\nmodel = "gemini-2.5-flash"\n'
        f'api_key = "bench-key"\napi_endpoint = "{fake}"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(args.code), "XDG_DATA_HOME": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "serve", "--config", str(config)],
        env=env,
        cwd=args.code,  # `-m` puts the working directory first on the path: the checkout named, not this one
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    samples: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.head(url + "/"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            base = rss_mb(proc.pid)
            sent = [0]
            until = time.monotonic() + args.seconds

            async def sample() -> None:
                while True:
                    samples.append(rss_mb(proc.pid))
                    await asyncio.sleep(0.5)

            sampler = asyncio.ensure_future(sample())
            lock = None
            if args.lock:  # the database is locked for the whole flood: the writer falls behind, all of it
                lock = sqlite3.connect(tmp / "f.db", isolation_level=None)
                lock.execute("BEGIN EXCLUSIVE")
            await asyncio.gather(*(client(session, url, until, n, sent) for n in range(args.clients)))
            flood_end = time.monotonic()
            peak_during = max(samples)
            if lock is not None:
                lock.execute("ROLLBACK")
                lock.close()
            while True:  # the drain: until the store holds every record
                with sqlite3.connect(tmp / "f.db") as db:
                    stored = db.execute("SELECT count(*) FROM records").fetchone()[0]
                if stored >= sent[0]:
                    break
                await asyncio.sleep(0.5)
            drained_s = time.monotonic() - flood_end
            sampler.cancel()
            after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        await sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # a locked 60 s flood leaves ~1.5 GB of database
    return {
        "code": str(args.code),
        "seconds": args.seconds,
        "clients": args.clients,
        "calls": sent[0],
        "rss_start_mb": round(base, 1),
        "locked": args.lock,
        "rss_peak_during_flood_mb": round(peak_during, 1),
        "rss_peak_mb": round(max(samples), 1),
        "rss_after_drain_mb": round(after, 1),
        "drain_s": round(drained_s, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--json", help="also write the figures here")
    p.add_argument(
        "--lock", action="store_true", help="hold the database locked during the flood (an outage)"
    )
    p.add_argument(
        "--code", type=Path, default=ROOT, help="the gatewatch checkout to serve (default: this one)"
    )
    args = p.parse_args()
    out = asyncio.run(run(args))
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
