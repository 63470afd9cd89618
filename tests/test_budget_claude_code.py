"""One over-budget prompt is one refused call, and Claude Code says why: the real CLI (`claude -p`) where it is
installed, the official SDK (which honours `x-should-retry` as Claude Code does) otherwise. Measured before
the 429 `billing_error` answer: a 400 made Claude Code send the refused call 6 times."""

from __future__ import annotations

import anthropic

from proxy import config as cfg
from proxy.service import Service
from proxy.store import Store
from tests import claude_cli
from tests.conftest import target_for


async def test_one_over_budget_prompt_makes_one_refused_call_and_the_answer_names_the_budget(
    tmp_path, fake, sa_json
):
    raw = {
        "gateway": {"port": 0},
        "targets": [target_for("gemini", fake, sa_json)],
        "budget": {"daily_usd": 0.01},  # below one call's estimate: the first call is refused
    }
    svc = Service(cfg.from_mapping(raw, "test"), Store(tmp_path / "g.db"))
    url = await svc.start()
    try:
        if claude_cli.CLAUDE is not None:
            result = await claude_cli.run(url, tmp_path / "home", "say hi", timeout=300)
            assert result["is_error"] is True, result
            assert result.get("api_error_status") == 429 and result.get("api_error_type") == "billing_error"
            said = result["result"]
        else:
            client = anthropic.AsyncAnthropic(base_url=url, api_key="anything")  # default retries (2)
            try:
                await client.messages.create(
                    model="gemini-2.5-flash",
                    max_tokens=8000,
                    messages=[{"role": "user", "content": "say hi"}],
                )
                raise AssertionError("the call was not refused")
            except anthropic.APIStatusError as exc:
                assert exc.status_code == 429
                said = str(exc)
        assert "gatewatch budget" in said and "budget.daily_usd = $0.01" in said
        assert "resets at local midnight" in said
    finally:
        await svc.stop()
    calls = svc.store.page()
    assert [(s.status, s.error_type) for s in calls] == [(429, "billing_error")]  # one refused call, no retry
    assert not fake.received
