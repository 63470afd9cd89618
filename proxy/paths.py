"""Where gatewatch keeps its store by default (a module of its own so that the statusline can find the store
without importing it)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """gatewatch's data directory: $XDG_DATA_HOME/gatewatch (the default store, the console's exports)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gatewatch"


def default_path() -> Path:
    env = os.environ.get("GATEWATCH_DB")
    if env:
        return Path(env).expanduser()
    return data_dir() / "gatewatch.db"
