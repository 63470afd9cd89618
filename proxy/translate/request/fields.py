"""Request fields Gemini has no place for: accepted, not sent, and noted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.translate import request_notes
from proxy.translate.notes import Notes

UNSENT = ("metadata", "context_management", "container", "mcp_servers", "service_tier")


def unsent_fields(req: Mapping[str, Any], notes: Notes) -> list[str]:
    """Note every field left out (and the cache_control markers, and auto mode's safeguards). → the fields."""
    dropped = [k for k in UNSENT if k in req]
    for k in dropped:
        notes.add("field-dropped", f"{k} not sent: Gemini has no such field", field=k)
    if "safeguards" in req:
        request_notes.safeguards(notes, req["safeguards"])
    cached = request_notes.cache_controls(req)
    if cached:
        notes.add(
            "field-dropped",
            f"cache_control on {cached} block(s) not sent: Gemini caches prompt prefixes by itself",
            field="cache_control",
            count=cached,
        )
    return dropped
