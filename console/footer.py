"""Every screen's footer: Textual's, without ctrl+p's reminder below PALETTE_MIN_WIDTH columns, and never a key
cut mid-word: the keys that don't fit whole are left out (help, which lists every key, and quit stay)."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.widgets import Footer as TextualFooter
from textual.widgets._footer import FooterKey

PALETTE_MIN_WIDTH = 100
"""below this many columns the keys need the room the reminder takes, or the last key is cut mid-word (the
palette still opens with ctrl+p; help and the README name it)"""
KEPT = frozenset({"help", "app.help", "quit", "app.quit"})
"""the actions whose keys are left out last: help lists the keys left out"""


def key_width(key: str, description: str, compact: bool) -> int:
    """Columns one key takes in Textual's footer, its margin included: ` k desc ` (`k desc ` compact)."""
    if not description:
        return cell_len(key) + (1 if compact else 0)
    return cell_len(key) + cell_len(description) + (2 if compact else 3)


def fitting(keys: list[tuple[str, str, str]], width: int, compact: bool) -> list[bool]:
    """Which of `keys` (key, description, action), in footer order, are shown in `width` columns: all when
    they fit, else the last ones left out first, but those of KEPT actions only when nothing else is left."""
    shown = [True] * len(keys)
    widths = [key_width(k, d, compact) for k, d, _ in keys]
    order = [i for i in reversed(range(len(keys))) if keys[i][2] not in KEPT]
    order += [i for i in reversed(range(len(keys))) if keys[i][2] in KEPT]
    for i in order:
        if sum(w for w, s in zip(widths, shown, strict=True) if s) <= width:
            break
        shown[i] = False
    return shown


class Footer(TextualFooter):
    """Decided by the footer itself, as it is mounted, recomposed (the screen's keys changed) and resized: a
    screen pushed later (a call's detail, Sessions) is right from its first frame, not from the app's next
    refresh."""

    def on_mount(self) -> None:
        self.show_command_palette = self.app.size.width >= PALETTE_MIN_WIDTH

    def on_resize(self, event: events.Resize) -> None:
        self.show_command_palette = event.size.width >= PALETTE_MIN_WIDTH
        self._fit(event.size.width)

    async def recompose(self) -> None:
        await super().recompose()
        self._fit(self.size.width)

    def _fit(self, width: int) -> None:
        if not width:
            return
        keys = [k for k in self.query_children(FooterKey) if not k.has_class("-command-palette")]
        if self.show_command_palette:
            palette = [k for k in self.query_children(FooterKey) if k.has_class("-command-palette")]
            width -= sum(key_width(k.key_display, k.description, False) + 1 for k in palette)
        shown = fitting([(k.key_display, k.description, k.action) for k in keys], width, self.compact)
        for k, show in zip(keys, shown, strict=True):
            k.display = show
