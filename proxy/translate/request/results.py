"""What a `tool_result` holds → the text of its functionResponse, the media that go beside it (Gemini takes only
an object in a functionResponse), and the tools it says are now loaded (tool search's `tool_reference`)."""

from __future__ import annotations

from typing import Any

from proxy.errors import invalid_request
from proxy.translate.request.media import source_part
from proxy.translate.request.state import Part
from proxy.translate.request.system import text_of


class Result:
    """A tool_result's text, its media and the tools it references (slotted: one per tool_result of every call)."""

    __slots__ = ("texts", "media", "refs")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.media: list[Part] = []
        self.refs: list[str] = []
        """tool names tool search referenced"""

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


def result_of(block: dict[str, Any], where: str) -> Result:
    """A tool_result's content: a string, a list of blocks, or nothing."""
    content = block.get("content")
    out = Result()
    if isinstance(content, str):
        out.texts.append(content)
    elif isinstance(content, list):
        for i, b in enumerate(content):
            _inner(b, f"{where}.content.{i}", out)
    elif content is not None:
        raise invalid_request(f"{where}.content: must be a string or a list of blocks")
    return out


def _inner(b: Any, where: str, out: Result) -> None:
    """One block inside a tool_result."""
    t = b.get("type") if isinstance(b, dict) else None
    if t == "text":
        out.texts.append(str(b.get("text", "")))
    elif t in ("image", "document"):
        out.media.append(source_part(b, where, t))
    elif t == "tool_reference":
        name = str(b.get("tool_name", ""))
        out.refs.append(name)
        out.texts.append(f"Tool {name} is now available.")
    elif t == "search_result":
        out.texts.append(text_of(b.get("content"), f"{where}.content"))
    else:
        raise invalid_request(f"{where}.type: unknown block type {t!r} inside tool_result")
