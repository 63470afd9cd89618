"""Credentials that explain themselves: the provider decided from what the value is, every target's credential
checked at start (real google-auth against the fake's loopback token endpoint; `models.get` on the strict fake),
and a failure after fallback naming every attempt."""

import json

import aiohttp
import anthropic
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from console.app import GatewatchApp
from proxy import config as cfg
from proxy.exchange.credentials import check_all
from proxy.providers import make
from proxy.service import Service, ServiceError
from proxy.simulator import Reply
from proxy.store import Store
from tests.conftest import API_KEY, KEY_BITS, SA_EMAIL, run_gateway, service_account_info, target_for
from tests.serving import free_port
from tests.test_console import plain, wait_for


def env_for(fake, key: str, **extra: str) -> dict[str, str]:
    return {"GEMINI_API_KEY": key, "GEMINI_API_ENDPOINT": fake.url, **extra}


async def started(config: cfg.Config, tmp_path):
    config.gateway.port = 0  # never a fixed port: the user's own gatewatch may hold 8000 (issue 22)
    service = Service(config, Store(tmp_path / "c.db"))
    try:
        url = await service.start()
    except ServiceError:
        await service.stop()
        raise
    return service, url


async def ask(url: str, prompt: str = "hi") -> anthropic.types.Message:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-x", max_retries=0)
    try:
        return await client.messages.create(
            model="claude-opus-5-5", max_tokens=20, messages=[{"role": "user", "content": prompt}]
        )
    finally:
        await client.close()


async def test_a_service_account_key_without_gcp_project_id_goes_to_vertex_in_the_keys_own_project(
    fake, sa_json, tmp_path
):
    path = tmp_path / "key.json"
    path.write_text(sa_json)
    for key in (sa_json, str(path)):  # the JSON itself, or a file holding it
        config = cfg.from_env(env_for(fake, key))
        (t,) = config.targets
        assert t.provider == "vertex" and t.project_id == "example-project"
    service, url = await started(config, tmp_path)
    try:
        assert fake.token_requests == 1  # minted at start, against the key's own token endpoint
        fake.script(Reply.text("from vertex"))
        assert (await ask(url)).content[0].text == "from vertex"
        assert fake.token_requests == 1  # the token minted at start served the call
        sent = fake.received[-1]
        # the default model (a current Flash) is served on Vertex's global endpoint
        assert (
            f"/projects/example-project/locations/global/publishers/google/models/{cfg.DEFAULT_MODEL}:"
            in sent.path
        )
        assert "x-goog-api-key" not in {k.lower() for k in sent.headers}  # the private key is never a key
        assert sent.headers["Authorization"].startswith("Bearer ")
    finally:
        await service.stop()


async def test_gcp_project_id_beside_an_api_key_starts_on_the_gemini_api(fake, tmp_path):
    config = cfg.from_env(env_for(fake, API_KEY, GCP_PROJECT_ID="my-project"))
    (t,) = config.targets
    assert t.provider == "gemini"
    service, url = await started(config, tmp_path)
    try:
        assert fake.model_gets == 1  # the key was checked with a free models.get before any call
        assert service.checks[0].state == "ok"
        fake.script(Reply.text("from the gemini api"))
        assert (await ask(url)).content[0].text == "from the gemini api"
        assert fake.received[-1].headers["x-goog-api-key"] == API_KEY
    finally:
        await service.stop()


def test_a_key_in_the_wrong_place_is_refused_before_it_is_ever_sent(sa_json):
    with pytest.raises(cfg.ConfigError, match="api_key holds a service-account key, not an API key"):
        cfg.from_mapping(
            {
                "targets": [
                    {"name": "g", "provider": "gemini", "model": "gemini-2.5-flash", "api_key": sa_json}
                ]
            },
            "t.toml",
        )
    with pytest.raises(cfg.ConfigError, match=r"service_account_json holds an API key \(AIza…\)"):
        cfg.from_mapping(
            {
                "targets": [
                    {
                        "name": "v",
                        "provider": "vertex",
                        "model": "gemini-2.5-flash",
                        "project_id": "p",
                        "service_account_json": API_KEY,
                    }
                ]
            },
            "t.toml",
        )
    with pytest.raises(cfg.ConfigError) as e:
        cfg.from_env({"GEMINI_API_KEY": json.dumps({**json.loads(sa_json), "project_id": ""})})
    assert "needs project_id (GCP_PROJECT_ID" in str(e.value) and "PRIVATE KEY" not in str(e.value)


async def test_a_bad_api_key_is_refused_at_start_with_googles_reason(fake, tmp_path):
    config = cfg.from_env(env_for(fake, "AIzaSy-not-the-right-key-000000000000000"))
    with pytest.raises(ServiceError) as e:
        await started(config, tmp_path)
    msg = str(e.value)
    assert e.value.exit_code == 2
    assert "every target's credentials were refused" in msg and "gemini: " in msg
    assert "API key not valid" in msg and "AIzaSy-not-the-right-key" not in msg
    assert not fake.received  # nothing was ever called


async def test_a_service_account_key_the_token_endpoint_refuses_is_refused_at_start(fake, rsa_key, tmp_path):
    other = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    fake.public_keys[SA_EMAIL] = (
        rsa_key.public_key()
    )  # the endpoint knows another key than the one we sign with
    wrong = json.dumps(service_account_info(other, f"{fake.url}/token"))
    with pytest.raises(ServiceError) as e:
        await started(cfg.from_env(env_for(fake, wrong)), tmp_path)
    msg = str(e.value)
    assert SA_EMAIL in msg and "Invalid JWT Signature" in msg and "PRIVATE KEY" not in msg


async def test_a_token_endpoint_that_cannot_be_reached_leaves_the_target_unchecked_not_refused(
    rsa_key, fake, tmp_path
):
    gone = f"http://127.0.0.1:{free_port()}/token"
    key = json.dumps(service_account_info(rsa_key, gone))
    config = cfg.from_mapping({"targets": [target_for("vertex", fake, key)]}, "t")
    (check,) = await check_all([make(t) for t in config.targets], timeout=5)
    assert check.state == "unchecked" and "could not be reached" in check.detail and gone in check.detail


async def test_health_says_unchecked_for_a_credential_the_start_could_not_judge(
    rsa_key, fake, sa_json, tmp_path
):
    fake.public_keys[SA_EMAIL] = rsa_key.public_key()
    gone = f"http://127.0.0.1:{free_port()}/token"
    config = cfg.from_mapping(
        {
            "gateway": {"port": free_port()},
            "targets": [
                target_for("vertex", fake, json.dumps(service_account_info(rsa_key, gone))),
                target_for("gemini", fake, sa_json),
            ],
        },
        "t",
    )
    service, url = await started(config, tmp_path)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/health") as r:
                health = await r.json()
    finally:
        await service.stop()
    creds = {t["name"]: t["credentials"] for t in health["targets"]}
    assert creds["vertex-flash"].startswith("unchecked: ") and gone in creds["vertex-flash"]
    assert creds["studio"] == "ok"


async def test_a_refused_target_is_shown_in_health_and_the_console_and_tried_last(
    fake, sa_json, rsa_key, tmp_path
):
    fake.public_keys[SA_EMAIL] = rsa_key.public_key()
    other = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    wrong = json.dumps(service_account_info(other, f"{fake.url}/token"))
    config = cfg.from_mapping(
        {
            "gateway": {"port": free_port()},
            # priority would pick vertex first; its refused key puts it last
            "targets": [
                target_for("vertex", fake, wrong, weight=200),
                target_for("gemini", fake, sa_json, weight=100),
            ],
        },
        "t",
    )
    app = GatewatchApp(config, Store(tmp_path / "c.db"), export_dir=str(tmp_path))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.url))
        banner = plain(app.query_one("#banner").content)
        assert "✗ vertex-flash" in banner and "refused: the service-account key for" in banner
        async with aiohttp.ClientSession() as s:
            async with s.get(app.url + "/health") as r:
                health = await r.json()
        vertex = next(t for t in health["targets"] if t["name"] == "vertex-flash")
        studio = next(t for t in health["targets"] if t["name"] == "studio")
        assert vertex["state"] == "refused" and "Invalid JWT Signature" in vertex["credentials"]
        assert studio["state"] == "ok" and health["status"] == "degraded"
        fake.script(Reply.text("from studio"))
        msg = await ask(app.url)
        assert msg.content[0].text == "from studio"
        assert len(fake.received) == 1 and "x-goog-api-key" in fake.received[0].headers


async def test_when_every_target_fails_the_error_names_each_attempts_failure(fake, rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    fake.public_keys[SA_EMAIL] = rsa_key.public_key()
    wrong = json.dumps(service_account_info(other, f"{fake.url}/token"))
    dead = f"http://127.0.0.1:{free_port()}"
    raw = {
        "targets": [
            target_for("vertex", fake, wrong, weight=200),
            {**target_for("gemini", fake, ""), "api_endpoint": dead},
        ]
    }
    async for gw in run_gateway(raw, fake):
        with pytest.raises(anthropic.APIStatusError) as e:
            await gw.client.messages.create(
                model="claude-opus-5-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        msg = e.value.body["error"]["message"]
        assert msg.startswith("every target failed: vertex-flash: the service-account key for ")
        assert "Invalid JWT Signature" in msg and "; studio: " in msg
        rec = gw.records[-1]
        assert rec.error_message == msg and [a.target for a in rec.tried_targets] == [
            "vertex-flash",
            "studio",
        ]


async def test_serve_says_each_targets_check_and_refuses_to_start_when_every_one_is_refused(fake, tmp_path):
    import asyncio

    from tests.test_cli import _serve

    proc, port = await _serve({"GEMINI_API_KEY": API_KEY, "GEMINI_API_ENDPOINT": fake.url}, tmp_path)
    try:
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(4)]
        assert "credentials of gemini: ok: API key accepted, gemini-3.8-flash found" in lines[3]
    finally:
        proc.terminate()
        await proc.communicate()
    bad = {"GEMINI_API_KEY": "AIzaSy-a-wrong-key-0000000000000000000", "GEMINI_API_ENDPOINT": fake.url}
    proc, port = await _serve(bad, tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"listening" not in out
    assert "every target's credentials were refused" in err.decode()
    assert (
        "  gemini: the API key of target 'gemini' was rejected by the upstream (INVALID_ARGUMENT: API key not valid"
        in (err.decode())
    )
