"""`gatewatch serve`: the gateway headless, one line per call."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import TextIO

from proxy import config as cfg
from proxy import loop as loops
from proxy.exchange.credentials import Check
from proxy.money import usd
from proxy.record import Record
from proxy.record.events import CallFinished
from proxy.service import NO_TARGET, Service, ServiceError
from proxy.store import RecordStore

from . import Subcommands
from .bootstrap import common, die, load_config, open_store


def add(sub: Subcommands) -> None:
    s = sub.add_parser("serve", help="run the gateway headless, printing one line per call")
    common(s)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    config = load_config(args)
    if not config.targets:  # said before the store is opened: a serve that can't start creates nothing
        die(NO_TARGET)
    return loops.run(serve(config, open_store(args, config), args.insecure))


_clock: tuple[int, str] = (-1, "")
"""the last second `call_line` wrote, and how: calls in the same second share it (no localtime each)"""


def _hms(at: float) -> str:
    global _clock
    second = int(at)
    if _clock[0] != second:
        _clock = (second, time.strftime("%H:%M:%S", time.localtime(second)))
    return _clock[1]


def call_line(rec: Record) -> str:
    """One line per finished call."""
    u = rec.usage
    t = _hms(rec.started_at)
    cost = usd(u.cost)
    answer = f"{rec.target}/{rec.response_model}" if rec.target else "-"
    ttft = f" ttft {u.time_to_first_token:.0f}ms" if u.time_to_first_token is not None else ""
    err = f" {rec.error_type}: {rec.error_message}" if rec.error_type else ""
    kind = "count" if rec.kind == "count_tokens" else rec.request_mode
    return (
        f"{t} {rec.status or '---'} {rec.request_model or '?'} → {answer} {kind} in={u.input_tokens} "
        f"out={u.output_tokens} {cost} {rec.latency_ms or 0:.0f}ms{ttft}{err}"
    )


class Lines:
    """`serve`'s line per finished call, written to `out`. A terminal gets each line at once; a pipe or a file
    gets the lines of one loop turn in one write on the loop's next turn (a flush per line was a write(2) per
    call), before the loop waits for anything, so a line is never held back; `flush` at exit."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        """None: no stdout (started with it closed), or a reader that went away (a broken pipe): no lines"""
        self.tty = out is not None and out.isatty()
        self._due = False

    def __call__(self, event: CallFinished) -> None:
        if self.out is None:
            return
        try:
            self.out.write(call_line(event.record) + "\n")
        except OSError:  # as `print` to a closed reader: the gateway goes on without its lines
            self.out = None
            return
        if self.tty:
            self.flush()
        elif not self._due:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on a loop: nothing would come back to flush it
                self.flush()
                return
            self._due = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._due = False
        if self.out is None:
            return
        try:
            self.out.flush()
        except (
            OSError
        ):  # `gatewatch serve | head`, head gone: the lines stop, the gateway and its records don't
            self.out = None


async def reread_budget(service: Service) -> None:
    """SIGHUP: the config file's `[budget]` applied now, as the file watch applies a change it sees; said on
    stderr."""
    source = service.config.source
    if not os.path.isfile(source):
        print(
            f"gatewatch: SIGHUP: no config file to read again (the config is from {source})",
            file=sys.stderr,
            flush=True,
        )
        return
    if await service.reload_budget():
        b = service.config.budget
        caps = [f"{k} = {v}" for k, v in (("daily_usd", b.daily_usd), ("session_usd", b.session_usd)) if v]
        said = f"[budget] of {source} in force: {', '.join(caps) or 'no cap'}"
    else:
        said = f"{source} can't be used (the warning above says why); the budget in force stays"
    print(f"gatewatch: SIGHUP: {said}", file=sys.stderr, flush=True)


def check_lines(checks: list[Check]) -> list[str]:
    """One line per target's credential check at start."""
    mark = {"ok": "ok", "refused": "REFUSED", "unchecked": "not checked"}
    tail = {"refused": " (tried after every other target until it answers)", "ok": "", "unchecked": ""}
    return [f"credentials of {c.target}: {mark[c.state]}: {c.detail}{tail[c.state]}" for c in checks]


async def serve(config: cfg.Config, store: RecordStore, insecure: bool = False) -> int:
    from console.hint import usage_hint
    from console.remote import discover

    running = await asyncio.to_thread(discover, config)
    if running:
        die(
            f"a gatewatch is already listening at {running}: run `gatewatch` to watch it, or start this one "
            f"with --port {config.gateway.port + 1}"
        )
    service = Service(config, store, insecure=insecure)
    # printed after the call's last bytes left, not before: no call waits for its line
    lines = Lines(sys.stdout)
    service.bus.subscribe(CallFinished, lines, later=True)
    try:
        url = await service.start()
    except ServiceError as exc:
        await service.stop()
        die(str(exc), exc.exit_code)
    assert service.gateway is not None
    # before the "listening" line: a supervisor may stop it as soon as it reads that line, and must get a clean stop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    rereads: set[asyncio.Task[None]] = set()  # kept until done (the loop holds tasks only weakly)
    terminals = [fd for fd in (0, 1, 2) if os.isatty(fd)]

    def hangup() -> None:
        if any(not os.isatty(fd) for fd in terminals):
            # the terminal serve runs in was closed (a hung-up terminal answers no more): stop, as SIGHUP's
            # default did, but drained and flushed; a `kill -HUP` finds the terminal there and rereads
            stop.set()
            return
        task = loop.create_task(reread_budget(service))
        rereads.add(task)
        task.add_done_callback(rereads.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    targets = ", ".join(f"{p.name} ({p.kind} {p.model})" for p in service.gateway.providers)
    print(
        f"gatewatch listening on {url} → {targets}\nstore: {store.where}\nuse:   {usage_hint(url, config)}",
        flush=True,
    )
    for line in check_lines(service.checks):
        print(line, flush=True)
    if service.telemetry is not None:
        print(f"otel:  spans and metrics to {service.telemetry.plan.where} (OTLP/HTTP)", flush=True)
    await stop.wait()
    print(
        f"gatewatch: stopping; letting {service.in_flight} calls in flight finish…",
        file=sys.stderr,
        flush=True,
    )
    await service.stop()
    lines.flush()  # the last calls' lines, before the closing words on stderr
    print(
        f"gatewatch: stopped; {store.stats.written} records written, {store.stats.lost} lost", file=sys.stderr
    )
    return 0
