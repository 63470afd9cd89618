"""The gateway's upstream credential heals and explains itself (issue 21): a token the upstream forgot is
renewed once and the call goes through, no restart; a credential the gateway can't fix is the gateway's failure
(a 502 in its own words, naming the target and the fix), never a 401/403 Claude Code reads as its own login.
Driven by the real Claude Code where it is installed, the anthropic SDK otherwise."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from proxy.simulator import Reply
from tests import real_claude
from tests.conftest import SA_EMAIL, run_gateway, service_account_info, target_for
from tests.test_routing import AnthropicStandIn

ANSWER = "The answer is 42."


async def ask(url: str, home) -> tuple[bool, str]:
    """(succeeded, what the client shows): Claude Code's result, else the SDK's."""
    if real_claude.CLAUDE:
        run = await real_claude.prompt(url, "what is the answer?", home, "--model", "gemini-2.5-flash")
        res = run.result()
        return not res["is_error"], str(res["result"])
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-anything", max_retries=0)
    try:
        msg = await client.messages.create(
            model="gemini-2.5-flash", max_tokens=100, messages=[{"role": "user", "content": "answer?"}]
        )
        return True, msg.content[-1].text  # type: ignore[union-attr]
    except anthropic.APIStatusError as e:
        return False, f"API Error: {e.status_code} {e.body['error']['message']}"  # type: ignore[index]
    finally:
        await client.close()


async def health(url: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/health") as r:
            return {t["name"]: t for t in (await r.json())["targets"]}


async def test_a_token_the_upstream_forgot_is_renewed_and_the_next_call_succeeds_without_a_restart(
    fake, sa_json, tmp_path
):
    fake.responder = lambda body: Reply.text(ANSWER)
    async for gw in run_gateway({"targets": [target_for("vertex", fake, sa_json)]}, fake):
        assert await ask(gw.url, tmp_path / "h1") == (True, ANSWER)
        minted = fake.token_requests
        fake.tokens.clear()  # the token endpoint restarted, or the token was revoked
        assert await ask(gw.url, tmp_path / "h2") == (True, ANSWER)
        assert fake.token_requests == minted + 1  # one renewal, then the call went through
        rec = gw.records[-1]
        assert rec.status == 200 and len(rec.tried_targets) == 1
        assert "credential-renewed" in [n.kind for n in rec.notes]
        assert "upstream-error" not in [n.kind for n in rec.notes]  # the healed 401 is not the call's error
        assert (await health(gw.url))["vertex-flash"]["state"] == "ok"


async def test_a_credential_the_gateway_cant_fix_is_the_gateways_failure_naming_target_and_fix(
    fake, sa_json, tmp_path
):
    fake.responder = lambda body: Reply.text(ANSWER)
    async for gw in run_gateway({"targets": [target_for("vertex", fake, sa_json)]}, fake):
        assert await ask(gw.url, tmp_path / "h1") == (True, ANSWER)
        # the key is revoked: its tokens are forgotten and the token endpoint refuses to mint new ones
        fake.tokens.clear()
        fake.public_keys[SA_EMAIL] = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        ).public_key()
        ok, shown = await ask(gw.url, tmp_path / "h2")
        assert not ok
        # a server-side failure in the gateway's words, not "Please run /login" / "Failed to authenticate"
        assert "502" in shown and "/login" not in shown and "authenticate" not in shown
        assert "not your Claude login" in shown and "targets.vertex-flash.service_account_json" in shown
        assert SA_EMAIL in shown
        rec = gw.records[-1]
        assert rec.status == 502 and rec.error_type == "api_error"
        state = (await health(gw.url))["vertex-flash"]
        assert state["state"] == "refused" and state["credentials"].startswith(
            "refused: the service-account key"
        )
        # the fix arrives (the key is trusted again): the next call goes through and /health says ok
        fake.public_keys[SA_EMAIL] = _public(sa_json)
        assert await ask(gw.url, tmp_path / "h3") == (True, ANSWER)
        assert (await health(gw.url))["vertex-flash"]["state"] == "ok"


def _public(sa_json: str):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(json.loads(sa_json)["private_key"].encode(), password=None)
    return key.public_key()  # type: ignore[union-attr]


@pytest.fixture
async def standin():
    s = AnthropicStandIn()
    app = web.Application()
    app.router.add_post("/{tail:.*}", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield s
    await runner.cleanup()


async def test_a_claude_upstream_refusing_the_gateways_key_is_the_gateways_failure_the_clients_own_is_not(
    standin, fake, rsa_key
):
    fake.public_keys[SA_EMAIL] = rsa_key.public_key()
    key = json.dumps(service_account_info(rsa_key, f"{fake.url}/token"))
    vertex_claude = {
        "name": "claude-vertex",
        "provider": "vertex-anthropic",
        "model": "claude-sonnet-4-6@20250929",
        "project_id": "p1",
        "api_endpoint": standin.url,
        "service_account_json": key,
    }
    client_key = {"name": "anthropic", "provider": "anthropic", "model": "*", "api_endpoint": standin.url}
    standin.status = 401
    for target, status in ((vertex_claude, 502), (client_key, 401)):
        async for gw in run_gateway({"targets": [target]}, fake):
            with pytest.raises(anthropic.APIStatusError) as e:
                await gw.client.messages.create(
                    model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                )
            assert e.value.status_code == status
            said = e.value.body["error"]["message"]
            # the gateway's service account: its words and its fix; the client's own key: the client's 401
            assert ("not your Claude login" in said) == (status == 502)
            assert ("targets.claude-vertex.service_account_json" in said) == (status == 502)
