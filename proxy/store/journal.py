"""The writer's journal: a file that keeps each submitted record until the writer has committed it, so a process
killed before a commit loses nothing (the next writer replays the file).

Lines: a record's JSON; `#blob HASH BYTES`, a shared part a later record line names (written once per file, so
every file is self-contained); `#cc JSON`, Claude Code's telemetry events. `submit` appends (one write() into
the page cache, no fsync) on the event loop, so nothing here makes it wait on more than a few appends: the
file is emptied when everything is committed, and rewritten without its committed prefix (`compact`) aside,
with only the swap under the lock.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from proxy.record import Record

TELEMETRY = b"#cc "
"""a line of Claude Code's telemetry events (JSON after it)"""
BLOB = b"#blob "
"""a line holding a shared part: its hash, a space, its bytes"""
COPY_CHUNK = 1024 * 1024


@dataclass(slots=True, eq=False)
class Item:
    """A submitted record waiting for the writer: its JSON and the shared parts it names, in memory, or only
    where its lines start in the journal (`spilled`)."""

    size: int
    """bytes of its JSON (what a compaction would keep)"""
    rec: Record | None
    data: bytes | None
    blobs: dict[str, bytes] | None
    at: int | None = None
    """where its lines start in the journal (None: not journaled, or the journal was rewritten since)"""
    length: int = 0
    held: int = 0
    """bytes it holds in memory (0 once spilled)"""

    @property
    def spilled(self) -> bool:
        return self.data is None

    def spill(self) -> int:
        """Let go of the record, keep its place in the journal; returns the bytes let go."""
        freed, self.held = self.held, 0
        self.rec = self.data = self.blobs = None
        return freed


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Claude Code's events, submitted beside the records (`submit_telemetry`): journaled, written in order
    after the records taken with them (an event joins a record of its own batch too). Small: never spilled."""

    line: bytes
    events: tuple[dict[str, Any], ...]


Queued = Item | Telemetry


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a compaction starts from: the file as it was, and the queued items it must keep."""

    fd: int
    mark: int
    """the file's size then: everything before it is committed or in `pending`"""
    pending: tuple[Queued, ...]
    src: int
    """a descriptor of its own on the old file, read without the lock (`close` may close `fd` meanwhile)"""


def open_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Journal:
    """One writer's journal file. `lock` guards the file and everything that points into it (the items'
    places, the writer's byte counts): `submit` takes it on the event loop, so it is only ever held for an
    append, a read of one record, or the swap at the end of a compaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.size = 0
        """bytes appended (a spilled record's place is counted from this)"""
        self.blobs: set[str] = set()
        """shared parts written to this file: a later record only names them"""

    def open(self) -> None:
        self.fd = open_file(self.path)

    def close(self, empty: bool) -> None:
        """Close the file (emptied first when `empty`); call with `lock` held."""
        if self.fd is None:
            return
        if empty:
            os.ftruncate(self.fd, 0)
        os.close(self.fd)
        self.fd = None

    # -- appending (with `lock` held) ----------------------------------------------------------------------
    def append(self, data: bytes, blobs: dict[str, bytes]) -> tuple[int, int] | None:
        """A record's lines (its shared parts not written to this file yet, then its JSON); its place
        (start, length) when written whole. Raises OSError (a full disk)."""
        assert self.fd is not None
        new = [h for h in blobs if h not in self.blobs]
        chunk = b"\n".join([BLOB + h.encode() + b" " + blobs[h] for h in new] + [data]) + b"\n"
        written = os.write(self.fd, chunk)
        at = self.size
        self.size += written
        self.blobs.update(new)
        return (at, written) if written == len(chunk) else None

    def append_line(self, line: bytes) -> None:
        assert self.fd is not None
        self.size += os.write(self.fd, line + b"\n")

    def empty(self) -> None:
        """Everything in it is committed: start again (the next records write their shared parts again)."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        self.size = 0
        self.blobs.clear()

    # -- reading -------------------------------------------------------------------------------------------
    def read(self, at: int, length: int) -> tuple[Record, bytes, dict[str, bytes]] | None:
        """A spilled record read back from its place (None: the lines there don't hold it). Read through a
        descriptor of its own, outside the lock: a record may be megabytes (and no longer in the page cache),
        and `submit` waits for the lock; appends only add after it, and only this (the writer's) thread
        empties or rewrites the file."""
        with self.lock:
            if self.fd is None:
                return None
            fd = os.dup(self.fd)
        try:
            raw = os.pread(fd, length, at)
        finally:
            os.close(fd)
        *parts, data = raw.rstrip(b"\n").split(b"\n")
        blobs = {}
        for line in parts:
            _, h, part = line.split(b" ", 2)
            blobs[h.decode()] = part
        try:
            return Record.model_validate(orjson.loads(data)), data, blobs
        except (orjson.JSONDecodeError, ValueError):
            return None

    def replay(
        self, insert: Callable[[list[tuple[Record, bytes]], dict[str, bytes]], int], batch: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Hand what the file holds to `insert`, `batch` records at a time with the shared parts read since the
        last call (constant memory whatever its size); returns the records `insert` found new and the
        telemetry events. A line cut short by a crash (the last one) is skipped."""
        n = 0
        items: list[tuple[Record, bytes]] = []
        blobs: dict[str, bytes] = {}
        events: list[dict[str, Any]] = []
        with open(self.path, "rb") as f:
            for raw in f:
                line = raw.rstrip(b"\n")
                if line.startswith(TELEMETRY):
                    try:
                        events += orjson.loads(line[len(TELEMETRY) :])
                    except orjson.JSONDecodeError:
                        pass
                    continue
                if line.startswith(BLOB):
                    parts = line.split(b" ", 2)
                    # a cut-short line fails the hash and is skipped
                    if len(parts) == 3 and hashlib.sha1(parts[2]).hexdigest() == parts[1].decode():
                        blobs[parts[1].decode()] = parts[2]
                    continue
                try:
                    rec = Record.model_validate(orjson.loads(line))
                except (orjson.JSONDecodeError, ValueError):
                    continue
                items.append((rec, line))
                if len(items) >= batch:
                    n += insert(items, blobs)
                    items, blobs = [], {}
        n += insert(items, blobs)
        return n, events

    # -- compaction ----------------------------------------------------------------------------------------
    def snapshot(self, pending: Sequence[Queued]) -> Snapshot:
        """Start a compaction (with `lock` held): `pending` are the queued items, none spilled, and everything
        journaled before them is committed. From here on a record journals its shared parts again, so what is
        appended while the new file is built holds them whatever the new file keeps."""
        assert self.fd is not None
        self.blobs = set()
        return Snapshot(self.fd, self.size, tuple(pending), os.dup(self.fd))

    def compact(self, snap: Snapshot, queued: Callable[[], list[Queued]]) -> bool:
        """Rewrite the file as `snap.pending`'s lines and what was appended since `snap`, without the committed
        prefix. Built aside without the lock (appends go on to the old file meanwhile); what was appended
        meanwhile is copied after it, the last of it under the lock, and the new file replaces the old one
        (`os.replace`, atomic); then the places of the records appended meanwhile are moved. The writer (the
        only one that takes from the queue) calls this; `queued()` is its queue now. False: closed meanwhile;
        OSError: the old file is still whole (try again later)."""
        try:
            seen: set[str] = set()
            lines: list[bytes] = []
            for it in snap.pending:
                if isinstance(it, Telemetry):
                    lines.append(it.line)
                    continue
                assert it.data is not None and it.blobs is not None  # none spilled (the caller checked)
                lines += [BLOB + h.encode() + b" " + it.blobs[h] for h in it.blobs if h not in seen]
                seen.update(it.blobs)
                lines.append(it.data)
            return self._rewrite(snap, lines, seen, queued)
        finally:
            os.close(snap.src)

    def _rewrite(
        self, snap: Snapshot, lines: list[bytes], seen: set[str], queued: Callable[[], list[Queued]]
    ) -> bool:
        """The new file: `lines`, then what was appended since `snap.mark`; swapped in under the lock."""
        tmp = self.path.with_name(self.path.name + ".compact")
        # opened as the journal is (appending): once renamed, it is the journal
        out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            _write_all(out, b"\n".join(lines) + b"\n")
            base = os.fstat(out).st_size
            with self.lock:
                end = self.size if self.fd == snap.fd else -1
            if end < 0:
                raise _Closed
            copied = self._copy(snap.src, out, snap.mark, end)  # the bulk of what came meanwhile, unlocked
            with self.lock:
                if self.fd != snap.fd:
                    raise _Closed
                copied = self._copy(snap.src, out, copied, self.size)
                os.replace(tmp, self.path)
                self.fd, old = out, snap.fd
                self.size = base + copied - snap.mark
                self.blobs |= seen
                tail = queued()[len(snap.pending) :]
        except _Closed:
            os.close(out)
            os.unlink(tmp)
            return False
        except OSError:
            os.close(out)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        os.close(old)
        # only the writer reads an item's place (this thread): moved after the lock is let go
        for it in snap.pending:
            if isinstance(it, Item):
                it.at = None  # its place was in the old file; it is in memory (never spilled)
        for it in tail:
            if isinstance(it, Item) and it.at is not None:
                it.at += base - snap.mark
        return True

    @staticmethod
    def _copy(src: int, dst: int, start: int, end: int) -> int:
        """Append `src`'s bytes [start, end) to `dst`; returns `end`."""
        while start < end:
            chunk = os.pread(src, min(COPY_CHUNK, end - start), start)
            if not chunk:
                break
            _write_all(dst, chunk)
            start += len(chunk)
        return start


class _Closed(Exception):
    """The journal was closed while a compaction was building its new file."""
