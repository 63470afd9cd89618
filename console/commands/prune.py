"""`gatewatch prune --older-than 30d`: delete old records and vacuum."""

from __future__ import annotations

import argparse

from proxy.money import plural
from proxy.store.query import parse_duration

from . import Subcommands
from .bootstrap import common, die, open_reader


def add(sub: Subcommands) -> None:
    pr = sub.add_parser("prune", help="delete old records and vacuum")
    pr.add_argument("--older-than", required=True, help="age, e.g. 30d, 12h")
    common(pr, server=False)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    seconds = parse_duration(args.older_than)
    if seconds is None:
        die(f"--older-than: {args.older_than!r} is not a duration like 30d or 12h")
    if seconds <= 0:  # `0d` would delete every record, an hour's calls too: never by accident
        die(f"--older-than {args.older_than}: give an age above zero (e.g. 30d); nothing was deleted")
    n = open_reader(args).prune(seconds)
    print(f"deleted {plural(n, 'record')} older than {args.older_than}")
    return 0
