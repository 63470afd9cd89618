"""Gemini's implicit cache, as the strict fake plays it: a prompt's prefix — systemInstruction, tools, then
contents, in the bytes the gateway sent — is compared with the recent prompts of the same model; the longest
shared prefix is "cached" when it is at least MIN_TOKENS long (Google's floor), reported as
`cachedContentTokenCount`. Tokens are bytes / 4, as the fake counts `promptTokenCount`."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import orjson

MIN_TOKENS = 1024
RECENT = 32
"""prompts remembered per model"""


def prompt_bytes(body: Any) -> bytes:
    """The prefix the cache keys on: each part serialised as it came (orjson keeps the key order sent), so a
    serialisation that is not byte-stable misses as it would at Google."""
    if not isinstance(body, dict):
        return b""
    parts = [orjson.dumps(body.get("systemInstruction")), orjson.dumps(body.get("tools"))]
    parts += [orjson.dumps(c) for c in body.get("contents") or []]
    return b"".join(parts)


def common(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class ImplicitCache:
    """`fake.implicit_cache = ImplicitCache()`: every answered prompt is remembered and reported against."""

    def __init__(self) -> None:
        self.recent: dict[str, deque[bytes]] = defaultdict(lambda: deque(maxlen=RECENT))
        self.hits: list[int] = []

    def __call__(self, model: str, body: Any) -> int:
        data = prompt_bytes(body)
        best = max((common(data, old) for old in self.recent[model]), default=0)
        self.recent[model].append(data)
        tokens = best // 4
        cached = tokens if tokens >= MIN_TOKENS else 0
        self.hits.append(cached)
        return cached
