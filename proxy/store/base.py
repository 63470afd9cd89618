"""What the rest of gatewatch asks of a record store (`RecordStore`), and the typed rows it answers with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from proxy.paths import data_dir as data_dir
from proxy.paths import default_path as default_path
from proxy.record import Record
from proxy.record.events import Bus
from proxy.store.query import EVERYTHING, Filter
from proxy.translate.notes import Note

if TYPE_CHECKING:
    from proxy.store.dialect import Dialect
    from proxy.store.insight import SessionView, Turn


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """A connection as the ledger, the findings and the schema use one: SQLite's or PostgreSQL's, which knows
    its dialect (proxy/store/dialect.py) for what the SQL written once for both spells differently."""

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


class StoreError(Exception):
    """The database can't be used; the message says which file and what to do."""


@dataclass(frozen=True, slots=True)
class Summary:
    """One call as the history lists it: the indexed facts of its record, without the payloads."""

    seq: int
    """the order records were committed in (the store's row number): a tiebreak for keyset paging"""
    id: str
    started_at: float
    ended_at: float | None
    kind: str
    status: int | None
    request_model: str
    response_model: str | None
    target: str | None
    provider: str | None
    request_mode: str
    session_id: str | None
    client_ip: str
    user_agent: str
    path: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    thinking_tokens: int
    total_tokens: int
    cost: float | None
    latency_ms: float | None
    ttft_ms: float | None
    ttfb_ms: float | None
    time_per_token: float | None
    stop_reason: str | None
    error_type: str | None
    error_message: str | None
    cancelled: bool
    tools_used: tuple[str, ...]
    attempts: int
    preview: str
    agent_id: str | None = None
    """Claude Code's sub-agent (None: the main agent)"""
    cc_version: str | None = None
    cc_is_subagent: bool | None = None
    replay_of: str | None = None
    """the call this one sent again (`gatewatch replay`)"""
    notes: tuple[str, ...] = ()
    """the kinds of its translation notes (and of its findings)"""
    prompt_id: str | None = None
    """Claude Code's prompt id (its telemetry, joined by request id)"""
    cc_cost: float | None = None
    """Claude Code's own cost estimate"""
    query_source: str | None = None
    cache_saved: float | None = None
    """what the implicit cache saved (USD)"""
    parent_agent_id: str | None = None
    """the sub-agent that spawned this call's sub-agent (None: the main agent did, or none)"""

    @property
    def failed(self) -> bool:
        return (self.status or 0) >= 400 or self.error_type is not None


@dataclass(frozen=True, slots=True)
class AgentTotals:
    """One agent of a Claude Code session, rolled up: the main agent (`agent_id` '') or a sub-agent."""

    session_id: str
    agent_id: str
    first_seen: float
    last_seen: float
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    """calls that billed tokens at a price nobody knows (their cost is not in `cost`)"""
    models_asked: tuple[str, ...] = ()
    models_served: tuple[str, ...] = ()
    parent_call: str | None = None
    """the record whose `Agent` tool_use started this sub-agent, where it can be told"""
    parent_agent: str | None = None
    """that record's agent ('' the main agent)"""
    first_prompt: str = ""
    cc_version: str | None = None
    ctx_tokens: int = 0
    """the last call's prompt (input + cache reads + cache writes): how full the context is"""
    ctx_asked: str | None = None
    ctx_model: str | None = None
    """the model that served that call"""
    compactions: int = 0
    """times the prompt fell sharply between two calls of the same model (Claude Code compacted)"""
    last_compaction_at: float | None = None

    def with_(self, **changes: Any) -> AgentTotals:
        return replace(self, **changes)

    @property
    def is_main(self) -> bool:
        return not self.agent_id


@dataclass(frozen=True, slots=True)
class SessionTotals:
    """A Claude Code session, rolled up over all its agents; `main` is its main agent's row."""

    session_id: str
    first_seen: float
    last_seen: float
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost: float
    unpriced: int
    models_asked: tuple[str, ...]
    models_served: tuple[str, ...]
    agents: int
    """sub-agents seen"""
    cc_version: str | None
    main: AgentTotals | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    """Cost over every stored record and over those started since `since`; this writer's counts."""

    cost: float
    cost_since: float
    since: float
    records: int
    written: int
    lost: int


@dataclass
class WriterStats:
    written: int = 0
    lost: int = 0
    """records not written (yet): kept in the journal and retried, so this can fall again"""
    retries: int = 0
    last_error: str | None = None
    recovered: int = 0
    """records counted as lost and written later"""
    compactions: int = 0
    """times the journal was rewritten without its committed prefix"""


class RecordStore(Protocol):
    """A store of call records: a writer fed by `submit`, and reads by `Filter`.

    Reads return typed rows (`Summary`, `Record`, `Totals`), never a database's own rows or query language, so
    the console, the CLI and export work the same over any implementation.
    """

    stats: WriterStats
    bus: Bus
    """where the writer announces `RecordsCommitted` and `RecordsLost` (on its own thread)"""

    replayed: int
    """records a crashed writer left in the journal, written by `start` or `recover`"""

    shared: bool
    """other processes may write the same database (their spend is only known by reading it again)"""

    @property
    def where(self) -> str:
        """The database, for messages and for a console that attaches (a file's path; a URL without its
        password)."""
        ...

    @property
    def pending(self) -> int:
        """Records submitted and not committed yet."""
        ...

    def start(self) -> RecordStore:
        """Become the writer (recovering what a crashed one left); reading needs no start."""
        ...

    def recover(self) -> bool:
        """For a reader: replay what crashed writers left; False when a live writer holds the journal."""
        ...

    def watch(self) -> None:
        """Announce on `bus` what other processes commit to the same database (`RecordsCommitted` without
        records), until `close`; nothing to do where only this process writes."""
        ...

    def submit(self, rec: Record) -> None:
        """Hand over a finished record; never waits on the database."""
        ...

    def close(self, timeout: float = 10) -> None:
        """Flush everything submitted and stop the writer; idempotent."""
        ...

    def page(
        self, flt: Filter = EVERYTHING, limit: int = 100, after: Summary | None = None, offset: int = 0
    ) -> list[Summary]:
        """Newest first; `after` is the last row of the previous page (keyset paging)."""
        ...

    def count(self, flt: Filter = EVERYTHING, cap: int | None = None) -> int:
        """How many records match; with `cap`, stop past it (cap + 1 means "more than cap")."""
        ...

    def get(self, record_id: str) -> Record | None: ...

    def committed_after(self, row: int | None, limit: int = 200) -> tuple[int, list[Record]]:
        """The records committed after row `row`, in commit order, at most `limit`, and the row to ask after
        next; with None, none and the newest row now (where a reader that counts what comes starts)."""
        ...

    def ids(self, prefix: str, limit: int = 2) -> list[str]:
        """The ids that start with `prefix` (with or without its `req_`), at most `limit`."""
        ...

    def iter_records(self, flt: Filter = EVERYTHING) -> Iterator[dict[str, Any]]:
        """Every matching record, whole, as JSON-ready dicts, oldest first, in constant memory (export)."""
        ...

    def summaries(self, flt: Filter = EVERYTHING) -> Iterator[Summary]:
        """Every matching record's summary, oldest first, in constant memory (stats)."""
        ...

    def totals(self, since: float) -> Totals: ...

    def prune(self, older_than_s: float) -> int:
        """Delete records started more than this many seconds ago; returns how many."""
        ...

    def sessions(self, limit: int = 50, since: float | None = None) -> list[SessionTotals]:
        """Claude Code sessions rolled up, the most recently active first."""
        ...

    def session(self, session_id: str) -> SessionTotals | None: ...

    def agents(self, session_id: str) -> list[AgentTotals]:
        """A session's agents: the main one first, then its sub-agents as they started."""
        ...

    def spend_today(self) -> float:
        """USD spent on calls started today (local time), from the roll-up: survives restarts."""
        ...

    def session_spend(self, session_id: str) -> float: ...

    def budget_connection(self) -> Any:
        """A connection for the budget's own thread (proxy/exchange/budget.py), the reservations table in place."""
        ...

    def budget_transaction(self, conn: Any) -> contextlib.AbstractContextManager[Any]:
        """A transaction on it that every admission (of every replica) takes one after the other."""
        ...

    def budget_exclusive(self, conn: Any) -> None:
        """Within that transaction: exclude the record writers too (for a reservation written late)."""
        ...

    def submit_telemetry(self, events: list[dict[str, Any]]) -> None:
        """Hand over Claude Code's telemetry events (`proxy/edge/telemetry.py`); joined to records by the writer."""
        ...

    def findings(self, record_ids: Sequence[str]) -> dict[str, list[Note]]:
        """The detector's findings of these records (`proxy/insight`), by record."""
        ...

    def prompts(self, prompt_ids: Sequence[str]) -> dict[str, str | None]:
        """Claude Code's prompts' text where it was sent and kept, by prompt id."""
        ...

    def turns(self, session_id: str) -> list[Turn]:
        """A session's turns (its calls by Claude Code's prompt id), the newest first."""
        ...

    def latest_turns(self, session_ids: Sequence[str], per: int) -> dict[str, list[Turn]]:
        """The latest `per` turns of each of these sessions, oldest first."""
        ...

    def session_views(self, session_ids: Sequence[str]) -> dict[str, SessionView]:
        """Several sessions' figures with their findings by kind, from the roll-ups: the Sessions view's rows."""
        ...

    def session_view(self, session_id: str) -> SessionView:
        """A session's cache share and savings, findings by kind, Claude Code's estimate beside the bill."""
        ...
