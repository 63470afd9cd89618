"""The store's speed and the console's: records/s written, filter and search latency at 100k (and 1M) records,
the session ledger's reads (the Sessions view, one session's roll-up, today's spend) and `gatewatch
statusline` (in process and as the command Claude Code runs), console open time and search time at 100k,
event-loop lag while 20 calls stream through the console's gateway.

    python bench/store_bench.py            # 100k records
    python bench/store_bench.py --big      # also 1M records, without payloads (a few minutes)
    python bench/store_bench.py --big --no-console   # the store and ledger figures only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.record import Attempt, Record, Usage  # noqa: E402
from proxy.store import Store  # noqa: E402
from proxy.store.query import EVERYTHING, parse  # noqa: E402

OUT = ROOT / "bench" / "out"
WORDS = "fix test build router store retry cache schema token stream bananas deploy lint refactor".split()
PAYLOAD = {
    "model": "claude-opus-5-5",
    "max_tokens": 32000,
    "messages": [{"role": "user", "content": "x" * 2000}],
    "system": "y" * 2000,
}


def record(i: int, t0: float, rng: random.Random, payload: bool) -> Record:
    model = rng.choice(["claude-opus-5-5", "claude-haiku-5-5", "gemini-2.5-pro"])
    status = rng.choices([200, 429, 500], [95, 4, 1])[0]
    return Record(
        id=f"req_{i:08d}",
        started_at=t0 + i * 0.5,
        ended_at=t0 + i * 0.5 + 1,
        status=status,
        request_model=model,
        response_model="gemini-2.5-flash",
        target=rng.choice(["vertex-flash", "studio"]),
        provider="vertex",
        request_mode=rng.choice(["stream", "oneshot"]),
        session_id=f"s{i // 40}",
        # the last ten calls of each 40-call session are a sub-agent's, spawned by the session's 30th
        agent_id=f"a{i // 40}" if i % 40 >= 30 else None,
        spawned=[f"task {i // 40}"] if i % 40 == 29 else [],
        preview=" ".join(rng.choice(WORDS) for _ in range(8)) + f" #{i}",
        response_text=" ".join(rng.choice(WORDS) for _ in range(20)),
        usage=Usage(
            input_tokens=rng.randint(1000, 60000),
            output_tokens=rng.randint(10, 2000),
            cost=rng.random() / 100,
            time_to_first_token=rng.uniform(100, 2000),
        ),
        latency_ms=rng.uniform(200, 9000),
        tools_used=rng.sample(["Bash", "Read", "Edit", "Grep"], rng.randint(0, 2)),
        tried_targets=[
            Attempt(
                target="vertex-flash",
                provider="vertex",
                model="gemini-2.5-flash",
                status=status,
                latency_ms=100,
            )
        ],
        error_type=None if status == 200 else "api_error",
        client_request=PAYLOAD if payload else None,
        response={"content": [{"type": "text", "text": "ok"}]},
    )


def timed(fn, n: int = 5) -> float:
    """Median ms over n runs."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def store_figures(n: int, tmp: Path, payload: bool = True) -> dict:
    rng = random.Random(1)
    t0 = time.time() - n * 0.5
    recs = [record(i, t0, rng, payload=payload) for i in range(n)]
    store = Store(tmp / f"s{n}.db").start()
    t = time.perf_counter()
    for r in recs:
        store.submit(r)
    submit_s = time.perf_counter() - t
    store.close(timeout=3600)  # wait for the writer: the default 10 s would leave records in the journal
    wall = time.perf_counter() - t
    del recs
    reader = Store(tmp / f"s{n}.db")
    queries = {
        "count all": lambda: reader.count(),
        "first page": lambda: reader.page(EVERYTHING, 100),
        "page 50 (keyset)": None,
        "model:haiku page": lambda: reader.page(parse("model:haiku"), 100),
        "status:>=400 page": lambda: reader.page(parse("status:>=400"), 100),
        "since:1h page": lambda: reader.page(parse("since:1h"), 100),
        "tool:Bash cost>0.005 page": lambda: reader.page(parse("tool:Bash cost>0.005"), 100),
        "free text 'bananas' page": lambda: reader.page(parse("bananas"), 100),
        "free text + count": lambda: reader.count(parse("bananas deploy")),
    }
    first = reader.page(EVERYTHING, 100)
    last = first[-1]
    deep = reader.page(EVERYTHING, 100, offset=4900)[-1]
    queries["page 50 (keyset)"] = lambda: reader.page(EVERYTHING, 100, after=deep)
    lat = {name: round(timed(fn), 2) for name, fn in queries.items()}
    lat.update(ledger_figures(reader, n))
    size = sum(p.stat().st_size for p in tmp.glob(f"s{n}.db*"))
    del last
    return {
        "records": n,
        "payloads": payload,
        "submit_us_per_record": round(submit_s / n * 1e6, 1),
        "records_per_s_committed": round(n / wall),
        "db_mb": round(size / 1e6),
        "query_ms": lat,
    }


def ledger_figures(reader: Store, n: int) -> dict:
    """The session roll-ups against what they replace (an aggregate over the records, indexed by session),
    and the statusline in process and as a command."""
    from proxy.reports import statusline

    sid = f"s{(n - 1) // 40 // 2}"  # a session from the middle of the store
    conn = reader.reader()

    def aggregate() -> None:
        conn.execute(
            "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost), min(started_at), "
            "max(started_at), group_concat(DISTINCT request_model) FROM records WHERE session_id = ?",
            (sid,),
        ).fetchone()

    def sessions_from_records() -> None:
        conn.execute(
            "SELECT session_id, max(started_at) AS last, count(*), sum(cost) FROM records "
            "WHERE session_id IS NOT NULL GROUP BY session_id ORDER BY last DESC LIMIT 100"
        ).fetchall()

    day0 = time.mktime(time.localtime()[:3] + (0, 0, 0, 0, 0, -1))

    def spend_from_records() -> None:
        conn.execute("SELECT sum(cost) FROM records WHERE started_at >= ?", (day0,)).fetchone()

    def sessions_view() -> None:
        for s in reader.sessions(100):
            reader.agents(s.session_id)

    out = {
        "ledger: sessions view (100 sessions + their agents)": round(timed(sessions_view), 2),
        "ledger: one session's roll-up": round(timed(lambda: reader.session(sid), 20), 3),
        "(the same from the records: indexed aggregate)": round(timed(aggregate, 20), 3),
        "(the sessions list from the records: GROUP BY)": round(timed(sessions_from_records, 3), 2),
        "ledger: spend today": round(timed(reader.spend_today, 20), 3),
        "(the same from the records: sum over today's range)": round(timed(spend_from_records, 5), 2),
        "statusline in process (read + line)": round(
            timed(lambda: statusline.line(statusline.read(reader.path, sid)), 20), 3
        ),
    }
    stdin = json.dumps({"session_id": sid, "model": {"id": "gemini-2.5-flash"}})
    cmd = [sys.executable, "-c", "import sys; from console.entry import main; sys.exit(main())", "statusline"]
    # bytecode cached, as an installed gatewatch has it (this machine's shells may turn caching off)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(ROOT)}
    import subprocess

    def command() -> None:
        subprocess.run([*cmd, "--db", str(reader.path)], input=stdin, text=True, capture_output=True, env=env)

    command()  # compile and cache the modules' bytecode, as an installed gatewatch has it
    out["statusline command (process start to exit)"] = round(timed(command, 10), 1)
    bare = [sys.executable, "-c", "pass"]
    out["(python3 -c pass, for scale)"] = round(
        timed(lambda: subprocess.run(bare, capture_output=True, env=env), 10), 1
    )
    return out


def rollup_cost(tmp: Path, n: int = 20_000, rounds: int = 3) -> dict:
    """What keeping the roll-ups costs the writer: the same records committed with the ledger's `roll_up` and
    with it replaced by a no-op, alternately in one run (so both meet the same machine load)."""
    from proxy.store import ledger

    rng = random.Random(3)
    recs = [record(i, time.time() - n, rng, payload=False) for i in range(n)]
    real = ledger.roll_up
    times: dict[str, list[float]] = {"with roll-ups": [], "without": []}
    for k in range(rounds):
        for label in ("with roll-ups", "without"):
            ledger.roll_up = real if label == "with roll-ups" else (lambda conn, records: None)
            store = Store(tmp / f"ab{k}{label[:4]}.db").start()
            t = time.perf_counter()
            for r in recs:
                store.submit(r)
            store.close(timeout=3600)
            times[label].append(time.perf_counter() - t)
    ledger.roll_up = real
    return {f"committed records/s ({label})": round(n / statistics.median(v)) for label, v in times.items()}


async def loop_lag_during_streams(url: str, n: int) -> list[float]:
    """ms by which a 10 ms sleep overshoots while n streams run through the gateway at `url`."""
    import anthropic

    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t1 = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - t1 - 0.01) * 1000)

    async def one(client) -> None:
        async with client.messages.stream(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        ) as s_:
            await s_.get_final_message()

    tick = asyncio.create_task(ticker())
    client = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
    await asyncio.gather(*(one(client) for _ in range(n)))
    done.set()
    await tick
    await client.close()
    return lags


async def console_figures(tmp: Path) -> dict:
    """Open the console on the 100k store, search it, and measure loop lag during 20 concurrent streams."""
    from console.app import GatewatchApp
    from console.history import HistoryTable
    from proxy import config as cfg
    from proxy.simulator import GeminiSimulator, Reply

    sim = GeminiSimulator(
        api_key="k", responder=lambda b: Reply.text("w " * 100, chunks=20, chunk_delay=0.02)
    )
    await sim.start()
    config = cfg.from_mapping(
        {
            "targets": [
                {
                    "name": "t",
                    "provider": "gemini",
                    "model": "gemini-2.5-flash",
                    "api_key": "k",
                    "api_endpoint": sim.url,
                }
            ]
        },
        "bench",
        {},
    )
    out = {}
    for label, db in (("100 records", tmp / "small.db"), ("100k records", tmp / "s100000.db")):
        if label == "100 records":
            s = Store(db).start()
            rng = random.Random(2)
            for i in range(100):
                s.submit(record(i, time.time() - 100, rng, payload=False))
            s.close()
        for attempt in ("first", "again"):  # the first open may meet a cold page cache
            app = GatewatchApp(config, Store(db))
            t = time.perf_counter()
            async with app.run_test(size=(140, 40)) as pilot:
                table = app.query_one(HistoryTable)
                while table.row_count == 0:
                    await pilot.pause(0.005)
                out[f"open ms ({label}, {attempt})"] = round((time.perf_counter() - t) * 1000)
                if attempt == "first":
                    await app.shutdown()
        app = GatewatchApp(config, Store(db))
        async with app.run_test(size=(140, 40)) as pilot:
            table = app.query_one(HistoryTable)
            while table.row_count == 0:
                await pilot.pause(0.005)
            t = time.perf_counter()
            await table.load(parse("bananas")).wait()
            out[f"search ms ({label})"] = round((time.perf_counter() - t) * 1000)
            await table.load(EVERYTHING).wait()
            if label == "100k records":
                lags = await loop_lag_during_streams(app.url, 20)
                lags.sort()
                out["loop lag while 20 streams (ms) p50/p99/max"] = [
                    round(lags[len(lags) // 2], 2),
                    round(lags[int(len(lags) * 0.99)], 2),
                    round(lags[-1], 2),
                ]
            await app.shutdown()
    await sim.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--no-console", action="store_true", help="skip the console figures")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gatewatch-store-bench-"))
    results = {"rollup_cost": rollup_cost(tmp)}
    print(json.dumps(results["rollup_cost"]), flush=True)
    results["store"] = [store_figures(100_000, tmp)]
    print(json.dumps(results["store"][-1]), flush=True)
    if args.big:
        # 1M records with payloads would be ~6.6 GB; the index and query figures don't depend on them
        results["store"].append(store_figures(1_000_000, tmp, payload=False))
        print(json.dumps(results["store"][-1]), flush=True)
    if not args.no_console:
        results["console"] = asyncio.run(console_figures(tmp))
        print(json.dumps(results["console"]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "store.json").write_text(json.dumps(results, indent=1))
    os.system(f"rm -rf {tmp}")


if __name__ == "__main__":
    main()
