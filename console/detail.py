"""One call in full: request, upstream request, response, stream events, timing and usage, headers."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess

import orjson
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Static, TabbedContent, TabPane

from proxy.record import Record, payload
from proxy.reports.inspection import inspect

from . import fmt
from .footer import Footer
from .translation import translation

HEADER_CHROME = 18
"""Textual's header: its icon (8 columns) and its clock's space (10); the title and sub-title share the rest"""
CLIPBOARD_TOOLS = (
    ("pbcopy", (), ""),
    ("wl-copy", (), "WAYLAND_DISPLAY"),
    ("xclip", ("-selection", "clipboard"), "DISPLAY"),
    ("xsel", ("--clipboard", "--input"), "DISPLAY"),
)


def copy_with_tool(text: str) -> str | None:
    """Put `text` on the system clipboard with the first tool there is (and a display it can reach); the
    tool's name when it succeeded, None when none did."""
    for name, args, needs in CLIPBOARD_TOOLS:
        path = shutil.which(name)
        if not path or (needs and not os.environ.get(needs)):
            continue
        try:
            done = subprocess.run([path, *args], input=text.encode(), capture_output=True, timeout=3)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return name
    return None


_MAX_SHOWN = 200_000  # characters of JSON per tab; the rest is one keypress away via copy


def _json(obj: object) -> Syntax | Text:
    if obj is None:
        return Text("(not recorded: log_payloads is off, or the call ended before this existed)", style="dim")
    text = orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode()
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + f"\n… {len(text) - _MAX_SHOWN} more characters (press c to copy all)"
    return Syntax(text, "json", word_wrap=True, theme="monokai", background_color="default")


def answered_by(rec: Record) -> str:
    """Who answered; nothing answered a call that failed (its attempts say what each target did)."""
    if rec.error_type or (rec.status or 0) >= 400 or not rec.response_model:
        tried = ", ".join(a.target for a in rec.tried_targets)
        return f"nothing answered (tried: {tried})" if tried else "nothing answered"
    return f"{rec.target} ({rec.provider}) {rec.response_model}"


def cached(rec: Record) -> str:
    """Cache reads, and their share of the prompt (Gemini's implicit cache)."""
    u = rec.usage
    whole = u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens
    if not u.cache_read_tokens or not whole:
        return str(u.cache_read_tokens)
    return f"{u.cache_read_tokens} ({u.cache_read_tokens / whole:.0%} of the prompt)"


def timing_table(rec: Record) -> Table:
    u = rec.usage
    t = Table(show_header=False, box=None, padding=(0, 2))
    t.add_column(style="dim")
    t.add_column()

    def ms(v: float | None) -> str:
        return fmt.duration(v, precise=True)

    rows = [
        ("status", str(rec.status)),
        ("stop reason", str(rec.stop_reason)),
        ("mode", rec.request_mode),
        ("requested model", rec.request_model),
        ("answered by", answered_by(rec)),
        ("total latency", ms(rec.latency_ms)),
        ("upstream latency", ms(rec.llm_latency_ms)),
        ("time to first byte", ms(u.time_to_first_byte)),
        ("time to first token", ms(u.time_to_first_token)),
        ("time per token", ms(u.time_per_token)),
        ("input tokens", str(u.input_tokens)),
        ("output tokens", str(u.output_tokens)),
        ("cached tokens", cached(rec)),
        ("thinking tokens", str(u.thinking_tokens)),
        ("cost", "unknown (no price for this model)" if u.cost is None else fmt.usd(u.cost, precise=True)),
        ("session", str(rec.session_id)),
        ("client", f"{rec.client_ip} {rec.user_agent}"),
    ]
    if rec.cc_version:
        subagent = " (subagent)" if rec.cc_is_subagent else ""
        rows.append(("Claude Code", f"{rec.cc_version}{subagent}"))
    if rec.prompt_id:  # its telemetry, joined by request id: the turn, and what Claude Code thought it cost
        est = fmt.usd(rec.cc_cost, precise=True)
        rows.append(("turn", f"{rec.prompt_id} ({rec.query_source or 'source unknown'})"))
        rows.append(("Claude Code's estimate", f"{est} (at Claude's prices)"))
    if rec.error_type:
        rows.append(("error", f"{rec.error_type}: {rec.error_message}"))
    if rec.replay_of:
        rows.append(("replay of", rec.replay_of))
    for k, v in rows:
        t.add_row(k, v)
    for note in rec.notes:
        t.add_row("note", f"{note.kind}: {note.detail}")
    for i, a in enumerate(rec.tried_targets):
        t.add_row(
            f"attempt {i + 1}",
            f"{a.target} {a.upstream_scheme}://{a.host}:{a.port}{a.upstream_uri} → "
            f"{a.status} {ms(a.latency_ms)} {a.error or ''}",
        )
    return t


def upstream_heading(rec: Record) -> str:
    who = f"{rec.target} ({rec.provider})" if rec.target else "the upstream"
    up = payload(rec.upstream_response)
    if isinstance(up, list):
        return f"Upstream response: the {len(up)} stream chunks {who} sent"
    return f"Upstream response: what {who} sent"


def as_curl(rec: Record, base_url: str) -> str:
    """The client's request as a curl command (credentials left as a variable, never copied)."""
    url = base_url.rstrip("/") + rec.path + (f"?{rec.query}" if rec.query else "")
    parts = [
        "curl",
        "-sS",
        url,
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
        "-H",
        "x-api-key: $ANTHROPIC_API_KEY",
    ]
    body = orjson.dumps(rec.client_request).decode() if rec.client_request is not None else "{}"
    return (
        " ".join(shlex.quote(p) if not p.startswith("x-api-key") else f'"{p}"' for p in parts)
        + " -d "
        + shlex.quote(body)
    )


class DetailScreen(Screen[None]):
    """Tabs for one call; `c` copies it as JSON, `u` as curl."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="detail.back"),
        Binding("c", "copy_json", "Copy JSON", id="detail.copy_json"),
        Binding("u", "copy_curl", "Copy curl", id="detail.copy_curl"),
        Binding("t", "translation", "Translation", id="detail.translation"),
        Binding("R", "replay", "Replay…", id="detail.replay"),
        # the tab bar keeps focus (←/→ change tab); these scroll the open tab without a Tab to focus it first
        Binding("pagedown", "scroll_pane('page_down')", "Page down", show=False, id="detail.page_down"),
        Binding("pageup", "scroll_pane('page_up')", "Page up", show=False, id="detail.page_up"),
        Binding("down", "scroll_pane('down')", "Scroll down", show=False, id="detail.down"),
        Binding("up", "scroll_pane('up')", "Scroll up", show=False, id="detail.up"),
    ]

    class ReplayAsked(Message):
        """`R`: send this call again to another target (the app opens the confirm screen)."""

        def __init__(self, record: Record) -> None:
            super().__init__()
            self.record = record

    DEFAULT_CSS = """
    DetailScreen VerticalScroll { padding: 0 1; }
    DetailScreen .heading { margin: 1 0 0 0; color: $accent; }
    """

    def __init__(self, record: Record, base_url: str) -> None:
        super().__init__()
        self.record = record
        self.base_url = base_url

    def compose(self) -> ComposeResult:
        r = self.record
        yield Header(icon="◉")
        with TabbedContent(id="tabs"):
            with TabPane("Request", id="tab-request"):
                yield VerticalScroll(Static(_json(r.client_request), id="request-json"))
            with TabPane("Upstream request", id="tab-upstream"):
                yield VerticalScroll(Static(_json(r.upstream_request), id="upstream-json"))
            with TabPane("Response", id="tab-response"):
                yield VerticalScroll(
                    Static(
                        Text("Anthropic response: what the client received", style="bold"), classes="heading"
                    ),
                    Static(_json(r.response), id="response-json"),
                    Static(Text(upstream_heading(r), style="bold"), classes="heading"),
                    Static(_json(payload(r.upstream_response)), id="upstream-response-json"),
                )
            with TabPane("Stream events", id="tab-events"):
                yield VerticalScroll(
                    Static(
                        _json(payload(r.events))
                        if r.request_mode == "stream"
                        else Text("not a streamed call", style="dim"),
                        id="events-json",
                    )
                )
            with TabPane("Timing & usage", id="tab-timing"):
                yield VerticalScroll(Static(timing_table(r), id="timing"))
            with TabPane("Translation", id="tab-translation"):
                yield VerticalScroll(Static(translation(inspect(r)), id="translation"))
            with TabPane("Headers", id="tab-headers"):
                yield VerticalScroll(
                    Static(
                        _json({"request": r.request_headers, "response": r.response_headers}),
                        id="headers-json",
                    )
                )
        yield Footer()

    def on_mount(self) -> None:
        self._title(self.app.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._title(event.size.width)

    def _title(self, width: int) -> None:
        """`call <id> — model → target` in the header's room: the route shortened as the history's is (never
        the target cut by the header's own ellipsis), and below ~80 columns the id's first 12 characters,
        which `gatewatch show` takes as well."""
        rec = self.record
        room = width - HEADER_CHROME
        title = f"call {rec.id}"
        if room - len(title) - len(" — ") < 20:
            title = f"call {rec.id[:12]}"
        model, arrow, target = fmt.route(
            rec.request_model or "?", rec.target or "–", room - len(title) - len(" — ")
        )
        self.title, self.sub_title = title, f"{model}{arrow}{target}"

    def action_replay(self) -> None:
        self.post_message(self.ReplayAsked(self.record))

    def action_scroll_pane(self, how: str) -> None:
        tabs = self.query_one("#tabs", TabbedContent)
        pane = tabs.get_pane(tabs.active) if tabs.active else None
        if pane is not None:
            scroll = pane.query_one(VerticalScroll)
            {"page_down": scroll.scroll_page_down, "page_up": scroll.scroll_page_up}.get(
                how, scroll.scroll_down if how == "down" else scroll.scroll_up
            )()

    def action_translation(self) -> None:
        """What the gateway changed: the notes, the request diff, Google's error beside the client's."""
        self.query_one("#tabs", TabbedContent).active = "tab-translation"

    def action_copy_json(self) -> None:
        self._copy(self.record.model_dump_json(indent=2), "the call as JSON")

    def action_copy_curl(self) -> None:
        self._copy(as_curl(self.record, self.base_url), "the request as curl")

    @work(exclusive=True, group="copy", exit_on_error=False)
    async def _copy(self, text: str, what: str) -> None:
        """ "Copied" only when a clipboard took it. Textual's copy is an OSC 52 escape to the terminal, which
        can't tell whether the terminal honoured it: then the notice says it was sent, not copied."""
        tool = await asyncio.to_thread(copy_with_tool, text)
        if tool:
            self.notify(f"Copied {what} (with {tool})")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Sent {what} to the terminal's clipboard (OSC 52; some terminals ignore it)")
