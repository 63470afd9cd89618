"""`gatewatch`: the console (default), `serve`, `demo`, `export`, `stats`, `prune`. A thin layer over `proxy`.

Examples:
    gatewatch                                  # console + gateway on 127.0.0.1:8000
    gatewatch serve --port 8000                # headless, one line per call
    gatewatch demo                             # console on a simulated upstream, no credentials
    gatewatch export model:flash since:2h --format kong --output calls.jsonl
    gatewatch stats since:1d
    gatewatch stats --by session --by agent since:1d
    gatewatch prune --older-than 30d
    gatewatch statusline --config gatewatch.toml < claude-code-status.json
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from console.hint import usage_hint
from proxy import config as cfg
from proxy import loop as loops
from proxy import query
from proxy.events import CallFinished
from proxy.export import FORMATS, export_file, write
from proxy.query import parse_duration
from proxy.record import Record
from proxy.service import Service, ServiceError
from proxy.stats import KEYS, Group, aggregate
from proxy.store import Store, StoreError, default_path


def _common(p: argparse.ArgumentParser, server: bool = True) -> None:
    p.add_argument(
        "--db", help="SQLite store (default: $GATEWATCH_DB or $XDG_DATA_HOME/gatewatch/gatewatch.db)"
    )
    if server:
        p.add_argument("--config", help="gatewatch.toml (default: ./gatewatch.toml, else the environment)")
        p.add_argument("--host", help="address to bind (default 127.0.0.1)")
        p.add_argument("--port", type=int, help="port (default 8000)")
        p.add_argument(
            "--insecure", action="store_true", help="allow a non-loopback --host without gateway.auth_token"
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gatewatch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common(p)
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="run the gateway headless, printing one line per call")
    _common(s)
    d = sub.add_parser("demo", help="the console on a simulated Gemini upstream with generated traffic")
    d.add_argument("--db", help="store for the demo (default: a throwaway file)")
    d.add_argument("--port", type=int, default=0, help="gateway port (default: any free one)")
    d.add_argument("--rate", type=float, default=1.5, help="simulated calls per second")
    terms = dict(epilog=query.help_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    e = sub.add_parser("export", help="write the records matching a filter to a file", **terms)
    e.add_argument("filter", nargs="*", help="filter terms, e.g. model:flash status:>=400 since:2h")
    e.add_argument("--format", choices=FORMATS, default="json")
    e.add_argument("--output", "-o", help="file to write (default: standard output)")
    _common(e, server=False)
    st = sub.add_parser(
        "stats", help="requests, errors, tokens, cost and latency per model and per target", **terms
    )
    st.add_argument("filter", nargs="*")
    st.add_argument(
        "--by",
        action="append",
        choices=KEYS,
        help="group by this (repeatable; default: model and target); session/agent: Claude Code's",
    )
    _common(st, server=False)
    # listed for --help; main() hands it to console/statusline.py before parsing (its own two options)
    sub.add_parser("statusline", help="one line for Claude Code's statusLine (reads its JSON on stdin)")
    pr = sub.add_parser("prune", help="delete old records and vacuum")
    pr.add_argument("--older-than", required=True, help="age, e.g. 30d, 12h")
    _common(pr, server=False)
    return p


def _die(msg: str, code: int = 2) -> None:
    print(f"gatewatch: {msg}", file=sys.stderr)
    sys.exit(code)


def load_config(args: argparse.Namespace) -> cfg.Config:
    try:
        return load_config_or_raise(args)
    except cfg.ConfigError as exc:
        _die(f"configuration error:\n{exc}")
    raise AssertionError


def load_config_or_raise(args: argparse.Namespace) -> cfg.Config:
    config = cfg.load(getattr(args, "config", None))
    if getattr(args, "host", None):
        config.gateway.host = args.host
    if getattr(args, "port", None) is not None:
        config.gateway.port = args.port
    return config


def open_store(args: argparse.Namespace, config: cfg.Config | None = None) -> Store:
    path = args.db or (config.store.path if config and config.store.path else None) or default_path()
    try:
        return Store(path, secrets=config.secrets() if config else [])
    except StoreError as exc:
        _die(str(exc))
    raise AssertionError


def call_line(rec: Record) -> str:
    """One line per finished call, for `serve`."""
    u = rec.usage
    t = time.strftime("%H:%M:%S", time.localtime(rec.started_at))
    cost = "$?" if u.cost is None else f"${u.cost:.4f}"
    answer = f"{rec.target}/{rec.response_model}" if rec.target else "-"
    ttft = f" ttft {u.time_to_first_token:.0f}ms" if u.time_to_first_token is not None else ""
    err = f" {rec.error_type}: {rec.error_message}" if rec.error_type else ""
    kind = "count" if rec.kind == "count_tokens" else rec.request_mode
    return (
        f"{t} {rec.status or '---'} {rec.request_model or '?'} → {answer} {kind} in={u.input_tokens} "
        f"out={u.output_tokens} {cost} {rec.latency_ms or 0:.0f}ms{ttft}{err}"
    )


async def serve(config: cfg.Config, store: Store, insecure: bool = False) -> int:
    service = Service(config, store, insecure=insecure)
    service.bus.subscribe(CallFinished, lambda e: print(call_line(e.record), flush=True))
    try:
        url = await service.start()
    except ServiceError as exc:
        await service.stop()
        _die(str(exc), exc.exit_code)
    assert service.gateway is not None
    targets = ", ".join(f"{p.name} ({p.kind} {p.model})" for p in service.gateway.providers)
    print(
        f"gatewatch listening on {url} → {targets}\nstore: {store.path}\nuse:   {usage_hint(url, config)}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print(
        f"gatewatch: stopping; letting {service.in_flight} calls in flight finish…",
        file=sys.stderr,
        flush=True,
    )
    await service.stop()
    print(
        f"gatewatch: stopped; {store.stats.written} records written, {store.stats.lost} lost", file=sys.stderr
    )
    return 0


def _seconds(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None:
        _die(f"--older-than: {text!r} is not a duration like 30d or 12h")
    return seconds


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["statusline"]:
        from console.statusline import main as statusline

        return statusline(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "serve":
        config = load_config(args)
        return loops.run(serve(config, open_store(args, config), args.insecure))
    if args.command in ("export", "stats"):
        try:
            flt = query.parse(" ".join(args.filter))
        except query.QueryError as exc:
            _die(f"filter: {exc}")
        store = open_store(args)
        if args.command == "export":
            records = store.iter_records(flt)
            if args.output:
                n = export_file(records, args.format, args.output)
                print(
                    f"exported {n} records to {Path(args.output).resolve()} ({args.format})", file=sys.stderr
                )
            else:
                write(records, args.format, sys.stdout.buffer)
            return 0
        for by, groups in aggregate(store.summaries(flt), args.by or ("model", "target")).items():
            print(_table(by, groups))
        return 0
    if args.command == "prune":
        n = open_store(args).prune(_seconds(args.older_than))
        print(f"deleted {n} records older than {args.older_than}")
        return 0
    if args.command == "demo":
        from console.demo import run_demo

        return run_demo(args)
    from console.app import run_console

    # The console shows a config problem on screen (and how to fix it) instead of dying before it opens.
    error = None
    try:
        config = load_config_or_raise(args)
    except cfg.ConfigError as exc:
        config, error = cfg.Config(), str(exc)
    return run_console(config, open_store(args, config), config_error=error, insecure=args.insecure)


def _fmt(v: float | None, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "ms":
        return f"{v:.0f}"
    if kind == "cost":
        return f"{v:.4f}"
    return str(v)


def _table(by: str, rows: list[Group]) -> str:
    head = [
        by,
        "requests",
        "errors",
        "in tokens",
        "out tokens",
        "cost $",
        "p50 ms",
        "p95 ms",
        "ttft p50",
        "ttft p95",
    ]
    body = [
        [
            r.key,
            str(r.requests),
            str(r.errors),
            str(r.input_tokens),
            str(r.output_tokens),
            _fmt(r.cost, "cost") + ("+?" if r.cost_unknown else ""),
            _fmt(r.p50_ms, "ms"),
            _fmt(r.p95_ms, "ms"),
            _fmt(r.ttft_p50_ms, "ms"),
            _fmt(r.ttft_p95_ms, "ms"),
        ]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body), ""])


if __name__ == "__main__":
    sys.exit(main())
