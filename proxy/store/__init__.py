"""The record store: `RecordStore` (what gatewatch asks of one, with its typed rows), its SQLite
implementation, `Store` (the default), and a PostgreSQL one that several gateways share (`postgres.py`,
imported only for a `postgresql://` store: psycopg is an optional extra). `open_store` picks by location."""

import os
from typing import TYPE_CHECKING

from proxy.record.events import Bus
from proxy.store.base import (
    AgentTotals,
    RecordStore,
    SessionTotals,
    StoreError,
    Summary,
    Totals,
    WriterStats,
    data_dir,
    default_path,
)
from proxy.store.sqlite import SqliteStore, connect

Store = SqliteStore
"""the default implementation"""

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(where: str | os.PathLike[str] | None) -> bool:
    """A PostgreSQL connection URL, not a SQLite file."""
    return isinstance(where, str) and where.startswith(URL_SCHEMES)


def open_store(
    where: str | os.PathLike[str] | None = None,
    secrets: list[str] | None = None,
    bus: Bus | None = None,
    create: bool = True,
) -> RecordStore:
    """The store `where` names: a `postgresql://` URL (psycopg is imported only then), else a SQLite file
    (None: the default file)."""
    if isinstance(where, str) and is_url(where):
        from proxy.store.postgres import PostgresStore

        return PostgresStore(where, secrets=secrets, bus=bus, create=create)
    return SqliteStore(where, secrets=secrets, bus=bus, create=create)


if TYPE_CHECKING:  # mypy holds the implementations to the protocol
    from proxy.store.postgres import PostgresStore

    _conforms: type[RecordStore] = SqliteStore
    _conforms_too: type[RecordStore] = PostgresStore

__all__ = [
    "AgentTotals",
    "SessionTotals",
    "RecordStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "Summary",
    "Totals",
    "WriterStats",
    "connect",
    "is_url",
    "open_store",
    "data_dir",
    "default_path",
]
