"""`R` in a call's detail: send the call again to another target (or model) and see both side by side.

A confirm screen first (the original's cost, the target, the model: a replay spends money), then the same
comparison `gatewatch replay` prints. The replay goes through the gateway's `POST /gatewatch/replay` (the one
this console hosts, or the one it is attached to), so it is translated, relayed and recorded as any call is,
linked to the original by `replay_of`. The I/O runs in a worker; the screen learns the outcome by messages.
"""

from __future__ import annotations

import aiohttp
from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Select, Static

from proxy.record import Record
from proxy.reports.replay import Comparison, NotReplayable, ReplayFailed, request_of, send, wait_record

from . import fmt
from .host import Door
from .replay import comparison_table, diff_text

DIFF_LINES = 200


class ReplayScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("y", "send", "Send (spends money)", id="replay.send"),
        Binding("escape", "close", "Close", id="replay.close"),
    ]
    DEFAULT_CSS = """
    ReplayScreen { align: center middle; }
    ReplayScreen > Vertical { width: 100%; max-width: 120; height: 100%; max-height: 40;
        border: round $accent; padding: 0 1; background: $surface; }
    ReplayScreen #replay-intro { height: auto; }
    ReplayScreen Select, ReplayScreen Input { width: 100%; }
    ReplayScreen #replay-result { height: 1fr; }
    """

    class Replayed(Message):
        """The replay ended and its record is in the store."""

        def __init__(self, comparison: Comparison) -> None:
            super().__init__()
            self.comparison = comparison

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(self, record: Record, door: Door) -> None:
        super().__init__()
        self.record = record
        self.door = door
        self.problem: str | None = None
        try:
            request_of(record)
        except NotReplayable as exc:
            self.problem = str(exc)
        if not self.problem and not door.targets:
            self.problem = f"the gateway at {door.url} lists no target to replay on"
        self.sending = False
        self.result: Comparison | None = None

    def compose(self) -> ComposeResult:
        r = self.record
        with Vertical():
            if self.problem:
                yield Static(Text(self.problem, style="bold red"), id="replay-intro")
                yield Static(Text("esc closes", style="dim"))
                return
            others = [t for t in self.door.targets if t != r.target] or self.door.targets
            intro = Text.assemble(
                ("Replay ", "bold"),
                (r.id, "bold cyan"),
                f"  ({r.request_model} → {r.target}/{r.response_model})\n",
                "The original cost ",
                ("unknown" if r.usage.cost is None else fmt.usd(r.usage.cost, precise=True), "bold green"),
                "; the replay spends money too. ",
                ("y", "bold cyan"),
                " sends, ",
                ("esc", "bold cyan"),
                " cancels.",
            )
            yield Static(intro, id="replay-intro")
            yield Select(
                [(t, t) for t in self.door.targets],
                value=others[0] if others else Select.BLANK,
                allow_blank=False,
                id="replay-target",
            )
            yield Input(placeholder="model (blank: the target's own)", id="replay-model")
            yield VerticalScroll(Static("", id="replay-output"), id="replay-result")

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#replay-model")
    def _submitted(self) -> None:
        self.action_send()

    def action_send(self) -> None:
        if self.problem or self.sending or self.result is not None:
            return
        target = self.query_one("#replay-target", Select).value
        if not isinstance(target, str):
            return
        model = self.query_one("#replay-model", Input).value.strip() or None
        self.sending = True
        where = f"{target}" + (f" at {model}" if model else "")
        self.query_one("#replay-output", Static).update(Text(f"sending to {where}…", style="yellow"))
        self._replay(target, model)

    @work(exclusive=True, group="replay", exit_on_error=False)
    async def _replay(self, target: str, model: str | None) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                rid = await send(session, self.door.url, self.door.token, self.record, target, model)
            new = await wait_record(self.door.get, rid)
        except (NotReplayable, ReplayFailed) as exc:
            self.post_message(self.Failed(str(exc)))
            return
        except aiohttp.ClientConnectionError:  # said as a person would, not as the socket's error
            self.post_message(self.Failed(f"no gateway answers at {self.door.url}: is it running?"))
            return
        except aiohttp.ClientError as exc:
            self.post_message(self.Failed(f"the gateway at {self.door.url} failed the replay: {exc}"))
            return
        self.post_message(self.Replayed(Comparison(self.record, new)))

    def on_replay_screen_replayed(self, message: Replayed) -> None:
        self.sending = False
        self.result = message.comparison
        c = message.comparison
        for choice in ("#replay-target", "#replay-model"):  # sent: the comparison gets their rows
            self.query_one(choice).display = False
        head = Text(f"{c.original.id} → replay {c.replay.id}", style="bold")
        self.query_one("#replay-output", Static).update(
            Group(head, comparison_table(c), diff_text(c, DIFF_LINES))
        )

    def on_replay_screen_failed(self, message: Failed) -> None:
        self.sending = False
        self.query_one("#replay-output", Static).update(Text(message.error, style="bold red"))
