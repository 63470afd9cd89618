"""Every screen's footer: Textual's, without ctrl+p's reminder below PALETTE_MIN_WIDTH columns."""

from __future__ import annotations

from textual import events
from textual.widgets import Footer as TextualFooter

PALETTE_MIN_WIDTH = 100
"""below this many columns the keys need the room the reminder takes, or the last key is cut mid-word (the
palette still opens with ctrl+p; help and the README name it)"""


class Footer(TextualFooter):
    """Decided by the footer itself, as it is mounted and resized: a screen pushed later (a call's detail,
    Sessions) is right from its first frame, not from the app's next refresh."""

    def on_mount(self) -> None:
        self.show_command_palette = self.app.size.width >= PALETTE_MIN_WIDTH

    def on_resize(self, event: events.Resize) -> None:
        self.show_command_palette = event.size.width >= PALETTE_MIN_WIDTH
