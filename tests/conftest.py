"""Shared fixtures: the strict fake Gemini upstream, a generated service-account key, and the gateway on a free
loopback port, for each provider."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Iterator

import pytest

if TYPE_CHECKING:
    # imported where used: with xdist the controlling process loads this file too, and needs none of them
    # (anthropic alone is ~2 s of imports, on the path to starting the workers)
    import anthropic

    from proxy.edge.server import Gateway
    from proxy.record import Record
    from proxy.record.events import Bus
    from proxy.simulator import GeminiSimulator

API_KEY = "AIzaSy-test-key-0123456789abcdefghijkl"
SA_EMAIL = "gatewatch-test@example-project.iam.gserviceaccount.com"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): a worker per CPU this process may use, and one more, at most 8. A test
    spends much of its time waiting (on a subprocess, a socket, PostgreSQL, a stream's pauses), which the extra
    worker fills; past 8 each worker's fixed cost (~10 s of imports and collection, a PostgreSQL server) outweighs
    what it takes over. `-n N` or PYTEST_XDIST_AUTO_NUM_WORKERS=N choose otherwise."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cpus + 1, 8)


KEY_BITS = 1024
"""the test service accounts' RSA keys: every gateway start parses its key, and OpenSSL checks a 2048-bit key
for 44 ms of CPU, a 1024-bit one for 7 (hundreds of starts); the tests exercise the flow (sign a JWT, exchange
it, verify it), not the key's strength"""


@pytest.fixture(scope="session")
def rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


@pytest.fixture(autouse=True)
def no_inherited_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist's workers run with COLUMNS=80 in their environment, which `stats` rightly reads as the
    user's width: a test gives a width when it means one (`env={"COLUMNS": …}`), never by inheritance."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(scope="session", autouse=True)
def one_ssl_context() -> Iterator[None]:
    """Each anthropic SDK client builds an SSL context that loads every CA certificate (~30 ms of CPU), though
    the tests speak plain HTTP to loopback: with hundreds of clients, ~20 s of the suite's CPU. Here the default
    context is built once per setting (the SSL_CERT_* variables it reads) and shared, as an SSLContext may be by
    any number of connections; a client given its own `verify` never asks for it."""
    try:
        import httpcore2
    except ImportError:  # an SDK on another HTTP stack: nothing to share
        yield
        return
    build = httpcore2.default_ssl_context
    built: dict[tuple, object] = {}

    def shared(*, _trust_env: bool = True):
        key = (_trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in built:
            built[key] = build(_trust_env=_trust_env)
        return built[key]

    httpcore2.default_ssl_context = shared
    yield
    httpcore2.default_ssl_context = build


@pytest.fixture
async def fake() -> AsyncIterator[GeminiSimulator]:
    from proxy.simulator import GeminiSimulator
    from tests import strict

    sim = GeminiSimulator(api_key=API_KEY, validator=strict.validate)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def fake_in_thread():
    """The strict fake on a loop of its own, for tests whose own thread blocks (as the console's would)."""
    from proxy.simulator import GeminiSimulator
    from tests import strict

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sim = GeminiSimulator(api_key=API_KEY, validator=strict.validate)
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(10)
    yield sim
    asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def service_account_info(rsa_key, token_uri: str) -> dict:
    from cryptography.hazmat.primitives import serialization

    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "example-project",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": SA_EMAIL,
        "client_id": "1",
        "token_uri": token_uri,
    }


@pytest.fixture
def sa_json(rsa_key, fake) -> str:
    fake.public_keys[SA_EMAIL] = rsa_key.public_key()
    return json.dumps(service_account_info(rsa_key, f"{fake.url}/token"))


def target_for(provider: str, fake: GeminiSimulator, sa_json: str, **extra) -> dict:
    if provider == "vertex":
        return {
            "name": "vertex-flash",
            "provider": "vertex",
            "model": "gemini-2.5-flash",
            "project_id": "example-project",
            "location_id": "us-central1",
            "api_endpoint": fake.url,
            "service_account_json": sa_json,
            **extra,
        }
    return {
        "name": "studio",
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "api_key": API_KEY,
        "api_endpoint": fake.url,
        **extra,
    }


@dataclass
class Running:
    gateway: Gateway
    url: str
    records: list[Record]
    client: anthropic.AsyncAnthropic
    fake: GeminiSimulator


async def run_gateway(raw: dict, fake: GeminiSimulator, bus: Bus | None = None) -> AsyncIterator[Running]:
    import anthropic

    from proxy import config as cfg
    from proxy.edge.server import Gateway, start

    config = cfg.from_mapping(raw, "test")
    records: list[Record] = []
    gw = Gateway(config, bus, on_record=records.append)
    runner, port = await start(gw, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-test-secret-key", max_retries=0)
    try:
        yield Running(gw, url, records, client, fake)
    finally:
        await client.close()
        await runner.cleanup()


@pytest.fixture(params=["vertex", "gemini"])
async def gw(request, fake, sa_json) -> AsyncIterator[Running]:
    """The gateway in front of the fake, once per provider."""
    raw = {"gateway": {"ping_interval": 5}, "targets": [target_for(request.param, fake, sa_json)]}
    async for r in run_gateway(raw, fake):
        yield r


# -- the store's backends: SQLite (the default) and a real PostgreSQL server (tests/pg.py) ---------------------
@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the whole run, in a temporary directory, removed at the end."""
    from tests.pg import Server

    server = Server().start()
    yield server
    server.remove()


@dataclass
class Backend:
    name: str
    where: str
    """what `--db` takes: a SQLite file's path, or a PostgreSQL URL"""

    def open(self, **kw):
        from proxy.store import open_store

        return open_store(self.where, **kw)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path, monkeypatch):
    """A store location on each backend: a SQLite file, or a new database of its own on the test server."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # where a PostgreSQL store keeps its journals
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "g.db"))
        return
    server = request.getfixturevalue("pg_server")
    url = server.fresh_url()
    yield Backend("postgres", url)
    server.drop(url)
