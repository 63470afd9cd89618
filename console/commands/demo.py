"""`gatewatch demo`: the console on a simulated Gemini upstream with generated traffic (console/demo.py)."""

from __future__ import annotations

import argparse

from . import Subcommands


def add(sub: Subcommands) -> None:
    d = sub.add_parser("demo", help="the console on a simulated Gemini upstream with generated traffic")
    d.add_argument("--db", default=argparse.SUPPRESS, help="store for the demo (default: a throwaway file)")
    d.add_argument("--port", type=int, default=0, help="gateway port (default: any free one)")
    d.add_argument("--rate", type=float, default=1.5, help="simulated calls per second")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from console.demo import run_demo

    return run_demo(args)
