"""The gateway a console shows, wherever it runs: the one seam between the screens and a gateway.

`Host` is everything the screens ask of it. `Hosting` runs a gateway in this process (a `Service` on a thread
and event loop of its own); `Attached` (console/remote.py) watches one that runs elsewhere (`gatewatch serve`,
another console) through its event feed; `Watching` (console/watching.py) every gateway on a shared store,
through the store, with none in this process. The screens never ask which of them they have: what differs (the
header's words, where a replay goes, whose budget the Sessions view shows, whether the feed is live) is the
host's to say.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr

from proxy import config as cfg
from proxy.record import Record
from proxy.record.events import Bus
from proxy.service import Service, ServiceError, ServiceThread
from proxy.store import RecordStore

Target = tuple[str, str, str]
"""(name, provider kind, model) of one of the gateway's targets, as the header lists them"""


@dataclass(frozen=True)
class Words:
    """How the header says where the gateway is."""

    relation: str
    """before the URL in the title bar: "hosting", "attached to\""""
    lead: str
    """before the URL on the banner's first line"""
    leaving: str = ""
    """what quitting does to the gateway, where it is not the obvious (it goes on running)"""
    no_gateway: str = ""
    """said instead of the paste line and the targets where no gateway runs to point Claude Code at (a viewer
    of a shared store)"""


@dataclass(frozen=True)
class Door:
    """Where the console's replays go: the gateway's URL and token, the store its records land in, its
    targets."""

    url: str
    token: SecretStr | None
    get: Callable[[str], Record | None]
    targets: list[str]


class Host(Protocol):
    """What the console's screens ask of the gateway they show. The blocking calls (`open_store`, `start`,
    `stop`) run on a worker thread, never the screen's."""

    @property
    def bus(self) -> Bus:
        """The gateway's call events (and a hosted gateway's store commits): the console's `Feed` takes them."""

    @property
    def words(self) -> Words: ...

    @property
    def problem(self) -> str | None:
        """Why the gateway's events do not reach this console right now (shown as "not live"); None while
        they do."""

    @property
    def generation(self) -> int:
        """Counts what the gateway said of itself: the header redraws the targets when it changes."""

    @property
    def in_flight(self) -> int: ...

    @property
    def budget(self) -> cfg.BudgetSettings:
        """The caps the gateway enforces (the Sessions view's bars)."""

    def open_store(self) -> None:
        """Be ready to show the history (a hosted gateway becomes the store's writer: it may replay a journal)."""

    def start(self) -> str:
        """Start (or start following) the gateway; its URL. ServiceError with a message for people."""

    def ready(self) -> None:
        """The console is up, its history shown: start what waits for that (the demo's traffic)."""

    def stop(self) -> None:
        """Drain and flush a hosted gateway; a watched one only loses this console's connection."""

    def target_list(self) -> list[Target]:
        """The targets the gateway runs, for the header (none before it runs)."""

    def target_health(self) -> dict[str, dict[str, Any]]:
        """Each target's circuit state by name (plain data, read from the screen's thread)."""

    def paste_model(self) -> str | None:
        """The model the paste hint names, when it is not the first of this console's own config's targets."""

    def what_if_models(self) -> list[str]:
        """The models of the gateway's targets, in order: what the cost pane's `$` offers."""

    def door(self, get: Callable[[str], Record | None]) -> Door:
        """Where a replay goes; `get` reads its record back from the store."""


class Hosting:
    """A gateway in this process: a `Service` on a thread and event loop of its own, so nothing the screen
    does (a repaint, a slow query, an exception) delays or stops a call."""

    words = Words("hosting", "listening ")
    problem: str | None = None
    """a gateway in this process is always live (a start that failed is the console's problem to show)"""
    generation = 0

    def __init__(
        self,
        config: cfg.Config,
        store: RecordStore,
        *,
        insecure: bool = False,
        config_error: str | None = None,
        before_start: Callable[[], Coroutine[Any, Any, None]] | None = None,
        on_ready: Callable[[str], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.config = config
        self.config_error = config_error
        """the config could not be read: the console opens anyway, shows the store and says why nothing runs"""
        self.before_start = before_start
        """run on the gateway's loop before it starts (the demo's upstream, up before its credentials are
        checked: else a target reads 'unchecked: could not be reached' at first)"""
        self.on_ready = on_ready
        """run on the gateway's loop once the console is up (the demo's traffic), never the screen's"""
        self.service = Service(config, store, insecure=insecure)
        self.thread = ServiceThread(self.service)

    @property
    def bus(self) -> Bus:
        return self.service.bus

    @property
    def in_flight(self) -> int:
        return self.service.in_flight

    @property
    def budget(self) -> cfg.BudgetSettings:
        return self.config.budget

    def open_store(self) -> None:
        self.thread.open_store()

    def start(self) -> str:
        if self.config_error:
            raise ServiceError(
                f"configuration error:\n{self.config_error}\nFix the file and restart gatewatch."
            )
        if self.before_start is not None:
            self.thread.run(self.before_start()).result()
        return self.thread.start()

    def ready(self) -> None:
        if self.on_ready is not None and self.service.gateway is not None:
            self.thread.run(self.on_ready(self.service.url))

    def stop(self) -> None:
        self.thread.stop()

    def target_list(self) -> list[Target]:
        gateway = self.service.gateway
        return [(p.name, p.kind, p.model) for p in gateway.providers] if gateway is not None else []

    def target_health(self) -> dict[str, dict[str, Any]]:
        return self.service.target_health()

    def paste_model(self) -> str | None:
        return None  # the config's own first target: the hint reads it there

    def what_if_models(self) -> list[str]:
        return [t.model for t in self.config.targets]

    def door(self, get: Callable[[str], Record | None]) -> Door:
        targets = [t.name for t in self.config.targets]
        return Door(self.service.url, self.config.gateway.auth_token, get, targets)
