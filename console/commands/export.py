"""`gatewatch export`: the records matching a filter, to a file or standard output."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from proxy.reports.export import FORMATS, export_file, without_payloads, write

from . import Subcommands
from .bootstrap import common, die, filter_help, open_reader, parse_filter


def add(sub: Subcommands) -> None:
    e = sub.add_parser("export", help="write the records matching a filter to a file", **filter_help())
    e.add_argument("filter", nargs="*", help="filter terms, e.g. model:flash status:>=400 since:2h")
    e.add_argument("--format", choices=FORMATS, default="json")
    e.add_argument("--output", "-o", help="file to write (default: standard output)")
    e.add_argument(
        "--no-payloads",
        action="store_true",
        help="leave out the request and response bodies (~100 KB per Claude Code call); facts, usage, "
        "timing and the prompt's preview stay",
    )
    common(e, server=False)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    flt = parse_filter([*args.filter, *extra])
    store = open_reader(args)
    records = store.iter_records(flt)
    if args.no_payloads:
        records = without_payloads(records)
    if args.output and args.output != "-":  # `-o -` is standard output, as in curl and tar
        try:
            n = export_file(records, args.format, args.output)
        except OSError as exc:  # a missing folder, a directory: said, not a traceback (or temp name)
            die(f"export: cannot write {Path(args.output).resolve()}: {exc.strerror}")
        print(
            f"exported {n} record{'' if n == 1 else 's'} to {Path(args.output).resolve()} ({args.format})",
            file=sys.stderr,
        )
        return 0
    try:
        write(records, args.format, sys.stdout.buffer)
        sys.stdout.flush()
    except BrokenPipeError:
        # `gatewatch export | head`: the reader had enough. Python's own recipe: point stdout at
        # devnull so the interpreter's final flush doesn't raise again, and exit as a piped tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 0
