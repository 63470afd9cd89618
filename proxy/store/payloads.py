"""A record's JSON for the store: its large repeated payload parts (Claude Code's system prompt and tools, ~50 KB
on every call) split out and addressed by hash, so each distinct one is kept once; and put back on reading."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from proxy.record import REDACTED, Record, dumps
from proxy.store.base import Conn

PAYLOADS = frozenset(
    {"client_request", "upstream_request", "upstream_response", "response", "events", "metadata"}
)
# Payload parts that repeat from call to call, stored once by hash: (payload field, keys inside it).
SHARED = {"client_request": ("system", "tools"), "upstream_request": ("systemInstruction", "tools")}
BLOB_MIN = 2048  # bytes; smaller parts stay inline


def scrub(data: bytes, secrets: list[str]) -> bytes:
    for s in secrets:  # defence in depth: a credential that slipped into a payload is cut here
        if s and s.encode() in data:
            data = data.replace(s.encode(), REDACTED.encode())
    return data


def serialize_parts(rec: Record, secrets: list[str]) -> tuple[bytes, dict[str, bytes]]:
    """The record as JSON with its large repeated parts replaced by {"$blob": hash}, and those parts."""
    # The payloads are plain JSON already: orjson writes them directly, and the small rest too (`Live.head`:
    # pydantic's model_dump was ~10 µs of the loop's time per call); a record orjson can't write as it is
    # is written with pydantic's dump of the small rest, as before.
    try:
        return _serialize(rec, rec.head(PAYLOADS), secrets)
    except TypeError:
        return _serialize(rec, rec.model_dump(mode="json", exclude=set(PAYLOADS)), secrets)


def _serialize(rec: Record, head: dict[str, Any], secrets: list[str]) -> tuple[bytes, dict[str, bytes]]:
    blobs: dict[str, bytes] = {}
    for k in PAYLOADS:
        value = getattr(rec, k)
        keys = SHARED.get(k)
        if keys and isinstance(value, dict):
            value = dict(value)
            for key in keys:
                if key in value:
                    part = orjson.dumps(value[key])
                    if len(part) >= BLOB_MIN:
                        part = scrub(part, secrets)
                        h = hashlib.sha1(part).hexdigest()
                        blobs[h] = part
                        value[key] = {"$blob": h}
        head[k] = value
    return scrub(dumps(head), secrets), blobs


def hydrate(data: bytes | str | dict[str, Any], blobs: dict[str, bytes] | Conn) -> dict[str, Any]:
    """Put the shared parts back; `blobs` maps hash → bytes, or is a connection to read them from."""
    doc: dict[str, Any] = orjson.loads(data) if isinstance(data, (bytes, str)) else data
    for k, keys in SHARED.items():
        value = doc.get(k)
        if not isinstance(value, dict):
            continue
        for key in keys:
            ref = value.get(key)
            if isinstance(ref, dict) and set(ref) == {"$blob"}:
                if isinstance(blobs, dict):
                    raw = blobs.get(ref["$blob"])
                else:
                    row = blobs.execute(
                        f"SELECT data FROM blobs WHERE hash = {blobs.dialect.p}", (ref["$blob"],)
                    ).fetchone()
                    raw = row[0] if row else None
                if raw is not None:
                    value[key] = orjson.loads(raw)
    return doc
