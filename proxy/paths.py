"""Where gatewatch keeps its store by default (a module of its own so that the statusline can find the store
without importing it)."""

from __future__ import annotations

import os
from pathlib import Path


def default_path() -> Path:
    env = os.environ.get("GATEWATCH_DB")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gatewatch" / "gatewatch.db"
