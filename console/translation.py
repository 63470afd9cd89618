"""What the translation did to a call, as Rich renderables: the Translation tab of the call detail and
`gatewatch show` print the same thing (from `proxy.reports.inspection`)."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from proxy.insight.detector import FINDINGS
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
    t.add_column("where", ratio=4, no_wrap=True, overflow="ellipsis")
    t.add_column("client request", ratio=3, no_wrap=True, overflow="ellipsis")
    t.add_column("upstream request", ratio=3, no_wrap=True, overflow="ellipsis")
    for c in view.diff:
        mark, style = _MARK[c.op]
        before = "" if c.op == "added" else short(c.before, width)
        after = "" if c.op == "removed" else short(c.after, width)
        t.add_row(
            Text(mark, style=style),
            Text(c.path, style=style),
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
    n = "" if view.diff is None else f" ({len(view.diff)} differences)"
    parts += [
        Text(""),
        heading(f"Client request → upstream request{n}"),
        Text("- only in the client's  + only upstream  ~ changed", style="dim"),
        diff_table(view),
    ]
    return Group(*parts)
