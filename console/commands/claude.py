"""`gatewatch claude`: Claude Code through the running gateway, set up for a target (console/claude.py builds
its environment). Everything after `claude` is Claude Code's: console/cli.py hands it over unparsed."""

from __future__ import annotations

import argparse
import os

from proxy import config as cfg

from . import Subcommands
from .bootstrap import die, load_config


def add(sub: Subcommands) -> None:
    sub.add_parser(
        "claude",
        help="run Claude Code (`claude` on PATH) through the running gateway, set up for a target "
        "(`--target NAME` first; the rest goes to claude)",
        add_help=False,
    )


def run(args: argparse.Namespace, extra: list[str]) -> int:
    """Claude Code with the environment for the chosen target, against the gateway that listens where the
    config says (or `--attach URL`); `extra`: `--target NAME`, then Claude Code's own arguments."""
    from console import claude as cc
    from console.remote import local_url, probe

    if extra[:1] in (["--help"], ["-h"]):
        print(cc.HELP, end="")
        return 0
    config = load_config(args)
    name, rest = cc.split_target(extra)
    # the gateway named (--attach) or where the config says, asked whether a gatewatch listens there: Claude
    # Code started at nothing would only fail its calls
    url: str = args.attach or local_url(config)
    found = probe(url, config.gateway.auth_token) if args.attach or config.gateway.port else None
    if found is None:
        other = "check the URL given to --attach" if args.attach else "name it with --attach URL"
        die(
            f"no gatewatch listens at {url}: start it first (`gatewatch serve`, or the console, `gatewatch`), "
            f"or {other}"
        )
    if found.get("token_required") and "store" not in found:  # it answered only "a gatewatch, with a token"
        die(
            f"the gatewatch at {url} wants its token: set GATEWATCH_TOKEN (or gateway.auth_token) to the one "
            "it was started with"
        )
    # the running gateway's targets, as it lists them (with its token): that gateway serves Claude Code, and
    # its targets' caps are what CLAUDE_CODE_MAX_OUTPUT_TOKENS must follow, whatever this shell's config says
    # (`--attach URL` from a shell with GEMINI_API_KEY set has a default target of its own, uncapped);
    # the config's only when the gateway does not list them
    targets = [cc.Target.listed(t) for t in found.get("targets") or [] if isinstance(t, dict)]
    where = f"the gateway at {url}"
    if not targets:
        targets = [cc.Target.of(t) for t in config.targets]
        where = f"the config ({config.source})"
    try:
        target = cc.pick(targets, name, where)
    except cfg.ConfigError as exc:
        die(str(exc))
    try:
        cc.run(cc.environment(config, url, target, os.environ, targets), rest)
    except cc.NoClaude as exc:
        die(str(exc))
    return 0  # not reached: claude took over the process
