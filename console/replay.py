"""`gatewatch replay`: send stored calls again to another target (or model) and show both answers side by side.

Replay goes through a gateway's `POST /gatewatch/replay` (its door, its token, its exchange), so the new call
is translated, relayed and recorded as any call is, `replay_of` the original. Which gateway: the one `--attach`
names, else a gatewatch already listening where the config says (the store has one writer: while a gateway
writes it, replays must go through that gateway), else one hosted here, in-process, on a free loopback port,
for as long as the replay takes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from proxy import config as cfg
from proxy.providers.served import well_formed
from proxy.record import Record
from proxy.reports.replay import (
    Comparison,
    NotReplayable,
    ReplayFailed,
    Summary,
    request_of,
    send,
    wait_record,
)
from proxy.service import Service, ServiceError
from proxy.store import RecordStore, StoreError, is_url, open_store, query

from . import fmt
from .remote import discover, probe

DIFF_LINES = 40
"""a single replay shows this much of the answers' diff; a filter replay a quarter of it per call"""


class Refused(Exception):
    """The replay can't start; the message says why. Nothing was sent."""


# -- what to replay ------------------------------------------------------------------------------------------
def select(store: RecordStore, words: Sequence[str], limit: int) -> tuple[list[Record], bool]:
    """The records to replay and whether `words` named one call (an id, or an unambiguous prefix of one) rather
    than a filter. A filter takes its newest `limit` messages calls."""
    if len(words) == 1 and ":" not in words[0] and " " not in words[0]:
        ids = store.ids(words[0], limit=2)
        if len(ids) > 1:
            raise Refused(f"{words[0]!r} is the start of several ids ({', '.join(ids)}, …): give more of it")
        if ids:
            rec = store.get(ids[0])
            assert rec is not None
            return [rec], True
    try:
        flt = query.parse(" ".join(words) + " kind:messages")
    except query.QueryError as exc:
        raise Refused(f"filter: {exc}") from None
    # the clients' own calls: a replay is not replayed again by a filter (its id still can be)
    flt = dataclasses.replace(flt, conditions=(*flt.conditions, query.Present("replay_of", negated=True)))
    rows = store.page(flt, limit=limit)
    records = [r for r in (store.get(s.id) for s in reversed(rows)) if r is not None]
    if not records:
        raise Refused(f"no stored call matches {' '.join(words)!r} (an id, an id's start, or a filter)")
    return records, False


# -- where to send it ----------------------------------------------------------------------------------------
@dataclass
class Door:
    """The gateway a replay goes through, and the store its new records land in."""

    url: str
    store: RecordStore
    targets: list[str]
    hosted: Service | None = None

    async def close(self) -> None:
        if self.hosted is not None:
            await self.hosted.stop()


async def reach(config: cfg.Config, path: Path | str, attach: str | None) -> Door:
    """A gateway that writes this store: `attach`, else one listening where the config says, else hosted here."""
    url = attach or await asyncio.to_thread(discover, config)
    if url:
        identity = await asyncio.to_thread(probe, url, config.gateway.auth_token)
        if identity is None:
            raise Refused(f"no gatewatch answers at {url}")
        if "store" not in identity:
            raise Refused(
                f"the gatewatch at {url} wants its token: set GATEWATCH_TOKEN or gateway.auth_token"
            )
        theirs = identity.get("store")
        where: Path | str
        if theirs and is_url(theirs):  # named without its password: ours, with it, when we name the same kind
            where = path if is_url(str(path)) else theirs
        else:
            where = Path(theirs) if theirs and Path(theirs).exists() else path
        try:
            store = open_store(where, secrets=config.secrets(), create=False)
        except StoreError as exc:
            raise Refused(f"the gatewatch at {url} writes a store this machine can't read: {exc}") from None
        return Door(url, store, [t["name"] for t in identity.get("targets") or []])
    hosted_config = config.model_copy(deep=True)
    hosted_config.gateway.host, hosted_config.gateway.port = "127.0.0.1", 0
    service = Service(hosted_config, open_store(path, secrets=config.secrets()))
    try:
        url = await service.start()
    except ServiceError as exc:
        await service.stop()
        if "another gatewatch is writing" in str(exc):
            raise Refused(
                f"{exc}. That gatewatch does not listen where the config says ({config.gateway.host}:"
                f"{config.gateway.port}): pass --attach URL so the replay goes through it"
            ) from None
        raise Refused(str(exc)) from None
    return Door(url, service.store, [t.name for t in config.targets], service)


# -- running ---------------------------------------------------------------------------------------------------
async def replay_all(
    door: Door,
    token: SecretStr | None,
    records: Sequence[Record],
    target: str,
    model: str | None,
    concurrency: int,
    progress: Progress | None = None,
) -> list[Comparison | tuple[Record, str]]:
    """Each record sent again, at most `concurrency` at a time; a result per record, in their order."""
    gate = asyncio.Semaphore(max(1, concurrency))
    task = progress.add_task("replaying", total=len(records)) if progress is not None else None
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)

    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(rec: Record) -> Comparison | tuple[Record, str]:
            async with gate:
                try:
                    rid = await send(session, door.url, token, rec, target, model)
                    new = await wait_record(door.store.get, rid)
                    return Comparison(rec, new)
                except (NotReplayable, ReplayFailed) as exc:
                    return rec, str(exc)
                except aiohttp.ClientError as exc:
                    return rec, f"the gateway at {door.url} could not be reached: {exc}"
                finally:
                    if progress is not None and task is not None:
                        progress.advance(task)

        return list(await asyncio.gather(*(one(r) for r in records)))


# -- showing ---------------------------------------------------------------------------------------------------
def comparison_table(c: Comparison) -> Table:
    t = Table(expand=False)
    t.add_column("", style="bold")
    t.add_column("original", overflow="fold")
    t.add_column("replay", overflow="fold")
    for label, a, b in c.rows:
        style = "yellow" if a != b and label in ("stop reason", "tool calls", "status") else ""
        t.add_row(label, a, Text(b, style=style))
    return t


def diff_text(c: Comparison, limit: int) -> Text:
    lines = c.diff()
    if not lines:
        return Text("answer text: the same", style="green")
    out = Text("answer text:\n", style="bold")
    for line in lines[:limit]:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        out.append(line + "\n", style=style)
    if len(lines) > limit:
        out.append(
            f"… {len(lines) - limit} more diff lines (gatewatch replay {c.original.id} shows them all)\n"
        )
    return out


def _usd(v: float | None) -> str:
    return "unknown" if v is None else fmt.usd(v)


def _duration(ms: float) -> str:
    return f"{ms:,.0f} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


def summary_table(s: Summary, total: int) -> Table:
    t = Table(title=f"replayed {s.compared} of {total} calls", title_justify="left")
    t.add_column("", style="bold")
    t.add_column("original", justify="right")
    t.add_column("replay", justify="right")
    t.add_row("total cost", _usd(s.original.cost), _usd(s.replay.cost))
    t.add_row(
        "total latency", f"{s.original.latency_ms / 1000:,.1f} s", f"{s.replay.latency_ms / 1000:,.1f} s"
    )
    t.add_row("tool choice differed", "", str(len(s.tools_differ)))
    t.add_row("stop reason differed", "", str(len(s.stop_differs)))
    t.add_row("errors", "", str(len(s.errors)))
    return t


def show(out: Console, results: Sequence[Comparison | tuple[Record, str]], single: bool) -> Summary:
    for r in results:
        if isinstance(r, tuple):
            out.print(Text(f"{r[0].id}: {r[1]}", style="red"))
            continue
        out.print(Text(f"{r.original.id} → replay {r.replay.id}", style="bold"), soft_wrap=True)
        out.print(comparison_table(r))
        out.print(diff_text(r, DIFF_LINES if single else DIFF_LINES // 4))
    summary = Summary.of(results)
    if not single:
        out.print(summary_table(summary, len(results)))
        for what, ids in (
            ("tool choice differed", summary.tools_differ),
            ("stop reason differed", summary.stop_differs),
        ):
            if ids:
                out.print(f"{what}: {', '.join(ids)}")
        for rid, err in summary.errors:
            out.print(Text(f"error: {rid}: {err}", style="red"))
    return summary


def confirm(records: Sequence[Record], target: str, model: str | None, yes: bool) -> None:
    """Say what it costs (the originals' cost) and ask; `--yes` skips the question."""
    known = [r.usage.cost for r in records if r.usage.cost is not None]
    unknown = len(records) - len(known)
    cost = fmt.usd(sum(known)) + (f" (+{unknown} at an unknown price)" if unknown else "")
    where = f"{target}" + (f" at {model}" if model else "")
    what = records[0].id if len(records) == 1 else f"{len(records)} calls"
    print(f"replay {what} on {where}: the original cost {cost}; the replay spends money too", file=sys.stderr)
    if yes:
        return
    if not sys.stdin.isatty():
        raise Refused("not asking on a non-interactive input: pass --yes to send")
    answer = input("send? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise Refused("not sent")


async def run(args: argparse.Namespace, config: cfg.Config, store: RecordStore, path: Path | str) -> int:
    """The whole command: select, check, ask, reach a gateway, send, show. Returns the exit status."""
    out = Console(highlight=False)
    records, single = select(store, args.what, args.limit)
    if single:
        request_of(records[0])  # a call without its payloads says so before anything else
    known = [t.name for t in config.targets]
    if args.model is not None and not well_formed(args.model):
        raise Refused(
            f"--model {args.model[:100]!r}: a model name is one word of letters, digits, '.', '_', '@' and '-'; "
            "nothing was sent"
        )
    door: Door | None = None
    if args.attach is None and known and args.target not in known:
        raise Refused(f"--target {args.target!r}: no such target in the config (targets: {', '.join(known)})")
    confirm(records, args.target, args.model, args.yes)
    door = await reach(config, path, args.attach)
    try:
        if args.target not in door.targets:
            raise Refused(
                f"--target {args.target!r}: the gateway at {door.url} has no such target "
                f"(targets: {', '.join(door.targets) or 'none'})"
            )
        mode = "hosted here" if door.hosted else "through"
        print(f"replaying {mode} {door.url}", file=sys.stderr)
        if single:
            results = await replay_all(door, config.gateway.auth_token, records, args.target, args.model, 1)
        else:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            ) as progress:
                results = await replay_all(
                    door,
                    config.gateway.auth_token,
                    records,
                    args.target,
                    args.model,
                    args.concurrency,
                    progress,
                )
    finally:
        await door.close()
    summary = show(out, results, single)
    return 1 if single and summary.errors else 0
