"""`[log] file`: a subscriber that appends every committed record as a Kong file-log line, as Kong's file-log
plugin does. It reads committed records off the bus; the store knows nothing of it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import orjson

from proxy.record import REDACTED
from proxy.record.events import Bus, RecordsCommitted
from proxy.reports.export import kong_record

log = logging.getLogger("gatewatch.filelog")


class FileLogMirror:
    """Writes Kong lines to `path` (created 0600: they hold prompts), with every secret cut out."""

    def __init__(self, path: str | os.PathLike[str], secrets: list[str] | None = None) -> None:
        self.path = Path(path)
        self.secrets = [s.encode() for s in (secrets or []) if len(s) >= 8]
        self._checked = False

    def attach(self, bus: Bus) -> Callable[[], None]:
        """Subscribe to committed batches; returns the function that detaches it."""
        return bus.subscribe(RecordsCommitted, self.write)

    def write(self, event: RecordsCommitted) -> None:
        """Runs on the store's writer thread: a failure is logged, never raised into the writer."""
        lines = []
        for rec in event.records:
            line = orjson.dumps(kong_record(rec))
            for s in self.secrets:
                line = line.replace(s, REDACTED.encode())
            lines.append(line + b"\n")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a symlink planted at the path is refused, never appended through
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            try:
                if not self._checked:
                    self._checked = True
                    _tighten(fd, self.path)
                os.write(fd, b"".join(lines))
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("file log %s: %s", self.path, exc.strerror)


def _tighten(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if st.st_mode & 0o077:
        os.fchmod(fd, 0o600)
        log.warning("file log %s was readable by others (mode %o); now 0600", path, st.st_mode & 0o777)
