"""`gatewatch` without a command: the console, hosting a gateway or, where one already listens (or with
--attach URL), watching it; with no target configured and a shared store (`--db postgresql://…`), watching
every gateway that records there."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from proxy import config as cfg
from proxy.record.pricing import find as find_price
from proxy.service import ServiceError
from proxy.store import RecordStore, StoreError, is_url
from proxy.store import open_store as store_at

from .bootstrap import die, load_config_or_raise, open_store, store_path

if TYPE_CHECKING:
    from console.remote import Attached


def add_options(p: argparse.ArgumentParser) -> None:
    """The console's own options, at the top level (`--attach` is `claude`'s too)."""
    p.add_argument(
        "--attach",
        metavar="URL",
        help="watch the gatewatch at URL (its live feed and its store) instead of hosting a gateway; "
        "without it, a gatewatch already listening on the configured port is watched",
    )
    p.add_argument(
        "--price-as",
        metavar="MODEL",
        help="the console's cost pane also shows this session at MODEL's prices (`$` changes it)",
    )


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from console.app import run_console
    from console.remote import Attached, discover

    if args.price_as and find_price(args.price_as) is None:  # as `stats --price-as` says, before the screen
        die(f"--price-as {args.price_as}: genai-prices has no price for this model")
    # The console shows a config problem on screen (and how to fix it) instead of dying before it opens.
    error = None
    try:
        config = load_config_or_raise(args)
    except cfg.ConfigError as exc:
        config, error = cfg.Config(), str(exc)
    url = args.attach or discover(config)
    if url:
        viewer = Attached(url, config.gateway.auth_token)
        try:
            viewer.identify()  # the feed starts with the console, so the console sees its first events
        except ServiceError as exc:
            die(str(exc))
        return run_console(
            config,
            viewer_store(args, config, viewer),
            config_error=error,
            host=viewer,
            price_as=args.price_as,
        )
    store = open_store(args, config)
    if error is None and not config.targets and store.shared:
        # nothing to host, and the store is the gateways' shared one: watch every call they record
        from console.watching import Watching

        return run_console(config, store, host=Watching(config, store), price_as=args.price_as)
    return run_console(config, store, config_error=error, insecure=args.insecure, price_as=args.price_as)


def viewer_store(args: argparse.Namespace, config: cfg.Config, viewer: Attached) -> RecordStore:
    """The history a viewer shows: the store the watched gateway writes (it says which), read-only; when that
    file is not on this machine, the one --db or the config names. A PostgreSQL store is named without its
    password: --db or the config's url (with it) is used when given, else the named one (.pgpass, trust)."""
    theirs = viewer.identity.get("store")
    mine, source = store_path(args, config)
    path: Path | str
    if theirs and is_url(theirs):
        path = mine if is_url(str(mine)) and source != "the default" else theirs
    else:
        path = Path(theirs) if theirs and Path(theirs).exists() else mine
    try:
        return store_at(path, secrets=config.secrets(), create=False)
    except StoreError as exc:
        viewer.stop()
        die(f"attached to {viewer.url}, but its history can't be read here: {exc}")
