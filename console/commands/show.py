"""`gatewatch show ID`: what the gateway did to one call (the console's Translation tab, in the terminal)."""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from proxy.money import usd
from proxy.record import Record
from proxy.reports.inspection import inspect
from proxy.store import RecordStore
from proxy.translate.notes import legend

from . import Subcommands
from .bootstrap import common, die, open_reader


def add(sub: Subcommands) -> None:
    sh = sub.add_parser(
        "show",
        help="what the gateway did to one call: its translation notes, the client request beside the upstream "
        "request, and for a failed call the upstream's error beside the client's",
        epilog=legend(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sh.add_argument("id", help="the call's id, or an unambiguous prefix of it (req_3f2a)")
    sh.add_argument("--json", action="store_true", help="print it as JSON")
    common(sh, server=False)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    return show(open_reader(args), args.id, args.json)


def show(store: RecordStore, wanted: str, as_json: bool) -> int:
    ids = store.ids(wanted, limit=3) if wanted else []
    if not ids:
        die(f"no call with an id starting {wanted!r} in this database")
    if len(ids) > 1 and wanted not in ids:
        more = ", ".join(ids[:2]) + (", …" if len(ids) > 2 else "")
        die(f"{wanted!r} names more than one call ({more}): give more of the id")
    rec = store.get(wanted if wanted in ids else ids[0])
    if rec is None:
        die(f"{ids[0]}: the record could not be read")
    view = inspect(rec)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(view.as_json(), option=orjson.OPT_INDENT_2, default=str) + b"\n")
        return 0
    import io
    import shutil

    from rich.console import Console

    from console.translation import translation

    tty = sys.stdout.isatty()
    out = Console(
        file=io.StringIO(),
        record=True,
        highlight=False,
        width=shutil.get_terminal_size().columns,
        force_terminal=tty,
    )
    out.print(heading(rec))
    out.print(translation(view))
    text = out.export_text(styles=tty)
    sys.stdout.write("\n".join(line.rstrip() for line in text.splitlines()) + "\n")
    return 0


def heading(rec: Record) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.started_at))
    answered = f"{rec.target} ({rec.response_model})" if rec.target else "no target"
    line = f"call {rec.id} · {when} · {rec.status or '---'} · {rec.request_model or '?'} → {answered}\n"
    if rec.prompt_id:  # Claude Code's telemetry joined this call: its turn and its own estimate
        est = f" · Claude Code's estimate {usd(rec.cc_cost)}" if rec.cc_cost is not None else ""
        billed = f" · billed by Google {usd(rec.usage.cost)}" if rec.usage.cost is not None else ""
        src = f" · {rec.query_source}" if rec.query_source else ""
        line += f"turn {rec.prompt_id}{src}{est}{billed}\n"
    return line
