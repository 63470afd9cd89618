"""The console's own keys, in the order the help lists them. The history's work on the main screen only (a
call's detail offers, in its footer, what works there); the others are the app's, on every screen."""

from __future__ import annotations

from textual.binding import Binding

KEYS = [
    Binding("slash", "search", "Search", key_display="/", id="search"),
    Binding("enter", "open", "Open call", id="open", show=False),
    Binding("e", "export", "Export", id="export"),
    Binding("s", "sessions", "Sessions", id="sessions"),
    Binding("dollar_sign", "price_as", "What-if price", key_display="$", id="price_as", show=False),
    Binding("escape", "clear_search", "Clear", id="clear_search", show=False),
    Binding("r", "reload", "Reload", id="reload", show=False),
    Binding("question_mark", "help", "Help", key_display="?", id="help"),
    Binding("q", "quit", "Quit", id="quit"),
]
HISTORY_KEYS = frozenset({"search", "open", "export", "clear_search", "reload"})
"""the ids of the main screen's keys"""
MAIN = [b for b in KEYS if b.id in HISTORY_KEYS]
APP = [b for b in KEYS if b.id not in HISTORY_KEYS]
