"""An image's or document's `source` → a Gemini part: inline bytes, a file URL, or text."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any

from proxy.errors import invalid_request
from proxy.translate.request.state import Part
from proxy.translate.request.system import text_of

PDF = "application/pdf"


def source_part(block: dict[str, Any], where: str, kind: str) -> Part:
    """The part for an `image` or `document` block (`kind`)."""
    src = block.get("source")
    if not isinstance(src, dict):
        raise invalid_request(f"{where}.source: Field required")
    st = src.get("type")
    make = _SOURCES.get(st) if isinstance(st, str) else None
    if make is None or (st in _DOCUMENT_ONLY and kind != "document"):
        raise invalid_request(
            f"{where}.source.type: {st!r} is not supported by this gateway for {kind} blocks"
        )
    return make(src, f"{where}.source", kind)


def _base64(src: dict[str, Any], where: str, kind: str) -> Part:
    data, mt = src.get("data"), src.get("media_type")
    if not isinstance(data, str) or not data:
        raise invalid_request(f"{where}.data: Field required")
    if not isinstance(mt, str) or not mt:
        if kind != "document":
            raise invalid_request(f"{where}.media_type: Field required")
        mt = PDF  # a document without a media type is a PDF, as on Anthropic
    return {"inlineData": {"mimeType": mt, "data": data}}


def _url(src: dict[str, Any], where: str, kind: str) -> Part:
    url = src.get("url")
    if not isinstance(url, str) or not url:
        raise invalid_request(f"{where}.url: Field required")
    # Gemini wants a MIME type with a file URL: the URL's extension says it, else what the block usually is
    mt = mimetypes.guess_type(url.split("?")[0])[0] or (PDF if kind == "document" else "image/jpeg")
    return {"fileData": {"mimeType": mt, "fileUri": url}}


def _text(src: dict[str, Any], where: str, kind: str) -> Part:
    return {"text": str(src.get("data") or "")}


def _content(src: dict[str, Any], where: str, kind: str) -> Part:
    return {"text": text_of(src.get("content"), f"{where}.content")}


_SOURCES: dict[str, Callable[[dict[str, Any], str, str], Part]] = {
    "base64": _base64,
    "url": _url,
    "text": _text,
    "content": _content,
}
"""source type → its part"""
_DOCUMENT_ONLY = {"text", "content"}
