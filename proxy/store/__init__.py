"""The record store: `RecordStore` (what gatewatch asks of one, with its typed rows) and its SQLite
implementation, `Store`."""

from typing import TYPE_CHECKING

from .base import (
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
from .sqlite import SqliteStore, connect

Store = SqliteStore
"""the default implementation"""

if TYPE_CHECKING:  # mypy holds the implementation to the protocol
    _conforms: type[RecordStore] = SqliteStore

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
    "data_dir",
    "default_path",
]
