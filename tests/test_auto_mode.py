"""Auto mode, honestly (issue 21): Claude Code's `safeguards` (a check only Anthropic's servers run) are dropped
with a `field-dropped` note, and the console says once, when it first sees one, what that means and what to do."""

from __future__ import annotations

import anthropic

from console.history import HistoryTable
from proxy.simulator import Reply
from tests import real_claude
from tests.conftest import run_gateway, target_for
from tests.test_console import make_app, wait_for

SAFEGUARDS = [{"type": "dangerous_tool_use", "classifier_context": "the user asked to tidy the repo"}]


def safeguards_notes(rec) -> list:
    return [n for n in rec.notes if n.kind == "field-dropped" and n.data.get("field") == "safeguards"]


async def send_with_safeguards(url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-anything", max_retries=0)
    try:
        await client.messages.create(
            model="gemini-2.5-flash",
            max_tokens=20,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"safeguards": SAFEGUARDS},
        )
    finally:
        await client.close()


async def test_safeguards_are_dropped_with_a_note_naming_the_check(fake, sa_json, tmp_path):
    fake.responder = lambda body: Reply.text("done")
    async for gw in run_gateway({"targets": [target_for("vertex", fake, sa_json)]}, fake):
        if real_claude.CLAUDE:  # Claude Code in auto mode sends them itself
            run = await real_claude.prompt(
                gw.url, "hi", tmp_path / "home", "--model", "gemini-2.5-flash", "--permission-mode", "auto"
            )
            assert run.result()["result"] == "done"
        else:
            await send_with_safeguards(gw.url)
        rec = gw.records[-1]
    (note,) = safeguards_notes(rec)
    assert note.data["checks"] == ["dangerous_tool_use"]
    assert "dangerous_tool_use" in note.detail and "Anthropic's servers" in note.detail
    assert all(
        "safeguards" not in r.body for r in fake.received
    )  # never sent upstream (the strict fake agrees)


async def test_a_call_without_safeguards_has_no_such_note(gw):
    await gw.client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert not safeguards_notes(gw.records[-1])


async def test_the_console_says_once_what_auto_mode_needs(fake, sa_json, tmp_path):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.url))
        await send_with_safeguards(app.url)
        said = lambda: [n for n in app._notifications if n.title == "Claude Code's auto mode"]  # noqa: E731
        await wait_for(pilot, lambda: len(said()) == 1)
        assert "cannot run on Gemini" in said()[0].message and "--permission-mode" in said()[0].message
        await send_with_safeguards(app.url)
        await send_with_safeguards(app.url)
        table = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.pause(0.2)
        assert len(said()) == 1  # once, not per call
