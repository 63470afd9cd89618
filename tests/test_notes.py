"""Translation notes (issue 15): each kind is produced by a request that needs it, through real sockets against the
strict fake, and then shows up in the record, the store's `note:` filter, the JSON and Kong exports, the stats
count and the Translation tab's rendering."""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
import anthropic
import pytest
from rich.console import Console

from console.translation import translation
from proxy.insight.detector import FINDINGS
from proxy.record import Record
from proxy.reports.export import kong_record, write
from proxy.reports.inspection import client_view, diff, inspect, upstream_view
from proxy.reports.stats import counting_notes
from proxy.simulator import Reply, issue_signature
from proxy.store import Store
from proxy.store.query import parse
from proxy.translate.notes import KINDS, from_text
from tests.conftest import run_gateway, target_for

FLASH, GEMINI3 = "gemini-2.5-flash", "gemini-3-pro-preview"
LONG = "mcp__plugin_acme-observability-suite__query_time_series_metrics_for_a_service_by_label"
CLAUDE_SIG = base64.b64encode(b"\x12\x08claude-issued-signature" * 4).decode()
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cf"
        "c0f01f0005000201e5273ade0000000049454e44ae426082"
    )
).decode()
SDK_FIELDS = {
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "stop_sequences",
}


def tool(name: str, schema: dict | None = None, deferred: bool = False) -> dict:
    t: dict[str, Any] = {
        "name": name,
        "description": f"The {name} tool.",
        "input_schema": schema
        or {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    }
    if deferred:
        t["defer_loading"] = True
    return t


def user(text: str = "hi") -> dict:
    return {"role": "user", "content": text}


def tool_step(name: str = "Bash", tid: str = "toolu_1", lead: list | None = None) -> list[dict]:
    """The user asks, the assistant calls `name` (after `lead` blocks), the result comes back."""
    return [
        user("look"),
        {
            "role": "assistant",
            "content": [*(lead or []), {"type": "tool_use", "id": tid, "name": name, "input": {"q": "x"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": "42"}]},
    ]


@dataclass
class Case:
    kind: str
    body: dict
    replies: list[Callable[[], Reply]] = field(default_factory=lambda: [lambda: Reply.text("ok")])
    model: str = FLASH
    target: dict = field(default_factory=dict)
    fails: bool = False


def body(**kw: Any) -> dict:
    out: dict[str, Any] = {"model": "claude-opus-5-5", "max_tokens": 1000, "messages": [user()]}
    out.update(kw)
    return out


CASES = [
    Case("field-dropped", body(metadata={"user_id": "u1"}, context_management={"edits": []})),
    Case(
        "block-dropped",
        body(
            messages=[
                user("a"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
                        {"type": "text", "text": "b"},
                    ],
                },
                user("c"),
            ]
        ),
    ),
    Case("cap-applied", body(max_tokens=32000), target={"max_tokens": 8192}),
    Case(
        "thinking-mapped",
        body(thinking={"type": "adaptive"}, output_config={"effort": "low"}),
        model=GEMINI3,
    ),
    Case(
        "tool-renamed",
        body(tools=[tool(LONG)]),
        replies=[lambda: Reply.call(LONG[:40], {"q": "cpu"}, text="x")],
    ),
    Case(
        "tool-dropped",
        body(tools=[{"type": "web_search_20250305", "name": "web_search"}, tool("Bash")]),
    ),
    Case("deferred-held-back", body(tools=[tool("Bash"), tool("WebFetch", deferred=True)])),
    Case(
        "deferred-declared",
        body(tools=[tool("Bash"), tool("WebFetch", deferred=True)], messages=tool_step("WebFetch")),
    ),
    Case(
        "signature-kept",
        body(
            tools=[tool("Bash")],
            messages=tool_step(
                lead=[{"type": "thinking", "thinking": "", "signature": "gw1." + issue_signature()}]
            ),
        ),
        model=GEMINI3,
    ),
    Case(
        "signature-dropped",
        body(
            tools=[tool("Bash")],
            messages=tool_step(lead=[{"type": "thinking", "thinking": "hm", "signature": CLAUDE_SIG}]),
        ),
    ),
    Case("signature-injected", body(tools=[tool("Bash")], messages=tool_step()), model=GEMINI3),
    Case(
        "schema-keyword-removed",
        body(
            tools=[
                tool(
                    "Bash",
                    {
                        "type": "object",
                        "properties": {"q": {"type": "string"}},
                        "additionalProperties": False,
                    },
                )
            ]
        ),
    ),
    Case(
        "schema-keyword-rewritten",
        body(
            tools=[tool("Bash", {"type": "object", "properties": {"mode": {"const": "fast"}}})],
        ),
    ),
    Case(
        "system-folded",
        body(messages=[user(), {"role": "system", "content": "# Environment\n - cwd: /tmp"}]),
    ),
    Case(
        "media-converted",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "text", "text": "what is this?"},
                    ],
                }
            ]
        ),
    ),
    Case(
        "history-repaired",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_gone", "content": "compacted away"},
                        {"type": "text", "text": "go on"},
                    ],
                }
            ]
        ),
    ),
    Case("finish-mapped", body(), replies=[lambda: Reply(parts=[{"text": "cut"}], finish="OTHER")]),
    Case("refusal", body(), replies=[lambda: Reply(parts=[], finish="SAFETY")]),
    Case(
        "empty-retried",
        body(),
        replies=[lambda: Reply(parts=[], finish="STOP"), lambda: Reply.text("second time")],
    ),
    Case(
        "empty-failed",
        body(),
        replies=[lambda: Reply(parts=[], finish="STOP"), lambda: Reply(parts=[], finish="STOP")],
        fails=True,
    ),
    Case("usage-mapped", body(), replies=[lambda: Reply.text("ok", cached_tokens=3, prompt_tokens=10)]),
    Case("thoughts-dropped", body(), replies=[lambda: Reply.thinking("pondering", "answer")]),
    Case(
        "search-mapped",
        body(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]),
        replies=[
            lambda: Reply(
                parts=[{"text": "found [1]"}],
                grounding={
                    "webSearchQueries": ["gatewatch"],
                    "groundingChunks": [{"web": {"uri": "https://example.org/", "title": "example.org"}}],
                },
            )
        ],
        model=GEMINI3,
    ),
    Case(
        "signature-held",
        body(thinking={"type": "enabled", "budget_tokens": 1024}),
        replies=[lambda: Reply.thinking("pondering", "answer")],
        model=GEMINI3,
    ),
    Case(
        "signature-lost",  # an answer of ours whose text this (fresh) gateway never kept: as after a restart
        body(
            messages=[
                user("earlier"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "gw-none"},
                        {"type": "text", "text": "an earlier answer"},
                    ],
                },
                user(),
            ]
        ),
        model=GEMINI3,
    ),
    Case(
        "upstream-error",
        body(),
        replies=[lambda: Reply.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")],
        fails=True,
    ),
]
NOT_FROM_A_REQUEST = {"body-not-kept", "payloads-not-stored", "other"}
"""kinds the record itself gets (tests/test_reliability.py; the legacy test below), not a translation"""
FROM_THE_GATEWAYS_STATE = {"credential-renewed", "session-moved", "signature-reset"}
"""kinds made by what the gateway knows beyond one request: a token the upstream forgot
(tests/test_upstream_credentials.py), a session's target (tests/test_routing_rules.py)"""
FROM_A_SESSION = set(FINDINGS)
"""the detector's findings, made from a session's calls in order (tests/test_insight.py has their cases)"""


def test_every_kind_has_a_case_and_a_meaning():
    assert {c.kind for c in CASES} | NOT_FROM_A_REQUEST | FROM_THE_GATEWAYS_STATE | FROM_A_SESSION == set(
        KINDS
    )
    assert all(KINDS[k] for k in KINDS)


async def send(client: anthropic.AsyncAnthropic, req: dict) -> None:
    known = {k: v for k, v in req.items() if k in SDK_FIELDS}
    extra = {k: v for k, v in req.items() if k not in SDK_FIELDS}
    await client.messages.create(**known, extra_body=extra or None, timeout=60)


def rendered(rec: Record) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(translation(inspect(rec)))
    return out.getvalue()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_the_note_is_made_by_the_request_that_needs_it_and_found_everywhere(
    case, fake, sa_json, tmp_path
):
    raw = {"targets": [target_for("gemini", fake, sa_json, model=case.model, **case.target)]}
    fake.script(*(r() for r in case.replies))
    async for gw in run_gateway(raw, fake):
        if case.fails:
            with pytest.raises(anthropic.APIStatusError):
                await send(gw.client, case.body)
        else:
            await send(gw.client, case.body)  # the strict fake accepted what was sent
        rec = gw.records[-1]
    # the record
    noted = [n for n in rec.notes if n.kind == case.kind]
    assert noted and all(n.detail for n in noted), [str(n) for n in rec.notes]
    # the store and its filter
    store = Store(tmp_path / "n.db").start()
    store.submit(rec)
    store.close()
    assert [s.id for s in store.page(parse(f"note:{case.kind}"))] == [rec.id]
    assert [s.id for s in store.page(parse(f"note:{case.kind.split('-')[0]}*"))] == [rec.id]
    assert store.page(parse(f"-note:{case.kind}")) == []
    assert store.get(rec.id).notes == rec.notes  # read back whole
    # the exports
    buf = io.BytesIO()
    write(store.iter_records(parse(f"note:{case.kind}")), "json", buf)
    exported = json.loads(buf.getvalue())
    assert case.kind in [n["kind"] for n in exported[0]["notes"]]
    kong = kong_record(exported[0])
    assert case.kind in [n["kind"] for n in kong["gatewatch"]["notes"]] and "ai" in kong
    # the stats
    counts: Counter[str] = Counter()
    list(counting_notes(store.summaries(), counts))
    assert counts[case.kind] == 1
    # the Translation tab's content
    assert case.kind in rendered(rec)


async def test_a_failed_call_shows_googles_error_beside_what_the_client_received(fake, sa_json):
    raw = {"targets": [target_for("vertex", fake, sa_json)]}
    too_long = "The input token count (1250000) exceeds the maximum number of tokens allowed (1048576)."
    fake.script(Reply.error(400, "INVALID_ARGUMENT", too_long))
    async for gw in run_gateway(raw, fake):
        with pytest.raises(anthropic.BadRequestError) as e:
            await gw.client.messages.create(model="x", max_tokens=10, messages=[user()])
        rec = gw.records[-1]
    view = inspect(rec)
    assert view.upstream_error["error"]["message"] == too_long  # Google's own words, kept
    assert view.upstream_error["error"]["status"] == "INVALID_ARGUMENT"
    assert view.client_error["error"]["message"] == e.value.body["error"]["message"]
    assert view.client_error["error"]["message"].startswith("prompt is too long: 1250000 tokens")
    text = rendered(rec)
    assert "Why it failed" in text and "exceeds the maximum number" in text and "prompt is too long" in text


async def test_the_diff_names_what_changed_in_meaning_not_how_each_api_spells_it(fake, sa_json):
    raw = {"targets": [target_for("gemini", fake, sa_json, max_tokens=8192)]}
    req = body(
        max_tokens=32000,
        tools=[tool(LONG), tool("Bash")],
        messages=[user("look"), {"role": "system", "content": "# Env"}],
        metadata={"user_id": "u"},
    )
    fake.script(Reply.text("ok"))
    async for gw in run_gateway(raw, fake):
        await send(gw.client, req)
        rec = gw.records[-1]
    changes = {c.path: c for c in inspect(rec).diff}
    assert changes["max_tokens"].op == "changed" and (
        changes["max_tokens"].before,
        changes["max_tokens"].after,
    ) == (
        32000,
        8192,
    )
    assert changes[f"tools.{LONG}.name"].op == "changed"  # the same tool, compared with itself
    assert changes["metadata"].op == "removed" and changes["system messages"].op == "removed"
    assert "tools.Bash" not in changes and not any(p.startswith("messages[0]") for p in changes)
    # the client's message and Gemini's content compare equal: no noise from role names or part shapes
    assert (
        diff(
            client_view({"messages": [user("a")]}),
            upstream_view({"contents": [{"role": "user", "parts": [{"text": "a"}]}]}),
        )
        == []
    )


def test_notes_an_older_gatewatch_wrote_as_text_are_read_by_kind_and_migrated(tmp_path):
    import sqlite3

    from tests.test_store import make

    store = Store(tmp_path / "old.db").start()
    store.submit(make(1, notes=["foreign signature dropped (x1)", "signature injected (x1)"]))
    store.submit(make(2))
    store.close()
    c = sqlite3.connect(tmp_path / "old.db")  # as schema 4 left it: no column, notes as text in the JSON
    c.execute("ALTER TABLE records DROP COLUMN notes")
    data = json.loads(c.execute("SELECT data FROM records WHERE id = 'req_000001'").fetchone()[0])
    data["notes"] = [n["detail"] for n in data["notes"]]
    c.execute("UPDATE records SET data = ? WHERE id = 'req_000001'", (json.dumps(data).encode(),))
    c.execute("PRAGMA user_version = 4")
    c.commit()
    c.close()
    again = Store(tmp_path / "old.db")
    assert [s.id for s in again.page(parse("note:signature-injected"))] == ["req_000001"]
    assert [s.id for s in again.page(parse("-note:signature*"))] == ["req_000002"]
    assert [n.kind for n in again.get("req_000001").notes] == ["signature-dropped", "signature-injected"]
    assert from_text("something new").kind == "other"


# -- the CLI ---------------------------------------------------------------------------------------------------
def test_show_prints_the_translation_by_id_or_prefix_and_as_json(tmp_path):
    from tests.test_cli import _filled, cli
    from tests.test_console_translation import failed_call
    from tests.test_store import make

    db = tmp_path / "s.db"
    _filled(db, [failed_call(), make(8), make(9)])
    r = cli("show", "req_000007", "--db", str(db), env={"COLUMNS": "120"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("call req_000007") and "Why it failed" in r.stdout
    for text in ("upstream-error", "cap-applied", "INVALID_ARGUMENT", "prompt is too long", "max_tokens"):
        assert text in r.stdout
    r = cli("show", "req_0000", "--db", str(db))
    assert r.returncode == 2 and "more than one call" in r.stderr and "req_000007" in r.stderr
    r = cli("show", "req_9", "--db", str(db))
    assert r.returncode == 2 and "no call with an id starting 'req_9'" in r.stderr
    r = cli("show", "req_000009", "--json", "--db", str(db))
    assert r.returncode == 0 and json.loads(r.stdout)["notes"] == [] and json.loads(r.stdout)["diff"] is None
    _filled(db, [make(10, id="req_f00d1e")])
    assert json.loads(cli("show", "req_f", "--json", "--db", str(db)).stdout)["id"] == "req_f00d1e"
    shown = json.loads(cli("show", "req_000007", "--json", "--db", str(db)).stdout)
    assert shown["id"] == "req_000007" and shown["upstream_error"]["error"]["status"] == "INVALID_ARGUMENT"
    assert {"op": "changed", "path": "max_tokens", "before": 32000, "after": 8192} in shown["diff"]
    assert "upstream-error" in [n["kind"] for n in shown["notes"]]


def test_stats_counts_the_calls_of_each_note_kind(tmp_path):
    from tests.test_cli import _filled, cli
    from tests.test_console_translation import failed_call
    from tests.test_store import make

    db = tmp_path / "s.db"
    _filled(db, [failed_call(), make(8, notes=["signature injected (x1)"]), make(9)])
    r = cli("stats", "--db", str(db))
    assert r.returncode == 0, r.stderr
    section = r.stdout[r.stdout.index("translation notes") : r.stdout.index("waste")].splitlines()
    counts = dict(line.split() for line in section[2:] if line.strip())
    assert r.stdout.rstrip().endswith("waste: none found")  # the stats end with the waste section
    assert (
        counts["field-dropped"] == "1"
        and counts["signature-injected"] == "1"
        and counts["upstream-error"] == "1"
    )
    r = cli("stats", "note:signature*", "--db", str(db))
    section = r.stdout[r.stdout.index("translation notes") : r.stdout.index("waste")].splitlines()
    assert dict(line.split() for line in section[2:] if line.strip()) == {"signature-injected": "1"}


# -- the demo --------------------------------------------------------------------------------------------------
async def test_the_demo_makes_calls_with_translation_decisions_and_an_upstream_error(tmp_path):
    import random

    from console.demo import Demo, responder, traffic
    from proxy.service import Service

    # the demo's Gemini refuses a prompt for the whole monorepo as Google refuses one over the window
    ask = {"contents": [{"role": "user", "parts": [{"text": "summarise the whole monorepo, every file"}]}]}
    reply = responder(random.Random(1))(ask)
    assert (
        reply.status == 400 and reply.error_status == "INVALID_ARGUMENT" and "exceeds" in reply.error_message
    )
    demo = Demo(rate=20, seed=3, limit=6)
    store = Store(tmp_path / "demo.db", secrets=demo.config.secrets())
    service = Service(demo.config, store)
    url = await service.start()
    await demo.sim.start(port=demo.sim_port)
    try:
        await traffic(url, 20, seed=3, limit=6)
        async with aiohttp.ClientSession() as http:  # and the one that fails, for certain
            await http.post(
                f"{url}/v1/messages",
                json={
                    "model": "claude-opus-5-5",
                    "max_tokens": 32000,
                    "messages": [{"role": "user", "content": "summarise the whole monorepo, every file"}],
                },
            )
    finally:
        await demo.sim.stop()
        await service.stop()
    calls = list(store.summaries(parse("kind:messages")))
    # every call of the demo's traffic shows decisions (its tools' schemas, its thinking settings)
    traffic_calls = [c for c in calls if "monorepo" not in c.preview]
    assert traffic_calls and all(
        {"schema-keyword-removed", "thinking-mapped"} <= set(c.notes) for c in traffic_calls
    )
    failed = store.page(parse("note:upstream-error status:400"))
    assert (
        failed and inspect(store.get(failed[-1].id)).upstream_error["error"]["status"] == "INVALID_ARGUMENT"
    )
    assert any("cap-applied" in f.notes for f in failed)  # opus → vertex-flash, capped at its 8192


def test_the_demo_s_throwaway_store_goes_with_it_and_a_given_one_stays(tmp_path, monkeypatch):
    import argparse

    import console.app
    from console.demo import run_demo

    seen: list = []

    def run(app):  # the screen itself is the console tests' business: here, what the demo opened and said
        seen.append((app.store.path, app.main.banner_note))
        assert app.store.path.parent.exists()

    monkeypatch.setattr(console.app.GatewatchApp, "run", run)
    run_demo(argparse.Namespace(db=None, rate=1.0, port=0))
    (path, note), *_ = seen
    assert "throwaway store" in note and not path.parent.exists()
    run_demo(argparse.Namespace(db=str(tmp_path / "kept.db"), rate=1.0, port=0))
    path, note = seen[1]
    assert note.endswith(f"store {tmp_path / 'kept.db'}") and "throwaway store" not in note
    assert (tmp_path / "kept.db").exists()


# -- the translator alone: what is noted, and what is not --------------------------------------------------------
def test_notes_say_how_media_moved_and_stay_quiet_when_nothing_changed_in_meaning():
    from proxy.translate import request as treq

    flash = treq.Target(FLASH)
    req = body(
        messages=tool_step(),
        tools=[tool("Bash")],
    )
    req["messages"][2]["content"][0]["content"] = [
        {"type": "text", "text": "see"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]
    req["messages"][0]["content"] = [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        {"type": "text", "text": "read it"},
    ]
    details = [n.detail for n in treq.translate(req, flash).notes if n.kind == "media-converted"]
    assert any("tool_result moved beside its functionResponse" in d for d in details)
    assert "image (base64 image/png) → inlineData" in details
    assert "document URL → fileData, application/pdf guessed from the URL" in details
    # a budget the model takes as asked, no thinking on a model that can stop, no cap reached: no notes
    quiet = treq.translate(body(thinking={"type": "enabled", "budget_tokens": 2048}, max_tokens=16000), flash)
    assert quiet.notes == []
    assert treq.translate(body(), flash).notes == []
    # the billing header and cache_control are noted as dropped fields
    cc = body(
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.1; cc_entrypoint=cli;"},
            {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}},
        ]
    )
    fields = [n.data["field"] for n in treq.translate(cc, flash).notes if n.kind == "field-dropped"]
    assert fields == ["system.x-anthropic-billing-header", "cache_control"]


async def test_a_call_no_target_answered_shows_what_each_attempt_ended_with(fake, sa_json):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    raw = {"targets": [target_for("gemini", fake, sa_json, name="gone", api_endpoint=dead)]}
    async for gw in run_gateway(raw, fake):
        with pytest.raises(anthropic.APIStatusError):
            await gw.client.messages.create(model="x", max_tokens=10, messages=[user()])
        rec = gw.records[-1]
    view = inspect(rec)
    (tried,) = view.upstream_error["no error body; the attempts"]
    assert tried["target"] == "gone" and tried["error"]
    assert view.client_error["error"]["message"] == rec.error_message
    assert "the attempts" in rendered(rec)
