"""Gateway overhead against a direct call to the same Gemini stand-in, measured alternately in one run.

    python bench/run.py                 # gatewatch vs direct, every scenario (~4 minutes)
    python bench/run.py --peers         # also claude-code-router and LiteLLM, installed into bench/out/peers
    python bench/run.py --peers ccr     # only the peers named (ccr, litellm, asyncio, nometrics, otel,
                                        # postgres: comma-separated)
    python bench/run.py --quick         # fewer requests, for a smoke run

Processes: the stand-in and the load generator on CPU 0, the gateway under test on CPU 1 (taskset), all on
loopback. The peers of a scenario are all started first and take their rounds in turn (direct, peer, direct,
next peer…, the order rotated each round), so a VM slowing for a while slows each peer's share alike. Recording
is on (a real SQLite store, payloads kept). Figures: p50/p99 latency, time to first event,
requests/s, gateway CPU ms per request (from /proc), gateway RSS; each as added ms and as the ratio to direct.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import claude_code_request, small_request  # noqa: E402
from proxy.translate import request as treq  # noqa: E402

OUT = ROOT / "bench" / "out"
CLK = os.sysconf("SC_CLK_TCK")
PIN = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if PIN else cmd


def wait_port(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int, stat: Path | None = None) -> float:
    """A process's CPU (utime + stime) from /proc; `stat`: another stat file (one of its threads')."""
    fields = (stat or Path(f"/proc/{pid}/stat")).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


class Standin:
    def __init__(self, words: int, chunks: int, delay: float):
        self.port = free_port()
        self.proc = subprocess.Popen(
            pinned(
                [
                    sys.executable,
                    str(ROOT / "bench" / "standin.py"),
                    "--port",
                    str(self.port),
                    "--words",
                    str(words),
                    "--chunks",
                    str(chunks),
                    "--chunk-delay",
                    str(delay),
                ],
                0,
            ),
            stdout=subprocess.PIPE,
        )
        self.proc.stdout.readline()
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


class Gatewatch:
    name = "gatewatch"
    loop = ""  # the default: uvloop where installed (proxy/loop.py)
    gateway = ""  # more [gateway] settings
    sections = ""  # more config sections, after the target
    tree = ROOT  # the source tree it runs from

    def db(self, tmp: Path) -> str:
        """--db: the store it records into"""
        return str(tmp / "bench.db")

    def server_cpu(self) -> float:
        """CPU seconds of the processes besides the gateway that do its store's work (none for SQLite)."""
        return 0.0

    def __init__(self, standin: Standin, tmp: Path):
        self.port = free_port()
        cfg = tmp / "bench.toml"
        cfg.write_text(f"""
[gateway]
port = {self.port}
{self.gateway}
[[targets]]
name = "bench"
provider = "gemini"
model = "gemini-2.5-flash"
api_key = "bench-key"
api_endpoint = "{standin.url}"
{self.sections}""")
        env = {**os.environ, "PYTHONPATH": str(self.tree), "XDG_DATA_HOME": str(tmp / "xdg")}
        if self.loop:
            env["GATEWATCH_LOOP"] = self.loop
        self.proc = subprocess.Popen(
            pinned(
                [
                    sys.executable,
                    "-m",
                    "console.cli",
                    "serve",
                    "--config",
                    str(cfg),
                    "--db",
                    self.db(tmp),
                ],
                1,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.tree,
        )
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}/v1/messages"
        self.pid = self.proc.pid

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


class GatewatchBefore(Gatewatch):
    """Another source tree of gatewatch, e.g. main before a change (`--peers before`, the tree in
    `BENCH_BEFORE`: `git archive <commit> | tar -x -C /tmp/gw-before`)."""

    name = "gatewatch-before"
    tree = Path(os.environ.get("BENCH_BEFORE", "/tmp/gw-before"))


class GatewatchAsyncio(Gatewatch):
    """The same gateway on asyncio's own loop, to see what uvloop buys (`--peers asyncio`)."""

    name = "gatewatch-asyncio"
    loop = "asyncio"


class GatewatchNoMetrics(Gatewatch):
    """The same gateway with `gateway.metrics = false`, to see what counting for /metrics costs
    (`--peers nometrics`; the ratio printed is metrics on ÷ off)."""

    name = "gatewatch-nometrics"
    gateway = "metrics = false"


class GatewatchOtel(Gatewatch):
    """The same gateway exporting OpenTelemetry GenAI spans and metrics to a loopback OTLP/HTTP collector
    (bench/otlp_sink.py, on the load generator's CPU), to see what the export costs (`--peers otel`; the ratio
    printed is off ÷ on). Needs the otel extra."""

    name = "gatewatch-otel"

    def __init__(self, standin: Standin, tmp: Path):
        sink_port = free_port()
        self.sink = subprocess.Popen(
            pinned([sys.executable, str(ROOT / "bench" / "otlp_sink.py"), "--port", str(sink_port)], 0),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.sink.stdout is not None
        self.sink.stdout.readline()
        # metrics every 5 s rather than the default 60, so a run's figures include their export
        self.sections = f'[otel]\nendpoint = "http://127.0.0.1:{sink_port}"\nmetrics_interval = 5\n'
        try:
            super().__init__(standin, tmp)
        except BaseException:
            self.sink.terminate()
            raise

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.sink.terminate()
            out, _ = self.sink.communicate(timeout=30)
            print(f"  otlp sink took {out.strip()}", flush=True)


class GatewatchPostgres(Gatewatch):
    """The same gateway recording into a PostgreSQL store instead of the SQLite default (`--peers postgres`):
    a server of its own from Debian's postgresql, made in a temporary directory as the tests make theirs
    (tests/pg.py), with a new database per scenario. Its CPU per request adds the PostgreSQL server's
    processes (`server_cpu`), which do the work SQLite does inside the gateway."""

    name = "gatewatch-postgres"
    _server: Any = None

    def db(self, tmp: Path) -> str:
        if GatewatchPostgres._server is None:
            from tests.pg import Server

            GatewatchPostgres._server = Server().start()
            atexit.register(GatewatchPostgres._server.remove)
        return str(GatewatchPostgres._server.fresh_url())

    def server_cpu(self) -> float:
        """The postmaster and every process it started (backends, WAL writer, checkpointer…)."""
        postmaster = int((GatewatchPostgres._server.data / "postmaster.pid").read_text().split()[0])
        total = cpu_seconds(postmaster)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == postmaster:
                    total += (int(stat[11]) + int(stat[12])) / CLK
            except (OSError, ValueError):
                continue
        return total


class ClaudeCodeRouter:
    """npm @musistudio/claude-code-router, gemini transformer, isolated HOME (see the peers notes)."""

    name = "claude-code-router"

    def __init__(self, standin: Standin, tmp: Path):
        base = OUT / "peers" / "ccr"
        cli = base / "node_modules" / "@musistudio" / "claude-code-router" / "dist" / "cli.js"
        if not cli.exists():
            base.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["npm", "install", "--silent", "--prefix", str(base), "@musistudio/claude-code-router@2.0.0"],
                check=True,
                timeout=600,
            )
        home = tmp / "ccr-home"
        (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (home / ".claude-code-router" / "config.json").write_text(
            json.dumps(
                {
                    "LOG": False,
                    "HOST": "127.0.0.1",
                    "PORT": self.port,
                    "APIKEY": "",
                    "NON_INTERACTIVE_MODE": True,
                    "Providers": [
                        {
                            "name": "gemini",
                            "api_base_url": f"{standin.url}/v1beta/models/",
                            "api_key": "bench-key",
                            "models": ["gemini-2.5-flash"],
                            "transformer": {"use": ["gemini"]},
                        }
                    ],
                    "Router": {"default": "gemini,gemini-2.5-flash"},
                }
            )
        )
        self.proc = subprocess.Popen(
            pinned(["node", str(cli), "start"], 1),
            env={**os.environ, "HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(self.port, 60)
        # `ccr start` may fork the server: measure the process that holds the port
        self.pid = _listener_pid(self.port) or self.proc.pid
        self.url = f"http://127.0.0.1:{self.port}/v1/messages"

    def stop(self) -> None:
        for pid in {self.pid, self.proc.pid}:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.proc.wait(30)


class LiteLLM:
    """LiteLLM's proxy in its own venv, Anthropic /v1/messages → gemini/… at the stand-in."""

    name = "litellm"

    def __init__(self, standin: Standin, tmp: Path):
        venv = OUT / "peers" / "litellm-venv"
        exe = venv / "bin" / "litellm"
        if not exe.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "--quiet", "litellm[proxy]", "google-auth"],
                check=True,
                timeout=1200,
            )
        self.port = free_port()
        cfg = tmp / "litellm.yaml"
        cfg.write_text(f"""
model_list:
  - model_name: claude-opus-5-5
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: {standin.url}/v1beta
      api_key: bench-key
general_settings:
  master_key: sk-bench
  disable_spend_logs: true
""")
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(
            LITELLM_TELEMETRY_DISABLED="true",
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS="True",
            LITELLM_LOCAL_AUTOROUTER_PRESETS="True",
            LITELLM_LOG="ERROR",
        )
        self.proc = subprocess.Popen(
            pinned(
                [
                    str(exe),
                    "--config",
                    str(cfg),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--num_workers",
                    "1",
                ],
                1,
            ),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 120)
        self.pid = _listener_pid(self.port) or self.proc.pid
        self.url = f"http://127.0.0.1:{self.port}/v1/messages"
        self.key = "sk-bench"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class Floor:
    """A bare aiohttp relay (bench/floor.py: no translation, no record) in front of the same stand-in: the floor
    a Python gateway can reach. The load sends it the Gemini request, as to the stand-in directly."""

    name = "floor"
    direct = True  # it takes the direct client's (Gemini) request

    def __init__(self, standin: Standin, tmp: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            pinned(
                [
                    sys.executable,
                    str(ROOT / "bench" / "floor.py"),
                    "--port",
                    str(self.port),
                    "--upstream",
                    standin.url,
                ],
                1,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_port(self.port)
        self.pid = self.proc.pid
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = ""  # per scenario: the stand-in's path (`direct_path`)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _listener_pid(port: int) -> int | None:
    """The pid listening on a loopback port, from /proc (no extra tools needed)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1].endswith(f":{port:04X}") and parts[3] == "0A":
            inode = parts[9]
    if inode is None:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    return None


def load(kind: str, url: str, body: Path, c: int, n: int, stream: bool, key: str = "bench") -> dict:
    cmd = pinned(
        [
            sys.executable,
            str(ROOT / "bench" / "load.py"),
            "--kind",
            kind,
            "--url",
            url,
            "--body",
            str(body),
            "--concurrency",
            str(c),
            "--requests",
            str(n),
            "--key",
            key,
            "--max-seconds",
            "45",
        ]
        + (["--stream"] if stream else []),
        0,
    )
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


def valid_anthropic_stream(url: str, body: bytes, key: str) -> str:
    """Check that a peer's stream is a valid Anthropic event sequence (with the official SDK's accumulator)."""
    import anthropic

    client = anthropic.Anthropic(base_url=url.removesuffix("/v1/messages"), api_key=key, max_retries=0)
    req = json.loads(body)
    try:
        with client.messages.stream(model=req["model"], max_tokens=1000, messages=req["messages"]) as s:
            events = list(s)
            final = s.get_final_message()
        types = [ev.type for ev in events]
        ok = types[0] == "message_start" and types[-1] == "message_stop" and final.content
        start_in = events[0].message.usage.input_tokens if ok else None
        return (
            (
                f"valid ({len(types)} events; message_start input_tokens={start_in}, final "
                f"input_tokens={final.usage.input_tokens})"
            )
            if ok
            else f"invalid: {types[:5]}"
        )
    except Exception as exc:  # a peer's failure is a finding, not a crash of the bench
        return f"invalid: {type(exc).__name__}: {exc}"


SCENARIOS = [
    # name, concurrency, requests, stream, chunk delay (s), upstream chunks
    ("c1 oneshot", 1, 300, False, 0.0, 20),
    ("c1 stream", 1, 300, True, 0.0, 20),
    ("c10 oneshot", 10, 1000, False, 0.0, 20),
    ("c10 stream 10ms chunks", 10, 300, True, 0.010, 20),
    # a long answer, chunks unbatched as a real model sends them: the per-chunk cost dominates here
    ("c10 stream 200x10ms chunks", 10, 100, True, 0.010, 200),
    ("c50 oneshot", 50, 2000, False, 0.0, 20),
    ("c50 stream", 50, 1500, True, 0.0, 20),
]
PEERS = {
    "ccr": ClaudeCodeRouter,
    "litellm": LiteLLM,
    "asyncio": GatewatchAsyncio,
    "nometrics": GatewatchNoMetrics,
    "otel": GatewatchOtel,
    "postgres": GatewatchPostgres,
    "floor": Floor,
    "before": GatewatchBefore,
}
SIZES = ("small", "57KB")
"""the request: Claude Code's small calls (`small_request`, ~0.6 KB) and its big turns (57 KB)"""


def ratios(results: list[dict]) -> None:
    """gatewatch CPU per request ÷ each peer's, per scenario (the goal is ≤ 0.5 against claude-code-router)."""
    ours = {
        r["scenario"]: r["cpu_ms_per_req"] for r in results if r["peer"] == "gatewatch" and "error" not in r
    }
    for r in results:
        if r["peer"] != "gatewatch" and "error" not in r and r["scenario"] in ours:
            print(
                f"{r['scenario']:28} gatewatch {ours[r['scenario']]:.2f} ms ÷ {r['peer']} "
                f"{r['cpu_ms_per_req']:.2f} ms = {ours[r['scenario']] / r['cpu_ms_per_req']:.2f}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--peers",
        nargs="?",
        const="ccr,litellm",
        default="",
        help="also run these peers (comma-separated: ccr, litellm, asyncio, nometrics, otel, postgres; bare "
        "--peers runs ccr and litellm)",
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="run only the scenarios whose name contains this")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--sizes", default="57KB", help="request sizes, comma-separated: small (~0.6 KB), 57KB (the default)"
    )
    ap.add_argument(
        "--netns",
        action="store_true",
        help="run everything in a fresh network namespace with only loopback (needs root)",
    )
    args = ap.parse_args()
    if args.netns and not os.environ.get("GW_IN_NETNS"):
        # Nothing in the run can reach beyond this machine: a namespace of its own with lo up and no routes.
        # Peers must be installed first (a run without --netns installs them).
        rest = [a for a in sys.argv[1:] if a != "--netns"]
        cmd = (
            f"ip link set lo up && GW_IN_NETNS=1 exec {sys.executable} {Path(__file__).resolve()} "
            + " ".join(rest)
        )
        os.execvp("unshare", ["unshare", "--net", "sh", "-c", cmd])
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gatewatch-bench-"))
    sizes = [z.strip() for z in args.sizes.split(",") if z.strip()]
    make = {"small": small_request, "57KB": claude_code_request}
    anth = {(z, s): tmp / f"anthropic-{z}-{s}.json" for z in sizes for s in ("stream", "oneshot")}
    gem = {z: tmp / f"gemini-{z}.json" for z in sizes}
    for (z, s), p in anth.items():
        p.write_bytes(json.dumps(make[z](s == "stream")).encode())
    for z, p in gem.items():
        p.write_bytes(
            json.dumps(treq.translate(make[z](False), treq.Target("gemini-2.5-flash", 8192)).body).encode()
        )
        print(
            f"request {z}: {anth[(z, 'stream')].stat().st_size / 1024:.1f} KB Anthropic, "
            f"{p.stat().st_size / 1024:.1f} KB Gemini; pinned: {PIN}",
            flush=True,
        )
    results: list[dict] = []
    peers: list[type] = [Gatewatch] + [PEERS[p.strip()] for p in args.peers.split(",") if p.strip()]
    for (base, c, n, stream, delay, chunks), size in [(sc, z) for sc in SCENARIOS for z in sizes]:
        name = base if size == "57KB" and len(sizes) == 1 else f"{base} {size}"
        if args.only not in name:
            continue
        if args.quick:
            n = max(c * 5, n // 10)
        standin = Standin(100 if chunks <= 100 else 5 * chunks, chunks, delay)
        try:
            direct_url = f"{standin.url}/v1beta/models/gemini-2.5-flash:" + (
                "streamGenerateContent?alt=sse" if stream else "generateContent"
            )
            # Every peer is started first, then the rounds go peer by peer in turn (the order rotated each
            # round): a VM that slows for a minute slows every peer's share of the run alike, where one peer's
            # rounds after another's would put the whole slowdown on one side of the ratio.
            alive: list[Any] = []
            for peer_cls in peers:
                try:
                    peer = peer_cls(standin, tmp)
                except Exception as exc:
                    results.append(
                        {"scenario": name, "peer": peer_cls.name, "error": f"cannot run here: {exc}"}
                    )
                    print(f"{name}: {peer_cls.name} cannot run here: {exc}", flush=True)
                    continue
                alive.append(peer)
            try:
                runs = {}
                for peer in alive:
                    if getattr(peer, "direct", False):  # the floor: the Gemini request, the stand-in's path
                        peer.url = peer.base + direct_url.removeprefix(standin.url)
                    runs[peer.name] = {
                        "peer": peer,
                        "idle_rss": rss_mb(peer.pid),
                        "key": getattr(peer, "key", "bench"),
                        "d": {"latency_ms": [], "ttfe_ms": [], "wall": 0.0, "done": 0, "errors": 0},
                        "g": {"latency_ms": [], "ttfe_ms": [], "wall": 0.0, "done": 0, "errors": 0},
                        "cpu": 0.0,
                        "server_cpu": 0.0,
                    }
                for i in range(args.rounds):  # alternate: direct, peer, direct, next peer…
                    order = alive[i % len(alive) :] + alive[: i % len(alive)] if alive else []
                    for peer in order:
                        run = runs[peer.name]
                        d, g = run["d"], run["g"]
                        r = load("direct", direct_url, gem[size], c, n, stream)
                        for k in ("latency_ms", "ttfe_ms"):
                            d[k] += r[k]
                        d["wall"] += r["wall_s"]
                        d["done"] += r["done"]
                        d["errors"] += r["errors"]
                        c0, s0 = cpu_seconds(peer.pid), getattr(peer, "server_cpu", lambda: 0.0)()
                        if getattr(peer, "direct", False):
                            r = load("direct", peer.url, gem[size], c, n, stream)
                        else:
                            r = load(
                                "gateway",
                                peer.url,
                                anth[(size, "stream" if stream else "oneshot")],
                                c,
                                n,
                                stream,
                                run["key"],
                            )
                        # the store's last batch (BATCH_WAIT_BUSY 250 ms) is committed in the count
                        time.sleep(0.5)
                        run["cpu"] += cpu_seconds(peer.pid) - c0
                        run["server_cpu"] += getattr(peer, "server_cpu", lambda: 0.0)() - s0
                        for k in ("latency_ms", "ttfe_ms"):
                            g[k] += r[k]
                        g["wall"] += r["wall_s"]
                        g["done"] += r["done"]
                        g["errors"] += r["errors"]
                for peer in alive:
                    run = runs[peer.name]
                    d, g, cpu, server_cpu = run["d"], run["g"], run["cpu"], run["server_cpu"]
                    row = {
                        "scenario": name,
                        "size": size,
                        "peer": peer.name,
                        "requests": g["done"],
                        "errors": g["errors"],
                        "direct_p50": pct(d["latency_ms"], 0.5),
                        "gw_p50": pct(g["latency_ms"], 0.5),
                        "direct_p99": pct(d["latency_ms"], 0.99),
                        "gw_p99": pct(g["latency_ms"], 0.99),
                        "direct_ttfe": pct(d["ttfe_ms"], 0.5),
                        "gw_ttfe": pct(g["ttfe_ms"], 0.5),
                        "direct_rps": d["done"] / d["wall"],
                        "gw_rps": g["done"] / g["wall"],
                        "cpu_ms_per_req": 1000 * cpu / max(1, g["done"] + args.rounds * c),
                        "server_cpu_ms_per_req": 1000 * server_cpu / max(1, g["done"] + args.rounds * c),
                        "rss_idle_mb": run["idle_rss"],
                        "rss_peak_mb": rss_mb(peer.pid, "VmHWM"),
                    }
                    if stream and base == "c1 stream" and peer.name not in ("gatewatch", "floor"):
                        row["stream_check"] = valid_anthropic_stream(
                            peer.url, anth[(size, "stream")].read_bytes(), run["key"]
                        )
                    results.append(row)
                    print(
                        f"{name:28} {peer.name:18} p50 +{row['gw_p50'] - row['direct_p50']:.2f} ms "
                        f"(x{row['gw_p50'] / row['direct_p50']:.2f}) p99 +{row['gw_p99'] - row['direct_p99']:.2f} "
                        f"ttfe +{row['gw_ttfe'] - row['direct_ttfe']:.2f} ms rps {row['gw_rps']:.0f}/"
                        f"{row['direct_rps']:.0f} cpu {row['cpu_ms_per_req']:.2f} ms/req "
                        f"rss {row['rss_idle_mb']:.0f}→{row['rss_peak_mb']:.0f} MB errors {row['errors']}"
                        + (
                            f" + store server cpu {server_cpu_ms:.2f} ms/req"
                            if (server_cpu_ms := row["server_cpu_ms_per_req"])
                            else ""
                        ),
                        flush=True,
                    )
            finally:
                for peer in alive:
                    peer.stop()
        finally:
            standin.stop()
    ratios(results)
    (OUT / "gateway.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {OUT / 'gateway.json'}")


if __name__ == "__main__":
    main()
