"""`gatewatch`: the console (default), `serve`, `demo`, `export`, `stats`, `replay`, `prune`. A thin layer over `proxy`.

Examples:
    gatewatch                                  # console + gateway on 127.0.0.1:8000
    gatewatch serve --port 8000                # headless, one line per call
    gatewatch demo                             # console on a simulated upstream, no credentials
    gatewatch export model:flash since:2h --format kong --output calls.jsonl
    gatewatch stats since:1d
    gatewatch stats --by session --by agent since:1d
    gatewatch stats since:1d --price-as gemini-2.5-flash-lite   # the same usage at another model's prices
    gatewatch replay 3f9a1c --target studio    # one stored call again, on another target, side by side
    gatewatch replay model:pro since:1d --target flash --limit 20 --yes
    gatewatch show req_3f2a                    # what the gateway did to one call (an id or a prefix)
    gatewatch prune --older-than 30d
    gatewatch statusline --config gatewatch.toml < claude-code-status.json
    gatewatch claude                           # Claude Code through the gateway, set up for its first target
    gatewatch --config g.toml claude --target pro -p "explain this repo"   # anything after is Claude Code's
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from console.hint import usage_hint
from console.remote import Attached, discover, local_url, probe
from proxy import __version__
from proxy import config as cfg
from proxy import loop as loops
from proxy.exchange.credentials import Check
from proxy.money import plural, usd
from proxy.record import Record
from proxy.record.events import CallFinished
from proxy.record.pricing import find as find_price
from proxy.reports.export import FORMATS, export_file, without_payloads, write
from proxy.reports.inspection import inspect
from proxy.reports.replay import NotReplayable
from proxy.reports.stats import KEYS, Group, aggregate, counting_notes, notes_table, waste, waste_table
from proxy.service import Service, ServiceError
from proxy.store import RecordStore, StoreError, default_path, is_url, query
from proxy.store import open_store as store_at
from proxy.store.query import parse_duration
from proxy.translate.notes import legend


def _common(p: argparse.ArgumentParser, server: bool = True, sub: bool = True) -> None:
    # on a subcommand an option left out must not reset the same option given before it
    # (`gatewatch --config F stats` reads F): its default is "absent", the top level's is None
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument(
        "--db",
        **d,
        help="the store: a SQLite file, or postgresql://user:pass@host/db shared by several gateways "
        "(default: the config's [store] path or url, else $GATEWATCH_DB, else "
        "$XDG_DATA_HOME/gatewatch/gatewatch.db)",
    )
    p.add_argument(
        "--config",
        help="gatewatch.toml (default: ./gatewatch.toml, else the environment)",
        **d,
    )
    if server:
        p.add_argument("--host", help="address to bind (default 127.0.0.1)", **d)
        p.add_argument("--port", type=int, help="port (default 8000)", **d)
        p.add_argument(
            "--insecure",
            action="store_true",
            **d,
            help="allow a non-loopback --host without gateway.auth_token",
        )


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return n


REPLAY_LIMIT_MAX = 1000
"""calls one filter replay may send: each is admitted and reserved against the budget like any call, and a
replay of more is a script's job"""
REPLAY_CONCURRENCY_MAX = 16


def _bounded(most: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        n = _positive(text)
        if n > most:
            raise argparse.ArgumentTypeError(f"{n} is more than {most}, the most gatewatch replay takes")
        return n

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gatewatch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common(p, sub=False)
    p.add_argument("--version", action="version", version=f"gatewatch {__version__}")
    p.add_argument(
        "--attach",
        metavar="URL",
        help="watch the gatewatch at URL (its live feed and its store) instead of hosting a gateway; "
        "without it, a gatewatch already listening on the configured port is watched",
    )
    p.add_argument(
        "--price-as",
        metavar="MODEL",
        help="the console's cost pane also shows this session at MODEL's prices (`$` changes it)",
    )
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="run the gateway headless, printing one line per call")
    _common(s)
    d = sub.add_parser("demo", help="the console on a simulated Gemini upstream with generated traffic")
    d.add_argument("--db", default=argparse.SUPPRESS, help="store for the demo (default: a throwaway file)")
    d.add_argument("--port", type=int, default=0, help="gateway port (default: any free one)")
    d.add_argument("--rate", type=float, default=1.5, help="simulated calls per second")
    terms = dict(epilog=query.help_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    e = sub.add_parser("export", help="write the records matching a filter to a file", **terms)
    e.add_argument("filter", nargs="*", help="filter terms, e.g. model:flash status:>=400 since:2h")
    e.add_argument("--format", choices=FORMATS, default="json")
    e.add_argument("--output", "-o", help="file to write (default: standard output)")
    e.add_argument(
        "--no-payloads",
        action="store_true",
        help="leave out the request and response bodies (~100 KB per Claude Code call); facts, usage, "
        "timing and the prompt's preview stay",
    )
    _common(e, server=False)
    st = sub.add_parser(
        "stats", help="requests, errors, tokens, cost and latency per model and per target", **terms
    )
    st.add_argument("filter", nargs="*")
    st.add_argument(
        "--by",
        action="append",
        choices=KEYS,
        help="group by this (repeatable; default: model and target); session/agent: Claude Code's; prompt: "
        "Claude Code's turns (its telemetry pointed at the gateway), with cache share and its own estimate",
    )
    st.add_argument(
        "--price-as",
        metavar="MODEL",
        default=argparse.SUPPRESS,
        help="also price the stored usage at MODEL's prices (genai-prices): what these calls would have cost",
    )
    _common(st, server=False)
    rp = sub.add_parser(
        "replay",
        help="send a stored call (or the calls of a filter) again to another target, and compare",
        **terms,
    )
    rp.add_argument(
        "what", nargs="+", metavar="ID|FILTER", help="a call's id (or its unambiguous start), or a filter"
    )
    rp.add_argument(
        "--target", required=True, metavar="NAME", help="the target to send it to (a name in the config)"
    )
    rp.add_argument(
        "--model", metavar="M", help="the model to ask the target for (default: the target's own)"
    )
    rp.add_argument(
        "--limit",
        type=_bounded(REPLAY_LIMIT_MAX),
        default=10,
        metavar="N",
        help=f"a filter replays its newest N calls (default 10, at most {REPLAY_LIMIT_MAX})",
    )
    rp.add_argument(
        "--concurrency",
        type=_bounded(REPLAY_CONCURRENCY_MAX),
        default=4,
        metavar="K",
        help=f"calls in flight at once (default 4, at most {REPLAY_CONCURRENCY_MAX}); each is reserved "
        "against the budget like any call",
    )
    rp.add_argument("--yes", "-y", action="store_true", help="send without asking (the replay spends money)")
    rp.add_argument(
        "--attach",
        metavar="URL",
        default=None,
        help="replay through the gatewatch at URL (default: the one "
        "listening where the config says, else one hosted for the replay)",
    )
    _common(rp, server=False)

    sh = sub.add_parser(
        "show",
        help="what the gateway did to one call: its translation notes, the client request beside the upstream "
        "request, and for a failed call the upstream's error beside the client's",
        epilog=legend(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sh.add_argument("id", help="the call's id, or an unambiguous prefix of it (req_3f2a)")
    sh.add_argument("--json", action="store_true", help="print it as JSON")
    _common(sh, server=False)
    # listed for --help; main() hands it to console/statusline.py before parsing (its own two options)
    sub.add_parser("statusline", help="one line for Claude Code's statusLine (reads its JSON on stdin)")
    sub.add_parser(
        "claude",
        help="run Claude Code (`claude` on PATH) through the running gateway, set up for a target "
        "(`--target NAME` first; the rest goes to claude)",
        add_help=False,
    )
    pr = sub.add_parser("prune", help="delete old records and vacuum")
    pr.add_argument("--older-than", required=True, help="age, e.g. 30d, 12h")
    _common(pr, server=False)
    return p


def _die(msg: str, code: int = 2) -> None:
    print(f"gatewatch: {msg}", file=sys.stderr)
    sys.exit(code)


def load_config(args: argparse.Namespace, *, credentials: bool = True) -> cfg.Config:
    try:
        return load_config_or_raise(args, credentials=credentials)
    except cfg.ConfigError as exc:
        _die(f"configuration error:\n{exc}")
    raise AssertionError


def load_config_or_raise(args: argparse.Namespace, *, credentials: bool = True) -> cfg.Config:
    config = cfg.load(getattr(args, "config", None), credentials=credentials)
    if getattr(args, "host", None):
        config.gateway.host = args.host
    if getattr(args, "port", None) is not None:
        config.gateway.port = args.port
    return config


def store_path(args: argparse.Namespace, config: cfg.Config | None = None) -> tuple[Path | str, str]:
    """The database to use (a SQLite file, or a PostgreSQL URL) and where that choice came from (for the
    messages that name it)."""
    if getattr(args, "db", None):
        return (args.db if is_url(args.db) else Path(args.db).expanduser()), "--db"
    if config is not None and config.store.url:
        return config.store.url, f"[store] url in {config.source}"
    if config is not None and config.store.path:
        return Path(config.store.path).expanduser(), f"[store] path in {config.source}"
    env = os.environ.get("GATEWATCH_DB")
    if env and is_url(env):
        return env, "$GATEWATCH_DB"
    return default_path(), "$GATEWATCH_DB" if env else "the default"


def open_store(args: argparse.Namespace, config: cfg.Config | None = None) -> RecordStore:
    path, _ = store_path(args, config)
    try:
        return store_at(path, secrets=config.secrets() if config else [])
    except StoreError as exc:
        _die(str(exc))
    raise AssertionError


def _reader_config(args: argparse.Namespace) -> cfg.Config:
    """export/stats/show/prune need the config only for `[store]` (and the secrets to keep out): a file named
    or found is read strictly but for the targets' credentials (reading history needs the store, not the
    Google key); without one, an environment that wouldn't start a gateway doesn't matter."""
    if args.config or Path("gatewatch.toml").is_file():
        return load_config(args, credentials=False)
    try:
        return cfg.load(None, credentials=False)
    except cfg.ConfigError:
        return cfg.Config()


def open_reader(args: argparse.Namespace) -> RecordStore:
    """The store for export, stats and prune: one that exists (never created), named on stderr, with the
    journal of a writer that crashed replayed first, so its last calls are read too."""
    config = _reader_config(args)
    path, source = store_path(args, config)
    if isinstance(path, Path) and not path.exists():
        _die(
            f"{path.resolve()}: no such database (from {source}). Nothing was created. Pass the gateway's --db or "
            "--config, or run `gatewatch serve` first."
        )
    try:
        store = store_at(path, secrets=config.secrets(), create=False)
        logging.getLogger("gatewatch").setLevel(logging.ERROR)  # the replay is reported below, in our words
        live = not store.recover()
    except StoreError as exc:
        _die(str(exc))
        raise AssertionError from None
    print(f"database: {store.where} (from {source})", file=sys.stderr)
    if live:
        print(
            "note: a running gatewatch is writing to this database; the calls it has not committed yet "
            "(the last fraction of a second) are not included",
            file=sys.stderr,
        )
    elif store.replayed:
        print(
            f"recovered {store.replayed} records from the journal of a gatewatch that stopped abruptly",
            file=sys.stderr,
        )
    return store


def negations_as_terms(argv: list[str]) -> tuple[list[str], list[str]]:
    """`gatewatch export -model:pro` means the filter term, not an option: for export and stats, a word that
    starts with a single "-" and is not one of their options is taken out as a filter term.
    Returns (argv for argparse, the terms taken out)."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] not in ("export", "stats", "replay") or "--" in argv:
        return argv, []
    keep, terms = [], []
    for a in argv:
        if a.startswith("-") and not a.startswith("--") and a not in ("-o", "-h", "-y") and len(a) > 1:
            terms.append(a)
        else:
            keep.append(a)
    return keep, terms


def call_line(rec: Record) -> str:
    """One line per finished call, for `serve`."""
    u = rec.usage
    t = time.strftime("%H:%M:%S", time.localtime(rec.started_at))
    cost = usd(u.cost)
    answer = f"{rec.target}/{rec.response_model}" if rec.target else "-"
    ttft = f" ttft {u.time_to_first_token:.0f}ms" if u.time_to_first_token is not None else ""
    err = f" {rec.error_type}: {rec.error_message}" if rec.error_type else ""
    kind = "count" if rec.kind == "count_tokens" else rec.request_mode
    return (
        f"{t} {rec.status or '---'} {rec.request_model or '?'} → {answer} {kind} in={u.input_tokens} "
        f"out={u.output_tokens} {cost} {rec.latency_ms or 0:.0f}ms{ttft}{err}"
    )


def check_lines(checks: list[Check]) -> list[str]:
    """One line per target's credential check at start, for `serve`."""
    mark = {"ok": "ok", "refused": "REFUSED", "unchecked": "not checked"}
    tail = {"refused": " (tried after every other target until it answers)", "ok": "", "unchecked": ""}
    return [f"credentials of {c.target}: {mark[c.state]}: {c.detail}{tail[c.state]}" for c in checks]


async def serve(config: cfg.Config, store: RecordStore, insecure: bool = False) -> int:
    running = await asyncio.to_thread(discover, config)
    if running:
        _die(
            f"a gatewatch is already listening at {running}: run `gatewatch` to watch it, or start this one "
            f"with --port {config.gateway.port + 1}"
        )
    service = Service(config, store, insecure=insecure)
    # printed after the call's last bytes left, not before: no call waits for its line
    service.bus.subscribe(CallFinished, lambda e: print(call_line(e.record), flush=True), later=True)
    try:
        url = await service.start()
    except ServiceError as exc:
        await service.stop()
        _die(str(exc), exc.exit_code)
    assert service.gateway is not None
    targets = ", ".join(f"{p.name} ({p.kind} {p.model})" for p in service.gateway.providers)
    print(
        f"gatewatch listening on {url} → {targets}\nstore: {store.where}\nuse:   {usage_hint(url, config)}",
        flush=True,
    )
    for line in check_lines(service.checks):
        print(line, flush=True)
    if service.telemetry is not None:
        print(f"otel:  spans and metrics to {service.telemetry.plan.where} (OTLP/HTTP)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print(
        f"gatewatch: stopping; letting {service.in_flight} calls in flight finish…",
        file=sys.stderr,
        flush=True,
    )
    await service.stop()
    print(
        f"gatewatch: stopped; {store.stats.written} records written, {store.stats.lost} lost", file=sys.stderr
    )
    return 0


def _seconds(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None:
        _die(f"--older-than: {text!r} is not a duration like 30d or 12h")
    return seconds


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["statusline"]:
        from console.statusline import main as statusline

        return statusline(argv[1:])
    if "claude" in argv:  # what follows is Claude Code's, untouched; gatewatch's options come before it
        known, _ = parser().parse_known_args(argv)
        if known.command == "claude":
            return claude(known, argv[argv.index("claude") + 1 :])
    argv, negated = negations_as_terms(argv)
    args = parser().parse_args(argv)
    if args.command == "serve":
        config = load_config(args)
        if not config.targets:  # said before the store is opened: a serve that can't start creates nothing
            from proxy.service import NO_TARGET

            _die(NO_TARGET)
        return loops.run(serve(config, open_store(args, config), args.insecure))
    if args.command in ("export", "stats"):
        try:
            flt = query.parse(" ".join([*args.filter, *negated]))
        except query.QueryError as exc:
            _die(f"filter: {exc}")
        store = open_reader(args)
        if args.command == "export":
            records = store.iter_records(flt)
            if args.no_payloads:
                records = without_payloads(records)
            if args.output and args.output != "-":  # `-o -` is standard output, as in curl and tar
                try:
                    n = export_file(records, args.format, args.output)
                except OSError as exc:  # a missing folder, a directory: said, not a traceback (or temp name)
                    _die(f"export: cannot write {Path(args.output).resolve()}: {exc.strerror}")
                print(
                    f"exported {n} record{'' if n == 1 else 's'} to {Path(args.output).resolve()} "
                    f"({args.format})",
                    file=sys.stderr,
                )
                return 0
            try:
                write(records, args.format, sys.stdout.buffer)
                sys.stdout.flush()
            except BrokenPipeError:
                # `gatewatch export | head`: the reader had enough. Python's own recipe: point stdout at
                # devnull so the interpreter's final flush doesn't raise again, and exit as a piped tool does
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141
            return 0
        price_as = getattr(args, "price_as", None)
        if price_as and find_price(price_as) is None:
            _die(f"--price-as {price_as}: genai-prices has no price for this model")
        notes: Counter[str] = Counter()
        found: list[str] = []
        rows = counting_notes(store.summaries(flt), notes, found)
        for by, groups in aggregate(rows, args.by or ("model", "target"), price_as).items():
            if (
                by == "prompt"
            ):  # turns: the oldest first, each labelled with its prompt where Claude Code sent it
                groups.sort(key=lambda g: (g.key == "(none)", g.first_seen))  # calls of no turn last
                texts = store.prompts([g.key for g in groups if g.key != "(none)"])
                print(_table(by, groups, price_as, labels=texts))
            else:
                print(_table(by, groups, price_as))
        print(notes_table(notes))
        print(waste_table(waste(n for ns in store.findings(found).values() for n in ns)))
        return 0
    if args.command == "replay":
        return _replay(args, negated)
    if args.command == "show":
        return show(open_reader(args), args.id, args.json)
    if args.command == "prune":
        seconds = _seconds(args.older_than)
        if seconds <= 0:  # `0d` would delete every record, an hour's calls too: never by accident
            _die(f"--older-than {args.older_than}: give an age above zero (e.g. 30d); nothing was deleted")
        n = open_reader(args).prune(seconds)
        print(f"deleted {plural(n, 'record')} older than {args.older_than}")
        return 0
    if args.command == "demo":
        from console.demo import run_demo

        return run_demo(args)
    from console.app import run_console

    if args.price_as and find_price(args.price_as) is None:  # as `stats --price-as` says, before the screen
        _die(f"--price-as {args.price_as}: genai-prices has no price for this model")
    # The console shows a config problem on screen (and how to fix it) instead of dying before it opens.
    error = None
    try:
        config = load_config_or_raise(args)
    except cfg.ConfigError as exc:
        config, error = cfg.Config(), str(exc)
    url = args.attach or discover(config)
    if url:
        viewer = Attached(url, config.gateway.auth_token)
        try:
            viewer.identify()  # the feed starts with the console, so the console sees its first events
        except ServiceError as exc:
            _die(str(exc))
        return run_console(
            config,
            viewer_store(args, config, viewer),
            config_error=error,
            host=viewer,
            price_as=args.price_as,
        )
    return run_console(
        config, open_store(args, config), config_error=error, insecure=args.insecure, price_as=args.price_as
    )


def claude(args: argparse.Namespace, rest: list[str]) -> int:
    """`gatewatch claude`: Claude Code with the environment for the chosen target, against the gateway that
    listens where the config says (or `--attach URL`)."""
    from console import claude as cc

    if rest[:1] in (["--help"], ["-h"]):
        print(cc.HELP, end="")
        return 0
    config = load_config(args)
    name, rest = cc.split_target(rest)
    url = args.attach or discover(config)
    if not url:
        _die(
            f"no gatewatch listens at {local_url(config)}: start it first (`gatewatch serve`, or the console, "
            "`gatewatch`), or name it with --attach URL"
        )
    targets = [cc.Target.of(t) for t in config.targets]
    where = f"the config ({config.source})"
    if not targets:  # a viewer's paste line (`gatewatch --attach URL claude`): the running gateway's targets
        identity = probe(url, config.gateway.auth_token) or {}
        targets = [cc.Target.listed(t) for t in identity.get("targets") or [] if isinstance(t, dict)]
        where = f"the gateway at {url}"
    try:
        target = cc.pick(targets, name, where)
    except cfg.ConfigError as exc:
        _die(str(exc))
    try:
        cc.run(cc.environment(config, url, target, os.environ), rest)
    except cc.NoClaude as exc:
        _die(str(exc))
    return 0  # not reached: claude took over the process


def _replay(args: argparse.Namespace, negated: list[str]) -> int:
    from console import replay

    args.what = [*args.what, *negated]
    store = open_reader(args)
    config = _reader_config(args)
    try:
        return loops.run(replay.run(args, config, store, store_path(args, config)[0]))
    except (replay.Refused, NotReplayable) as exc:
        _die(str(exc), 1)
    raise AssertionError


def show(store: RecordStore, wanted: str, as_json: bool) -> int:
    """`gatewatch show ID`: the Translation tab, in the terminal."""
    ids = store.ids(wanted, limit=3) if wanted else []
    if not ids:
        _die(f"no call with an id starting {wanted!r} in this database")
    if len(ids) > 1 and wanted not in ids:
        more = ", ".join(ids[:2]) + (", …" if len(ids) > 2 else "")
        _die(f"{wanted!r} names more than one call ({more}): give more of the id")
    rec = store.get(wanted if wanted in ids else ids[0])
    if rec is None:
        _die(f"{ids[0]}: the record could not be read")
        raise AssertionError
    view = inspect(rec)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(view.as_json(), option=orjson.OPT_INDENT_2, default=str) + b"\n")
        return 0
    import io
    import shutil

    from rich.console import Console

    from console.translation import translation

    tty = sys.stdout.isatty()
    out = Console(
        file=io.StringIO(),
        record=True,
        highlight=False,
        width=shutil.get_terminal_size().columns,
        force_terminal=tty,
    )
    out.print(show_heading(rec))
    out.print(translation(view))
    text = out.export_text(styles=tty)
    sys.stdout.write("\n".join(line.rstrip() for line in text.splitlines()) + "\n")
    return 0


def show_heading(rec: Record) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.started_at))
    answered = f"{rec.target} ({rec.response_model})" if rec.target else "no target"
    line = f"call {rec.id} · {when} · {rec.status or '---'} · {rec.request_model or '?'} → {answered}\n"
    if rec.prompt_id:  # Claude Code's telemetry joined this call: its turn and its own estimate
        est = f" · Claude Code's estimate {usd(rec.cc_cost)}" if rec.cc_cost is not None else ""
        billed = f" · billed by Google {usd(rec.usage.cost)}" if rec.usage.cost is not None else ""
        src = f" · {rec.query_source}" if rec.query_source else ""
        line += f"turn {rec.prompt_id}{src}{est}{billed}\n"
    return line


def viewer_store(args: argparse.Namespace, config: cfg.Config, viewer: Attached) -> RecordStore:
    """The history a viewer shows: the store the watched gateway writes (it says which), read-only; when that
    file is not on this machine, the one --db or the config names. A PostgreSQL store is named without its
    password: --db or the config's url (with it) is used when given, else the named one (.pgpass, trust)."""
    theirs = viewer.identity.get("store")
    mine, source = store_path(args, config)
    path: Path | str
    if theirs and is_url(theirs):
        path = mine if is_url(str(mine)) and source != "the default" else theirs
    else:
        path = Path(theirs) if theirs and Path(theirs).exists() else mine
    try:
        return store_at(path, secrets=config.secrets(), create=False)
    except StoreError as exc:
        viewer.stop()
        _die(f"attached to {viewer.url}, but its history can't be read here: {exc}")
    raise AssertionError


def _fmt(v: float | None, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "ms":
        return f"{v:.0f}"
    if kind == "cost":
        return f"{v:.4f}"
    return str(v)


def _share(g: Group) -> str:
    whole = g.input_tokens + g.cache_read_tokens
    return f"{100 * g.cache_read_tokens / whole:.0f}%" if whole else "-"


def _label(text: str | None) -> str:
    """A turn's prompt on one line, cut to 60 characters; '-' where Claude Code did not send it."""
    if not text:
        return "-"
    one = " ".join(text.split())
    return one if len(one) <= 60 else one[:59] + "…"


def _table(
    by: str, rows: list[Group], price_as: str | None = None, labels: dict[str, str | None] | None = None
) -> str:
    """One grouping's table; a session's or a turn's adds its cache share, what the cache saved and Claude
    Code's own estimate (`labels`: a turn's prompt text, shown after its row)."""
    turns = by in ("session", "prompt")
    head = [
        by,
        "requests",
        "errors",
        "in tokens",
        "out tokens",
        "cost $",
        *([f"as {price_as} $"] if price_as else []),
        *(["cached", "saved $", "claude code $"] if turns else []),
        "p50 ms",
        "p95 ms",
        "ttft p50",
        "ttft p95",
        *(["prompt"] if labels is not None else []),
    ]
    body = [
        [
            r.key,
            str(r.requests),
            str(r.errors),
            str(r.input_tokens),
            str(r.output_tokens),
            _fmt(r.cost, "cost") + ("+?" if r.cost_unknown else ""),
            *([_fmt(r.cost_as, "cost") + ("+?" if r.cost_as_unknown else "")] if price_as else []),
            *([_share(r), _fmt(r.cache_saved, "cost"), _fmt(r.cc_cost, "cost")] if turns else []),
            _fmt(r.p50_ms, "ms"),
            _fmt(r.p95_ms, "ms"),
            _fmt(r.ttft_p50_ms, "ms"),
            _fmt(r.ttft_p95_ms, "ms"),
            *([_label((labels or {}).get(r.key))] if labels is not None else []),
        ]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[str]) -> str:
        last = len(cells) - 1 if labels is not None else -1  # the prompt's text reads left to right
        return "  ".join(
            c.ljust(w) if i in (0, last) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body), ""])


if __name__ == "__main__":
    sys.exit(main())
