"""`gatewatch replay`: a stored call (or the calls of a filter) sent again to another target, and compared
(console/replay.py does it)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from proxy import loop as loops

from . import Subcommands
from .bootstrap import common, die, filter_help, open_reader, reader_config, store_path

LIMIT_MAX = 1000
"""calls one filter replay may send: each is admitted and reserved against the budget like any call, and a
replay of more is a script's job"""
CONCURRENCY_MAX = 16


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return n


def _bounded(most: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        n = _positive(text)
        if n > most:
            raise argparse.ArgumentTypeError(f"{n} is more than {most}, the most gatewatch replay takes")
        return n

    return parse


def add(sub: Subcommands) -> None:
    rp = sub.add_parser(
        "replay",
        help="send a stored call (or the calls of a filter) again to another target, and compare",
        **filter_help(),
    )
    rp.add_argument(
        "what", nargs="+", metavar="ID|FILTER", help="a call's id (or its unambiguous start), or a filter"
    )
    rp.add_argument(
        "--target", required=True, metavar="NAME", help="the target to send it to (a name in the config)"
    )
    rp.add_argument(
        "--model", metavar="M", help="the model to ask the target for (default: the target's own)"
    )
    rp.add_argument(
        "--limit",
        type=_bounded(LIMIT_MAX),
        default=10,
        metavar="N",
        help=f"a filter replays its newest N calls (default 10, at most {LIMIT_MAX})",
    )
    rp.add_argument(
        "--concurrency",
        type=_bounded(CONCURRENCY_MAX),
        default=4,
        metavar="K",
        help=f"calls in flight at once (default 4, at most {CONCURRENCY_MAX}); each is reserved "
        "against the budget like any call",
    )
    rp.add_argument("--yes", "-y", action="store_true", help="send without asking (the replay spends money)")
    rp.add_argument(
        "--attach",
        metavar="URL",
        default=None,
        help="replay through the gatewatch at URL (default: the one "
        "listening where the config says, else one hosted for the replay)",
    )
    common(rp, server=False)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from console import replay
    from proxy.reports.replay import NotReplayable

    args.what = [*args.what, *extra]
    store = open_reader(args)
    config = reader_config(args)
    try:
        return loops.run(replay.run(args, config, store, store_path(args, config)[0]))
    except (replay.Refused, NotReplayable) as exc:
        die(str(exc), 1)
