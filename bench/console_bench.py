"""Does the open console slow the calls it watches? `gatewatch serve` against the same gateway inside the
console, in one run, alternating, on the same stand-in and the same request.

    python bench/console_bench.py                    # 6 rounds of each, 100 calls a round, c=4 (~6 minutes)
    python bench/console_bench.py --peers ccr        # claude-code-router 2.0.0 beside them, in the same run
    python bench/console_bench.py --rounds 2 --requests 60

The console runs for real: `gatewatch --config …` in a tmux window of 200×50 (a real terminal, so every repaint
is drawn), with its history and panes refreshing as the calls arrive. The stand-in answers 20 SSE chunks 20 ms
apart; the request is the 57 KB Claude-Code-shaped one of `bench/workload.py`, streamed, 4 at a time.
Per call: time to first SSE event (TTFE) and the worst gap between two SSE events (the upstream sends one
every 20 ms: anything above is a pause of the gateway's own, issue 26). Reported: p50, p99 and max of each,
for serve, the console and any peer, and console − serve. Pinning as in `bench/run.py`: the gateway (either kind) on
CPU 1, the stand-in and this load on CPU 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import OUT, PIN, ClaudeCodeRouter, Standin, cpu_seconds, free_port, pct, pinned, wait_port  # noqa: E402
from bench.workload import claude_code_request  # noqa: E402

SIZE = (200, 50)


def write_config(tmp: Path, port: int, standin_url: str) -> Path:
    cfg = tmp / f"console-bench-{port}.toml"
    cfg.write_text(
        f"""
[gateway]
port = {port}
[[targets]]
name = "bench"
provider = "gemini"
model = "gemini-2.5-flash"
api_key = "bench-key"
api_endpoint = "{standin_url}"
"""
    )
    return cfg


class Serve:
    name = "serve"

    def __init__(self, standin: Standin, tmp: Path) -> None:
        self.port = free_port()
        cfg = write_config(tmp, self.port, standin.url)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [
            sys.executable,
            "-m",
            "console.cli",
            "serve",
            "--config",
            str(cfg),
            "--db",
            str(tmp / "serve.db"),
        ]
        self.proc = subprocess.Popen(
            pinned(cmd, 1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}/v1/messages"

    def stop(self) -> None:
        self.proc.send_signal(2)
        self.proc.wait(30)


class CCR(ClaudeCodeRouter):
    """claude-code-router 2.0.0 on the same stand-in (bench/run.py installs it into bench/out/peers)."""

    name = "claude-code-router"


class Console:
    """The console in a tmux session of its own, sized like a wide terminal beside Claude Code."""

    name = "console"

    def __init__(self, standin: Standin, tmp: Path) -> None:
        self.port = free_port()
        cfg = write_config(tmp, self.port, standin.url)
        self.session = f"gwbench{self.port}"
        cmd = " ".join(
            pinned(
                [sys.executable, "-m", "console.cli", "--config", str(cfg), "--db", str(tmp / "console.db")],
                1,
            )
        )
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.session, "-x", str(SIZE[0]), "-y", str(SIZE[1]),
             f"cd {ROOT} && TERM=xterm-256color PYTHONPATH={ROOT} {cmd}"],
            check=True,
        )  # fmt: skip
        wait_port(self.port, 60)
        self.url = f"http://127.0.0.1:{self.port}/v1/messages"
        time.sleep(2)  # the first screen is drawn

    def pid(self) -> int | None:
        """The console's Python process (tmux runs it under a shell)."""
        for stat in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = stat.read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                argv
                and b"python" in Path(argv[0].decode()).name.encode()
                and any(f"console-bench-{self.port}.toml".encode() in a for a in argv)
            ):
                return int(stat.parent.name)
        return None

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True, text=True
        )
        return out.stdout

    def stop(self) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, "q"], check=False)
        for _ in range(100):
            if subprocess.run(["tmux", "has-session", "-t", self.session], capture_output=True).returncode:
                return
            time.sleep(0.1)
        subprocess.run(["tmux", "kill-session", "-t", self.session], check=False)


async def one(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[float, float, bool]:
    """(time to first event, worst gap between events, ok) of one streamed call, in ms."""
    headers = {"content-type": "application/json", "x-api-key": "bench", "anthropic-version": "2023-06-01"}
    t0 = time.perf_counter()
    last = None
    first = None
    gap = 0.0
    ok = False
    async with http.post(url, data=body, headers=headers) as r:
        async for line in r.content:
            if not line.startswith(b"data:"):
                continue
            now = time.perf_counter()
            if first is None:
                first = now
            elif last is not None:
                gap = max(gap, now - last)
            last = now
            if b"message_stop" in line:
                ok = r.status == 200
    return ((first or time.perf_counter()) - t0) * 1000, gap * 1000, ok


async def load(url: str, body: bytes, concurrency: int, requests: int) -> dict[str, list[float] | int]:
    ttfe: list[float] = []
    gaps: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await asyncio.gather(*(one(http, url, body) for _ in range(concurrency)))  # warm, not counted
        todo = iter(range(requests))

        async def worker() -> None:
            nonlocal errors
            for _ in todo:
                first, gap, ok = await one(http, url, body)
                if not ok:
                    errors += 1
                ttfe.append(first)
                gaps.append(gap)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"ttfe_ms": ttfe, "gap_ms": gaps, "errors": errors}


def thread_cpu(pid: int) -> tuple[float, float]:
    """(the main thread's, every thread's) CPU seconds: the console's main thread is its screen's."""
    main = total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu = cpu_seconds(pid, task / "stat")
        except OSError:  # a thread that ended meanwhile
            continue
        total += cpu
        if int(task.name) == pid:
            main = cpu
    return main, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--peers", default="", help="also these, alternating with the others: ccr")
    ap.add_argument("--out", default="console.json", help="the JSON's name in bench/out")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    if not shutil.which("tmux"):
        sys.exit("tmux not found: apt-get install tmux")
    if PIN:
        # This load runs on CPU 0 with the stand-in, as the docstring says (it ran unpinned, beside the gateway).
        os.sched_setaffinity(0, {0})
    tmp = Path(tempfile.mkdtemp(prefix="gatewatch-console-bench-"))
    body = json.dumps(claude_code_request(True)).encode()
    print(f"request {len(body) / 1024:.1f} KB, c={args.concurrency}, pinned: {PIN}", flush=True)
    standin = Standin(100, 20, 0.020)
    kinds: list[type] = [Serve, Console] + [CCR for p in args.peers.split(",") if p.strip() == "ccr"]
    pooled: dict[str, dict[str, list[float]]] = {k.name: {"ttfe_ms": [], "gap_ms": []} for k in kinds}
    errors = {k.name: 0 for k in kinds}
    screen_ms: list[float] = []  # the console's screen thread, CPU ms per call, a round each
    rest_ms: list[float] = []  # its other threads (the gateway's loop, the writer)
    serve_ms: list[float] = []  # `serve`, all its threads
    try:
        for i in range(args.rounds):
            for kind in kinds:  # alternate, so drift on the machine hits all alike
                gw = kind(standin, tmp)
                pid = gw.pid() if isinstance(gw, Console) else None
                try:
                    before = thread_cpu(pid) if pid else (0.0, 0.0)
                    serve_cpu = cpu_seconds(gw.proc.pid) if isinstance(gw, Serve) else 0.0
                    r = asyncio.run(load(gw.url, body, args.concurrency, args.requests))
                    if isinstance(gw, Serve):
                        n = max(1, len(r["ttfe_ms"]))  # type: ignore[arg-type]
                        serve_ms.append((cpu_seconds(gw.proc.pid) - serve_cpu) * 1000 / n)
                    if pid:
                        after = thread_cpu(pid)
                        n = max(1, len(r["ttfe_ms"]))  # type: ignore[arg-type]
                        screen_ms.append((after[0] - before[0]) * 1000 / n)
                        rest_ms.append((after[1] - after[0] - before[1] + before[0]) * 1000 / n)
                    if isinstance(gw, Console) and i == 0:
                        (tmp / "console-screen.txt").write_text(gw.screen())
                finally:
                    gw.stop()
                for k in ("ttfe_ms", "gap_ms"):
                    pooled[kind.name][k] += r[k]  # type: ignore[operator]
                errors[kind.name] += int(r["errors"])  # type: ignore[call-overload]
                print(
                    f"round {i + 1} {kind.name:18} ttfe p99 {pct(r['ttfe_ms'], 0.99):6.1f} ms  "  # type: ignore[arg-type]
                    f"gap p99 {pct(r['gap_ms'], 0.99):6.1f} max {max(r['gap_ms']):6.1f} ms  "  # type: ignore[arg-type]
                    f"errors {r['errors']}"
                    + (f"  screen {screen_ms[-1]:.2f} other {rest_ms[-1]:.2f} CPU ms/call" if pid else "")
                    + (f"  {serve_ms[-1]:.2f} CPU ms/call" if isinstance(gw, Serve) else ""),
                    flush=True,
                )
    finally:
        standin.stop()
    row = {}
    for kind, v in pooled.items():
        for k in ("ttfe_ms", "gap_ms"):
            for q in (0.5, 0.99):
                row[f"{kind}_{k}_p{int(q * 100)}"] = pct(v[k], q)
            row[f"{kind}_{k}_max"] = max(v[k], default=float("nan"))
        row[f"{kind}_calls"] = len(v["ttfe_ms"])
        row[f"{kind}_errors"] = errors[kind]
    for k in ("ttfe_ms", "gap_ms"):
        row[f"added_{k}_p99"] = row[f"console_{k}_p99"] - row[f"serve_{k}_p99"]
    if screen_ms:
        row["console_screen_cpu_ms_per_call"] = sorted(screen_ms)[len(screen_ms) // 2]
        row["console_other_threads_cpu_ms_per_call"] = sorted(rest_ms)[len(rest_ms) // 2]
    if serve_ms:
        row["serve_cpu_ms_per_call"] = sorted(serve_ms)[len(serve_ms) // 2]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / args.out).write_text(json.dumps(row, indent=1))
    print(f"{'':18} {'TTFE p50':>9} {'TTFE p99':>9} {'gap p50':>8} {'gap p99':>8} {'gap max':>8}")
    for kind in pooled:
        print(
            f"{kind:18} "
            + " ".join(
                f"{row[f'{kind}_{k}']:{w}.1f}"
                for k, w in (
                    ("ttfe_ms_p50", 9),
                    ("ttfe_ms_p99", 9),
                    ("gap_ms_p50", 8),
                    ("gap_ms_p99", 8),
                    ("gap_ms_max", 8),
                )
            )
        )
    print(json.dumps(row, indent=1))
    print(f"last console screen: {tmp / 'console-screen.txt'}")


if __name__ == "__main__":
    main()
