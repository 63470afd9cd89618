"""Export records as JSON, JSON lines or Kong file-log lines, streaming in constant memory."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator
from urllib.parse import parse_qsl

import orjson

from proxy import registry
from proxy.record import Record

FORMATS = ("json", "jsonl", "kong")
PAYLOADS = ("client_request", "upstream_request", "upstream_response", "response", "events")
"""the bodies of a call (about 100 KB for a Claude Code call); `without_payloads` leaves them out"""


def _ms(v: float | None) -> int:
    return int(round(v or 0))


def kong_record(rec: Record | dict[str, Any]) -> dict[str, Any]:
    """One record in the shape of Kong's file-log with the AI Proxy section (see docs in the README)."""
    r = rec if isinstance(rec, Record) else Record.model_validate(rec)
    u = r.usage
    host = r.request_headers.get("host", "localhost")
    uri = r.path + (f"?{r.query}" if r.query else "")
    latency = _ms(r.latency_ms)
    llm = _ms(r.llm_latency_ms)
    # Kong's prompt_tokens includes cached tokens; Anthropic's input_tokens does not.
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens
    tried = []
    tries = []
    for a in r.tried_targets:
        tried.append(
            {
                "provider": registry.kong_name(a.provider),
                "model": a.model,
                "port": a.port,
                "upstream_scheme": a.upstream_scheme,
                "host": a.host,
                "upstream_uri": a.upstream_uri,
                "route_type": a.route_type,
                "ip": "",
                # our richer per-attempt facts, under a key strict Kong readers ignore
                "gatewatch": {
                    "target": a.target,
                    "status": a.status,
                    "error": a.error,
                    "latency": _ms(a.latency_ms),
                },
            }
        )
        tries.append(
            {"balancer_latency": 0, "port": a.port, "ip": a.host, "balancer_start": 0, "code": a.status}
        )
    out: dict[str, Any] = {
        "request": {
            "method": r.method,
            "uri": uri,
            "url": f"http://{host}{uri}",
            "querystring": dict(parse_qsl(r.query, keep_blank_values=True)),
            "size": r.request_size,
            "headers": r.request_headers,
        },
        "response": {"status": r.status or 0, "size": r.response_size, "headers": r.response_headers},
        "latencies": {"request": latency, "proxy": llm, "kong": max(0, latency - llm)},
        "tries": tries,
        "upstream_status": ", ".join(str(a.status) for a in r.tried_targets if a.status is not None),
        "started_at": int(r.started_at * 1000),
        "client_ip": r.client_ip,
        "service": {"name": "gatewatch"},
        "route": {"name": r.kind},
        "ai": {
            "proxy": {
                "tried_targets": tried,
                "meta": {
                    "request_model": r.request_model,
                    "request_mode": r.request_mode,
                    "response_model": r.response_model or "",
                    "provider_name": registry.kong_name(r.provider),
                    "llm_latency": llm,
                    "plugin_id": r.target or "",
                },
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": u.output_tokens,
                    "total_tokens": prompt + u.output_tokens,
                    "cost": u.cost if u.cost is not None else 0,
                    "time_per_token": u.time_per_token or 0,
                    "time_to_first_token": _ms(u.time_to_first_token),
                    "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens}
                    if u.cache_read_tokens
                    else {},
                    "completion_tokens_details": {"reasoning_tokens": u.thinking_tokens}
                    if u.thinking_tokens
                    else {},
                },
            }
        },
    }
    if r.notes:  # what the gateway changed, under a key strict Kong readers ignore (as tried_targets' own)
        out["gatewatch"] = {"notes": [{"kind": n.kind, "detail": n.detail} for n in r.notes]}
    return out


def without_payloads(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The records without their bodies: every fact, usage, timing and the prompt's preview stay."""
    for rec in records:
        yield {k: v for k, v in rec.items() if k not in PAYLOADS}


def write(records: Iterable[dict[str, Any]], fmt: str, out: IO[bytes]) -> int:
    """Stream `records` (dicts) to `out`; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    n = 0
    if fmt == "json":
        out.write(b"[")
    for rec in records:
        if fmt == "json":
            out.write((b",\n" if n else b"\n") + orjson.dumps(rec))
        elif fmt == "jsonl":
            out.write(orjson.dumps(rec) + b"\n")
        else:
            out.write(orjson.dumps(kong_record(rec)) + b"\n")
        n += 1
    if fmt == "json":
        out.write(b"\n]\n" if n else b"]\n")
    return n


def export_file(records: Iterable[dict[str, Any]], fmt: str, path: str | os.PathLike[str]) -> int:
    """Write to `path` (0600: exports hold prompts) atomically: into a temp file created beside it with
    O_EXCL (never through a planted symlink), renamed over it when complete, removed on any failure."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory; give a file name", str(p))
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            n = write(records, fmt, f)
        os.replace(tmp, p)  # replaces a symlink at `p` itself, never its target
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return n
