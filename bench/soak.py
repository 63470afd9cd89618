"""Memory under a long soak (issue 26): `gatewatch serve`'s RSS before and after 20,000 calls, for this tree
and another (e.g. main before the collector policy), one after the other on the same stand-in.

    git archive a936226 | (mkdir -p /tmp/gw-before && tar -x -C /tmp/gw-before)
    python bench/soak.py --other /tmp/gw-before          # ~2 x 3 minutes on an idle machine
    python bench/soak.py --calls 2000                     # a smoke run, this tree only

Each gateway: SQLite store, payloads kept, the 57 KB Claude-Code-shaped request one-shot (or `--small`), c=10,
in rounds of 2,000 calls; VmRSS after start, after each round, and after 15 s idle (the policy's idle full
collection has run by then), and VmHWM. Figures for both trees in bench/out/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import OUT, Standin, free_port, load, pinned, rss_mb, wait_port  # noqa: E402
from bench.workload import claude_code_request, small_request  # noqa: E402


def soak(tree: Path, standin: Standin, body: Path, calls: int, tmp: Path) -> dict:
    port = free_port()
    cfg = tmp / f"soak-{port}.toml"
    cfg.write_text(
        f'[gateway]\nport = {port}\n[[targets]]\nname = "bench"\nprovider = "gemini"\n'
        f'model = "gemini-2.5-flash"\napi_key = "bench-key"\napi_endpoint = "{standin.url}"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(tree), "XDG_DATA_HOME": str(tmp / f"xdg-{port}")}
    cmd = [
        sys.executable,
        "-m",
        "console.cli",
        "serve",
        "--config",
        str(cfg),
        "--db",
        str(tmp / f"{port}.db"),
    ]
    proc = subprocess.Popen(
        pinned(cmd, 1), cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_port(port)
        time.sleep(1)
        row: dict = {"tree": str(tree), "rss_start_mb": rss_mb(proc.pid), "rounds": []}
        done = errors = 0
        url = f"http://127.0.0.1:{port}/v1/messages"
        while done < calls:
            n = min(2000, calls - done)
            r = _load(url, body, n)
            done += r["done"]
            errors += r["errors"]
            row["rounds"].append({"calls": done, "rss_mb": rss_mb(proc.pid)})
            print(
                f"  {tree.name or tree}: {done} calls, RSS {row['rounds'][-1]['rss_mb']:.1f} MB", flush=True
            )
        row["rss_after_mb"] = row["rounds"][-1]["rss_mb"]
        time.sleep(15)
        row.update(rss_idle_after_mb=rss_mb(proc.pid), rss_peak_mb=rss_mb(proc.pid, "VmHWM"))
        row.update(calls=done, errors=errors)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    row["stopped"] = err.decode().strip().splitlines()[-1] if err else ""
    return row


def _load(url: str, body: Path, n: int) -> dict:
    r = load("gateway", url, body, 10, n, False)
    return {"done": r["done"], "errors": r["errors"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--other", default="", help="another tree to soak the same way, first")
    ap.add_argument("--small", action="store_true", help="the small request instead of the 57 KB one")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gatewatch-soak-"))
    body = tmp / "body.json"
    body.write_bytes(json.dumps((small_request if args.small else claude_code_request)(False)).encode())
    standin = Standin(100, 20, 0.0)
    results = []
    try:
        for tree in [Path(args.other)] * bool(args.other) + [ROOT]:
            results.append(soak(tree.resolve(), standin, body, args.calls, tmp))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "rounds"}), flush=True)
    finally:
        standin.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {OUT / 'soak.json'}")


if __name__ == "__main__":
    main()
