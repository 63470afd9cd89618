"""What the translation did to a call, as Rich renderables: the Translation tab of the call detail and
`gatewatch show` print the same thing (from `proxy.reports.inspection`)."""

from __future__ import annotations

import os
from typing import Any

import orjson
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from proxy.insight.detector import FINDINGS
from proxy.money import plural
from proxy.reports.inspection import Inspection, short

_MARK = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}
_DIRECTION = {
    "field-dropped",
    "block-dropped",
    "schema-keyword-removed",
    "signature-dropped",
    "signature-lost",
    "tool-dropped",
}


def _kind_style(kind: str) -> str:
    if kind in ("upstream-error", "empty-failed", "refusal"):
        return "bold red"
    if kind in _DIRECTION or kind.endswith("-dropped"):
        return "bold magenta"
    return "bold cyan"


def translation_notes(view: Inspection) -> list[dict[str, Any]]:
    return [n for n in view.notes if n.get("kind") not in FINDINGS]


def findings(view: Inspection) -> list[dict[str, Any]]:
    """The detector's findings among the record's notes (proxy/insight): cache breaks, repeats, loops…"""
    return [n for n in view.notes if n.get("kind") in FINDINGS]


def notes_table(view: Inspection, which: list[dict[str, Any]] | None = None) -> RenderableType:
    notes = translation_notes(view) if which is None else which
    if not notes:
        return Text("no translation notes: nothing was changed in meaning on the way up or back", style="dim")
    t = Table(show_header=False, box=None, padding=(0, 1), expand=True)
    t.add_column(no_wrap=True)
    t.add_column(ratio=1, overflow="fold")
    for n in notes:
        kind = str(n.get("kind"))
        style = "bold yellow" if kind in FINDINGS else _kind_style(kind)
        t.add_row(Text(kind, style=style), Text(str(n.get("detail", ""))))
    return t


def middle_cut(path: str, width: int) -> str:
    """`path` in `width` cells, cut in its middle with `…`: a third of the room for its start, the rest for
    its end (what differs there), the end starting at a `.` where one is near."""
    if cell_len(path) <= width:
        return path
    if width <= 2:
        return path[-width:]
    head_room = (width - 1) // 3
    tail_room = width - 1 - head_room
    head, tail = path[:head_room], path[len(path) - tail_room :]
    dot = tail.find(".")
    if 0 <= dot < tail_room // 3:  # the end from a whole segment, and the room left to the start
        tail = tail[dot + 1 :]
        head = path[: width - 1 - len(tail)]
    return head.rstrip(".") + "…" + tail


def _showing(path: str, start: int, end: int, width: int) -> str:
    """`path` in `width` cells with path[start:end] (the part that tells it from another path) in view."""
    if len(path) - start <= width - 1:  # in the end: the start as far as it goes (if a word), …, the end
        head = width - 1 - (len(path) - start)
        return (path[:head] if head >= 5 else "") + "…" + path[start:]
    if end <= width - 1:  # in the start
        return (
            path[:end] + "…" + path[len(path) - (width - 1 - end) :] if width - 1 > end else path[:end] + "…"
        )
    return "…" + path[start : start + width - 2] + "…"


def distinct_cuts(paths: list[str], width: int) -> list[str]:
    """Each path cut in the middle to `width` (middle_cut); where two different paths would read the same,
    each is cut again so that the segments they differ in stay in view (`…limit.exclusiveMinimum` beside
    `…offset.exclusiveMinimum`, not `tools.Re….exclusiveMinimum` twice)."""
    cuts = [middle_cut(p, width) for p in paths]
    same: dict[str, set[str]] = {}
    for p, c in zip(paths, cuts, strict=True):
        same.setdefault(c, set()).add(p)
    for i, (p, c) in enumerate(zip(paths, cuts, strict=True)):
        group = same[c]
        if len(group) < 2:
            continue
        prefix = len(os.path.commonprefix(list(group)))
        suffix = min(len(os.path.commonprefix([q[::-1] for q in group])), len(p) - prefix)
        start = p.rfind(".", 0, prefix) + 1  # the differing part, widened to whole segments
        end = p.find(".", len(p) - suffix)
        cuts[i] = _showing(p, start, len(p) if end < 0 else end, width)
    return cuts


class _Paths:
    """A diff's paths, cut together once the width of their column is known (the same for each cell)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self._cut: dict[int, list[str]] = {}

    def at(self, width: int) -> list[str]:
        if width not in self._cut:
            self._cut[width] = distinct_cuts(self.paths, width)
        return self._cut[width]


class _PathCell:
    """One row's path: as long as it is when there is room, else cut with the others of its column."""

    def __init__(self, paths: _Paths, index: int, style: str) -> None:
        self.paths, self.index, self.style = paths, index, style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        path = self.paths.paths[self.index]
        return Measurement(min(cell_len(path), 12), cell_len(path))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cut = self.paths.at(options.max_width)[self.index]
        yield Text(cut, style=self.style, no_wrap=True, end="")


def diff_table(view: Inspection, width: int = 60) -> RenderableType:
    if view.diff is None:
        return Text(
            "the requests were not kept (log_payloads is off, or the call ended before it was sent upstream)",
            style="dim",
        )
    if not view.diff:
        return Text("the upstream request says what the client's says", style="dim")
    t = Table(box=None, padding=(0, 1), expand=True, header_style="bold")
    t.add_column("", no_wrap=True, width=1)
    t.add_column("where", ratio=4, no_wrap=True)
    t.add_column("client request", ratio=3, no_wrap=True, overflow="ellipsis")
    t.add_column("upstream request", ratio=3, no_wrap=True, overflow="ellipsis")
    paths = _Paths([c.path for c in view.diff])
    for i, c in enumerate(view.diff):
        mark, style = _MARK[c.op]
        before = "" if c.op == "added" else short(c.before, width)
        after = "" if c.op == "removed" else short(c.after, width)
        t.add_row(
            Text(mark, style=style),
            _PathCell(paths, i, style),
            Text(before, style="red" if c.op != "added" else ""),
            Text(after, style="green" if c.op != "removed" else ""),
        )
    return t


def _json(obj: Any) -> RenderableType:
    if obj is None:
        return Text("(not kept)", style="dim")
    text = orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode()
    return Syntax(text, "json", word_wrap=True, theme="monokai", background_color="default")


def error_pair(view: Inspection) -> RenderableType:
    t = Table(box=None, padding=(0, 1), expand=True, header_style="bold")
    t.add_column(f"what {view.target or 'the upstream'} answered", ratio=1)
    t.add_column("what the client received", ratio=1)
    t.add_row(_json(view.upstream_error), _json(view.client_error))
    return t


def heading(text: str) -> Text:
    return Text(text, style="bold underline")


def translation(view: Inspection) -> Group:
    """The whole tab: for a failed call the error pair, then the notes and the request diff."""
    parts: list[RenderableType] = []
    if view.client_error is not None:  # the question a failed call raises first
        parts += [heading("Why it failed"), error_pair(view), Text("")]
    found = findings(view)
    if found:  # what this call cost beyond its need (a cache break, a repeat…): asked about before the rest
        parts += [heading(f"Findings ({len(found)})"), notes_table(view, found), Text("")]
    parts += [heading(f"Translation notes ({len(translation_notes(view))})"), notes_table(view)]
    n = "" if view.diff is None else f" ({plural(len(view.diff), 'difference')})"
    parts += [
        Text(""),
        heading(f"Client request → upstream request{n}"),
        Text("- only in the client's  + only upstream  ~ changed", style="dim"),
        diff_table(view),
    ]
    return Group(*parts)
