"""The help: every key and the whole filter language (written from `query.TERMS`), in 80x24."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from proxy.store import query

from .detail import DetailScreen

HELP_WIDTH = 76  # the help's content: inside an 80-column terminal, border and padding included
EXAMPLE_WIDTH = 24
_KEY_NAMES = {
    "enter": "↵",
    "escape": "esc",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "home": "Home",
    "end": "End",
    "slash": "/",
    "question_mark": "?",
    "dollar_sign": "$",
}


def _key(b: Binding) -> str:
    """Every key of a binding, as the help writes it (the footer shows one)."""
    return "/".join(_KEY_NAMES.get(k.strip(), k.strip()) for k in b.key.split(","))


def _flow(pairs: list[tuple[str, str]], width: int, indent: str = "  ") -> Text:
    """key description pairs, as many to a line as fit, a pair never split."""
    out, line = Text(), Text(indent)
    for key, desc in pairs:
        piece = Text(key, style="bold cyan")
        piece.append(f" {desc}")
        if line.cell_len > len(indent) and line.cell_len + 2 + piece.cell_len > width:
            out.append_text(line)
            out.append("\n")
            line = Text(indent)
        if line.cell_len > len(indent):
            line.append("  ")
        line.append_text(piece)
    out.append_text(line)
    return out


def _examples(example: str, width: int) -> str:
    """As many of a term's examples as fit the column (they are written two spaces apart)."""
    shown = ""
    for ex in example.split("  "):
        joined = f"{shown}  {ex}" if shown else ex
        if len(joined) > width:
            break
        shown = joined
    return shown or example[:width]


def help_terms() -> Table:
    """Every term of query.TERMS, the number terms on one line: 80x24 holds the whole language."""
    terms = Table.grid(padding=(0, 2))
    terms.add_column(style="cyan", width=EXAMPLE_WIDTH, no_wrap=True)
    terms.add_column(style="dim", width=HELP_WIDTH - EXAMPLE_WIDTH - 2)
    numbers = [t for t in query.TERMS if t.unit]
    for t in query.TERMS:
        if t.unit:
            if t is numbers[0]:
                ex = "  ".join(n.example.split("  ")[0] for n in numbers)
                terms.add_row(
                    _examples(ex, EXAMPLE_WIDTH), f"{' '.join(n.name for n in numbers)}: > >= < <= ="
                )
            continue
        terms.add_row(_examples(t.example, EXAMPLE_WIDTH), t.help)
    return terms


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close", id="help.close")]
    DEFAULT_CSS = f"""
    HelpScreen {{ align: center middle; }}
    HelpScreen > Vertical {{
        width: {HELP_WIDTH + 4}; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; padding: 0 1; background: $surface;
    }}
    HelpScreen Static {{ height: auto; }}
    """

    def __init__(self, bindings: list[Binding], history: bool = True) -> None:
        super().__init__()
        self.bindings = bindings
        """the screen's keys, in the order the help lists them"""
        self.history = history
        """the history's help (its filter language, a call's keys); False: only these keys (Sessions)"""

    def compose(self) -> ComposeResult:
        keys = [(_key(b), b.description) for b in self.bindings]
        keys += [("↑↓", "Move (up pauses following)" if self.history else "Move"), ("ctrl+p", "Palette")]
        t = _flow(keys, HELP_WIDTH, indent="")
        box = Vertical()
        box.border_title = "Keys  (? or esc closes)"
        if not self.history:
            with box:
                yield Static(t, id="help-keys")
            return
        # a call's own keys sit on the bottom edge: every line inside is the filter language's (80x24 holds it)
        # the shown ones: the scroll keys (↑↓ PgUp PgDn) do what every pane's do, and the edge is 80 wide
        in_call = "  ".join(
            f"[b]{_key(b)}[/b] {b.description}"
            for b in DetailScreen.BINDINGS
            if isinstance(b, Binding) and b.show
        )
        box.border_subtitle = f"In a call: {in_call}"
        with box:
            yield Static(t, id="help-keys")
            yield Static(
                Group(Text("Filter language (terms are ANDed)", style="bold"), help_terms()), id="help-terms"
            )
