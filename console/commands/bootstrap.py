"""What the commands share: the options every command takes, the config, the store, dying with a message."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from proxy import config as cfg
from proxy.store import RecordStore, StoreError, default_path, is_url, query
from proxy.store import open_store as store_at


def common(p: argparse.ArgumentParser, server: bool = True, sub: bool = True) -> None:
    """--db and --config (and a gateway's --host, --port, --insecure)."""
    # on a subcommand an option left out must not reset the same option given before it
    # (`gatewatch --config F stats` reads F): its default is "absent", the top level's is None
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument(
        "--db",
        **d,
        help="the store: a SQLite file, or postgresql://user:pass@host/db shared by several gateways "
        "(default: the config's [store] path or url, else $GATEWATCH_DB, else "
        "$XDG_DATA_HOME/gatewatch/gatewatch.db)",
    )
    p.add_argument(
        "--config",
        help="gatewatch.toml (default: ./gatewatch.toml, else the environment)",
        **d,
    )
    if server:
        p.add_argument("--host", help="address to bind (default 127.0.0.1)", **d)
        p.add_argument("--port", type=int, help="port (default 8000)", **d)
        p.add_argument(
            "--insecure",
            action="store_true",
            **d,
            help="allow a non-loopback --host without gateway.auth_token",
        )


def filter_help() -> dict[str, Any]:
    """A command that takes a filter lists its terms after its options."""
    return {"epilog": query.help_text(), "formatter_class": argparse.RawDescriptionHelpFormatter}


def die(msg: str, code: int = 2) -> NoReturn:
    print(f"gatewatch: {msg}", file=sys.stderr)
    sys.exit(code)


def load_config(args: argparse.Namespace, *, credentials: bool = True) -> cfg.Config:
    try:
        return load_config_or_raise(args, credentials=credentials)
    except cfg.ConfigError as exc:
        die(f"configuration error:\n{exc}")


def load_config_or_raise(args: argparse.Namespace, *, credentials: bool = True) -> cfg.Config:
    config = cfg.load(getattr(args, "config", None), credentials=credentials)
    if getattr(args, "host", None):
        config.gateway.host = args.host
    if getattr(args, "port", None) is not None:
        config.gateway.port = args.port
    return config


def store_path(args: argparse.Namespace, config: cfg.Config | None = None) -> tuple[Path | str, str]:
    """The database to use (a SQLite file, or a PostgreSQL URL) and where that choice came from (for the
    messages that name it)."""
    if getattr(args, "db", None):
        return (args.db if is_url(args.db) else Path(args.db).expanduser()), "--db"
    if config is not None and config.store.url:
        return config.store.url, f"[store] url in {config.source}"
    if config is not None and config.store.path:
        return Path(config.store.path).expanduser(), f"[store] path in {config.source}"
    env = os.environ.get("GATEWATCH_DB")
    if env and is_url(env):
        return env, "$GATEWATCH_DB"
    return default_path(), "$GATEWATCH_DB" if env else "the default"


def open_store(args: argparse.Namespace, config: cfg.Config | None = None) -> RecordStore:
    path, _ = store_path(args, config)
    try:
        return store_at(path, secrets=config.secrets() if config else [])
    except StoreError as exc:
        die(str(exc))


def reader_config(args: argparse.Namespace) -> cfg.Config:
    """export/stats/show/prune need the config only for `[store]` (and the secrets to keep out): a file named
    or found is read strictly but for the targets' credentials (reading history needs the store, not the
    Google key); without one, an environment that wouldn't start a gateway doesn't matter."""
    if args.config or Path("gatewatch.toml").is_file():
        return load_config(args, credentials=False)
    try:
        return cfg.load(None, credentials=False)
    except cfg.ConfigError:
        return cfg.Config()


def open_reader(args: argparse.Namespace) -> RecordStore:
    """The store for export, stats and prune: one that exists (never created), named on stderr, with the
    journal of a writer that crashed replayed first, so its last calls are read too."""
    config = reader_config(args)
    path, source = store_path(args, config)
    if isinstance(path, Path) and not path.exists():
        die(
            f"{path.resolve()}: no such database (from {source}). Nothing was created. Pass the gateway's --db or "
            "--config, or run `gatewatch serve` first."
        )
    try:
        store = store_at(path, secrets=config.secrets(), create=False)
        logging.getLogger("gatewatch").setLevel(logging.ERROR)  # the replay is reported below, in our words
        live = not store.recover()
    except StoreError as exc:
        die(str(exc))
    print(f"database: {store.where} (from {source})", file=sys.stderr)
    if live:
        print(
            "note: a running gatewatch is writing to this database; the calls it has not committed yet "
            "(the last fraction of a second) are not included",
            file=sys.stderr,
        )
    elif store.replayed:
        print(
            f"recovered {store.replayed} records from the journal of a gatewatch that stopped abruptly",
            file=sys.stderr,
        )
    return store


def parse_filter(words: list[str]) -> query.Filter:
    """The filter the words make (export's, stats'), or die saying what is wrong with it."""
    try:
        return query.parse(" ".join(words))
    except query.QueryError as exc:
        die(f"filter: {exc}")
