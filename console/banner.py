"""The header's two lines: where the gateway is and whether it is live, its targets, the line to paste.

One place decides what they show at every width: where the gateway is first (a viewer whose gateway is gone
says so on the first line, never on a third one that isn't drawn), then the targets that are refused or
cooling, then the paste hint (or, where no gateway runs, what is watched instead). Plain facts in, a `Text`
out: no widget, no host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text

from proxy import config as cfg

from .hint import usage_hint
from .host import Target, Words

WIDE = 160
"""from this many columns the paste line shares the first line, and the targets get a line of their own"""


@dataclass(frozen=True)
class Banner:
    url: str
    words: Words
    not_live: str | None
    """why the gateway's events stopped reaching the console (said first), None while they flow"""
    targets: list[Target]
    health: dict[str, dict[str, Any]]
    config: cfg.Config
    paste_model: str | None
    """the model the paste hint names when it is not the config's (a viewer's gateway's)"""
    note: str = ""

    def text(self, width: int) -> Text:
        t = self._where()
        if self.words.no_gateway:
            self._no_gateway(t)
        elif width < WIDE:
            self._narrow(t, width)
        else:
            self._wide(t)
        t.no_wrap, t.overflow = True, "ellipsis"  # two lines, whatever the width: the hint stays on screen
        return t

    def _where(self) -> Text:
        t = Text()
        if self.not_live:
            t.append("⚠ not live: ", style="bold yellow")
            t.append(f"{self.not_live}; retrying", style="yellow")
        else:
            t.append(self.words.lead, style="dim")
            t.append(self.url, style="bold green")
        return t

    def _state(self, name: str) -> Any:
        return self.health.get(name, {}).get("state")

    def _refused(self) -> dict[str, Any]:
        """the targets whose credentials the check at start refused, with what it said"""
        return {n: self.health[n]["credentials"] for n, _, _ in self.targets if self._state(n) == "refused"}

    def _cooling(self) -> list[str]:
        """the targets left out for a while after failures"""
        return [n for n, _, _ in self.targets if self._state(n) == "cooling"]

    def _no_gateway(self, t: Text) -> None:
        """what is watched, then what the console shows in place of a gateway's"""
        if self.note:
            t.append(f"  {self.note}", style="italic yellow")
        t.append(f"\n{self.words.no_gateway}", style="dim")

    def _narrow(self, t: Text, width: int) -> None:
        """the figures on the first line, the paste line on a line of its own (cut in two where it must)"""
        refused, cooling, n = self._refused(), self._cooling(), len(self.targets)
        t.append(f"  {n} target{'s' if n != 1 else ''}", style="dim")
        if refused:  # the credential check at start said no: say it here, not in Claude Code's retries
            t.append(f"  ✗ {', '.join(refused)} refused", style="bold red")
        if cooling:  # left out for a while after failures: the pane may be too narrow to show it
            t.append(f"  ◌ {', '.join(cooling)} cooling", style="bold yellow")
        if self.note:
            t.append(f"  {self.note}", style="italic yellow")
        t.append("\n")
        room = width - 2  # the banner's padding
        hint = usage_hint(self.url, self.config, room, self.paste_model)
        if len(hint) > room and " " in hint[:room]:
            # cut at a space, the shell's way: both lines pasted together are the one command
            cut = hint.find(" ")  # after the URL, when the rest fits; else as late as fits
            if len(hint) - cut - 1 > room:
                cut = hint.rfind(" ", 0, room - 2)
            t.append(hint[:cut] + " \\\n" + hint[cut + 1 :], style="bold")
        else:
            t.append(hint, style="bold")

    def _wide(self, t: Text) -> None:
        """the paste line beside where the gateway is; every target, marked, on the second line"""
        refused, cooling = self._refused(), self._cooling()
        t.append("   paste: ", style="dim")
        t.append(usage_hint(self.url, self.config, model=self.paste_model), style="bold")
        t.append("\ntargets ", style="dim")
        for name, kind, model in self.targets:
            bad, cool = name in refused, name in cooling
            mark = "✗" if bad else "◌" if cool else "●"
            style = "bold red" if bad else "bold yellow" if cool else "green"
            t.append(f"{mark} {name}", style=style)
            t.append(f" {kind} {model}  ", style="dim")
            if bad:
                t.append(f"{refused[name]}  ", style="red")
        if self.words.leaving:
            t.append(f"  {self.words.leaving}", style="italic dim")
        if self.note:
            t.append(f"  {self.note}", style="italic yellow")
