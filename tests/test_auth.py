"""Service-account OAuth against a loopback token endpoint, with keys generated in the test."""

import asyncio
import datetime as dt
import json

import anthropic
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from proxy.config import ConfigError
from proxy.providers.auth import load_key
from tests.conftest import KEY_BITS, SA_EMAIL, run_gateway, service_account_info, target_for


async def test_concurrent_calls_share_one_token_refresh(fake, sa_json):
    async for gw in run_gateway({"targets": [target_for("vertex", fake, sa_json)]}, fake):
        await asyncio.gather(
            *(
                gw.client.messages.create(
                    model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                )
                for _ in range(10)
            )
        )
        assert fake.token_requests == 1
        tokens = {r.headers["Authorization"] for r in fake.received}
        assert len(tokens) == 1


async def test_a_token_near_expiry_is_refreshed_before_use(fake, sa_json):
    async for gw in run_gateway({"targets": [target_for("vertex", fake, sa_json)]}, fake):
        await gw.client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        creds = gw.gateway.providers[0].tokens._creds
        # four minutes left: inside the five-minute margin, so the next call refreshes first
        creds.expiry = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(minutes=4)
        await gw.client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert fake.token_requests == 2
        assert fake.received[-1].headers["Authorization"] != fake.received[0].headers["Authorization"]


async def test_a_key_the_token_endpoint_refuses_is_the_gateways_502_naming_the_account(fake, rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    fake.public_keys[SA_EMAIL] = rsa_key.public_key()  # the endpoint knows a different key than we sign with
    wrong = json.dumps(service_account_info(other, f"{fake.url}/token"))
    async for gw in run_gateway({"targets": [target_for("vertex", fake, wrong)]}, fake):
        # not a 401: Claude Code would read that as its own login failing
        with pytest.raises(anthropic.InternalServerError) as e:
            await gw.client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        msg = e.value.body["error"]["message"]
        assert e.value.status_code == 502 and e.value.response.headers["x-should-retry"] == "false"
        assert SA_EMAIL in msg and "Invalid JWT Signature" in msg
        assert "targets.vertex-flash.service_account_json" in msg and "not your Claude login" in msg
        assert "PRIVATE KEY" not in msg and not fake.received


def test_a_key_file_path_works_and_bad_keys_say_what_is_wrong(tmp_path, sa_json):
    path = tmp_path / "key.json"
    path.write_text(sa_json)
    assert load_key(str(path), "k")["client_email"] == SA_EMAIL
    with pytest.raises(ConfigError, match="cannot read the service-account key file"):
        load_key(str(tmp_path / "missing.json"), "k")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_key("{nope", "k")
    with pytest.raises(ConfigError, match="missing private_key"):
        load_key(json.dumps({"client_email": "a", "token_uri": "b"}), "k")


def test_a_key_file_holding_json_that_is_not_an_object_is_refused_as_not_a_key(tmp_path):
    path = tmp_path / "key.json"
    path.write_text('["not", "a", "key"]')
    with pytest.raises(ConfigError, match="not a service-account key \\(not a JSON object\\)"):
        load_key(str(path), "k")


def test_global_location_uses_the_global_host(sa_json):
    from proxy.config import TargetConfig
    from proxy.providers.vertex import VertexProvider

    t = TargetConfig(
        name="g",
        provider="vertex",
        model="gemini-2.5-flash",
        project_id="p",
        location_id="global",
        service_account_json=sa_json,
    )
    assert VertexProvider(t).url("generateContent") == (
        "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    )
    t2 = t.model_copy(update={"location_id": "europe-west4"})
    assert (
        VertexProvider(t2)
        .url("streamGenerateContent")
        .startswith("https://europe-west4-aiplatform.googleapis.com/")
    )
    assert VertexProvider(t2).url("streamGenerateContent").endswith(":streamGenerateContent?alt=sse")
