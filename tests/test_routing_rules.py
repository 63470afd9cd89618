"""Routing rules a user can predict (issue 21): a route's targets serve only their route, fallback included; a
request refused for what it is (400, 413, 422) is never sent to another target; a Claude Code session stays on
the target it started on while that target answers, and a move is on the record with its signature reset."""

from __future__ import annotations

import anthropic
import pytest

from proxy.simulator import Reply
from proxy.translate.marks import SKIP
from tests.conftest import run_gateway, target_for
from tests.serving import free_port

USER = [{"role": "user", "content": "hi"}]


def flash(fake, sa_json, name: str, **kw) -> dict:
    return target_for("gemini", fake, sa_json, name=name, model="gemini-2.5-flash", **kw)


def dead() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: the target fails before any byte


async def test_a_routes_targets_never_serve_another_model_not_even_as_fallback(fake, sa_json):
    raw = {
        "balancer": {"algorithm": "priority"},
        "routes": [{"model": "claude-*haiku*", "targets": ["lite"]}],
        "targets": [
            flash(fake, sa_json, "flash-a", api_endpoint=dead(), weight=50),
            # the heaviest target, reserved for haiku: priority would pick it right after flash-a
            target_for("gemini", fake, sa_json, name="lite", model="gemini-2.5-flash-lite", weight=100),
            flash(fake, sa_json, "flash-b", weight=1),
            target_for("gemini", fake, sa_json, name="pro", model="gemini-2.5-pro", weight=10),
        ],
    }
    async for gw in run_gateway(raw, fake):
        # a flash call whose first target fails goes to the other flash target, not the route's Flash-Lite
        msg = await gw.client.messages.create(model="gemini-2.5-flash", max_tokens=10, messages=USER)
        assert msg.content[0].text
        assert [a.target for a in gw.records[-1].tried_targets] == ["flash-a", "flash-b"]
        assert [r.model for r in fake.received] == ["gemini-2.5-flash"]
        # a model no route matches falls back among unreserved targets only
        fake.script(Reply.error(503, "UNAVAILABLE", "busy"), Reply.error(503, "UNAVAILABLE", "busy"))
        with pytest.raises(anthropic.APIStatusError):
            await gw.client.messages.create(model="claude-opus-5-5", max_tokens=10, messages=USER)
        assert "lite" not in [a.target for a in gw.records[-1].tried_targets]
        # the route's own calls go to the route's target, and only there
        fake.script(Reply.error(503, "UNAVAILABLE", "busy"))
        with pytest.raises(anthropic.APIStatusError):
            await gw.client.messages.create(model="claude-haiku-5-5", max_tokens=10, messages=USER)
        assert [a.target for a in gw.records[-1].tried_targets] == ["lite"]


@pytest.mark.parametrize(
    "reply",
    [
        lambda: Reply.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
        lambda: Reply(status=413, raw=b"<html><title>413 Request Entity Too Large</title></html>"),
        lambda: Reply(status=422, raw=b'{"error": {"code": 422, "message": "Unprocessable"}}'),
    ],
    ids=["400", "413", "422"],
)
async def test_a_deterministic_4xx_is_never_sent_to_another_target(fake, sa_json, reply):
    raw = {"targets": [flash(fake, sa_json, "one"), flash(fake, sa_json, "two")]}
    async for gw in run_gateway(raw, fake):
        fake.script(reply(), Reply.text("the second target would have answered"))
        with pytest.raises(anthropic.BadRequestError):
            await gw.client.messages.create(model="gemini-2.5-flash", max_tokens=10, messages=USER)
        assert len(gw.records[-1].tried_targets) == 1 and len(fake.received) == 1


def session(sid: str) -> dict[str, str]:
    return {"x-claude-code-session-id": sid}


async def test_a_session_stays_on_its_target_and_a_move_resets_its_signatures_on_the_record(fake, sa_json):
    model = "gemini-3-pro-preview"  # requires a signature on the current turn's function calls
    raw = {
        "balancer": {"algorithm": "round-robin"},  # would alternate the two targets call by call
        "targets": [
            target_for("gemini", fake, sa_json, name="a", model=model),
            target_for("vertex", fake, sa_json, name="b", model=model),
        ],
    }
    async for gw in run_gateway(raw, fake):
        c = gw.client
        tools = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]
        fake.script(Reply.call("Bash", {"command": "ls"}))
        first = await c.messages.create(
            model=model, max_tokens=50, messages=USER, tools=tools, extra_headers=session("s-one")
        )
        home = gw.records[-1].target
        other = "b" if home == "a" else "a"
        for _ in range(3):  # round-robin would have sent every other one to the other target
            await c.messages.create(model=model, max_tokens=10, messages=USER, extra_headers=session("s-one"))
            assert gw.records[-1].target == home
            assert not {"session-moved", "signature-reset"} & {n.kind for n in gw.records[-1].notes}
        # the session's target fails: the call moves, and the signature Gemini issued through it stays behind
        use = next(b for b in first.content if b.type == "tool_use")
        history = [
            *USER,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "a b"}]},
        ]
        fake.script(Reply.error(503, "UNAVAILABLE", "The model is overloaded."), Reply.text("done"))
        before = len(fake.received)
        await c.messages.create(
            model=model, max_tokens=10, messages=history, tools=tools, extra_headers=session("s-one")
        )
        rec = gw.records[-1]
        assert [a.target for a in rec.tried_targets] == [home, other] and rec.target == other
        moved = next(n for n in rec.notes if n.kind == "session-moved")
        assert moved.data == {"session": "s-one", "from": home, "to": other, "model": model}
        assert "overloaded" in moved.detail
        reset = next(n for n in rec.notes if n.kind == "signature-reset")
        assert reset.data["removed"] == 1 and reset.data["injected"] == 1
        sent_home, sent_other = fake.received[before:]
        assert _call_signature(sent_home.body) not in (None, SKIP)  # the home target got its own back
        assert _call_signature(sent_other.body) == SKIP  # the new one: Google's skip value, not the old one
        # the session now lives on the new target
        await c.messages.create(model=model, max_tokens=10, messages=USER, extra_headers=session("s-one"))
        assert gw.records[-1].target == other
        assert "session-moved" not in {n.kind for n in gw.records[-1].notes}


def _call_signature(body: dict) -> str | None:
    for turn in body["contents"]:
        for part in turn["parts"]:
            if "functionCall" in part:
                return part.get("thoughtSignature")
    return None
