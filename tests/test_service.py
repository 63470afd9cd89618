"""The service: store and gateway started and stopped together, on the caller's loop or on a thread of its own."""

import asyncio
import socket
import threading

import anthropic
import pytest

from proxy import config as cfg
from proxy.record.events import CallFinished, CallStarted, RecordsCommitted
from proxy.service import Service, ServiceError, ServiceThread
from proxy.simulator import Reply
from proxy.store import Store
from proxy.store.query import parse
from tests.conftest import target_for


def config_for(fake, sa_json, **gateway) -> cfg.Config:
    return cfg.from_mapping({"gateway": gateway, "targets": [target_for("gemini", fake, sa_json)]}, "test")


def ask(url: str, prompt: str) -> str:
    """A call from a plain thread, with the sync client, as a separate program would make it."""
    client = anthropic.Anthropic(base_url=url, api_key="sk-ant-service-test", max_retries=0)
    try:
        reply = client.messages.create(
            model="claude-opus-5-5", max_tokens=50, messages=[{"role": "user", "content": prompt}]
        )
        return reply.content[0].text
    finally:
        client.close()


async def test_a_service_answers_records_and_tells_its_subscribers(fake, sa_json, tmp_path):
    service = Service(config_for(fake, sa_json, port=0), Store(tmp_path / "s.db"))
    seen: list[str] = []
    service.bus.subscribe(CallStarted, lambda e: seen.append("started"))
    service.bus.subscribe(CallFinished, lambda e: seen.append(f"finished {e.record.status}"))
    service.bus.subscribe(RecordsCommitted, lambda e: seen.append(f"committed {len(e.records)}"))
    url = await service.start()
    fake.script(Reply.text("served"))
    assert await asyncio.to_thread(ask, url, "hello") == "served"
    await service.stop()
    assert seen == ["started", "finished 200", "committed 1"]
    assert Store(tmp_path / "s.db").count() == 1


async def test_without_a_target_the_service_says_what_to_set(tmp_path):
    service = Service(cfg.Config(), Store(tmp_path / "s.db"))
    with pytest.raises(ServiceError, match="GEMINI_API_KEY") as err:
        await service.start()
    assert err.value.exit_code == 2


async def test_a_taken_port_is_a_service_error_naming_the_next_port(fake, sa_json, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        service = Service(config_for(fake, sa_json, port=port), Store(tmp_path / "s.db"))
        with pytest.raises(ServiceError, match=f"cannot listen on 127.0.0.1:{port}.*--port {port + 1}"):
            await service.start()
        await service.stop()


async def test_beyond_loopback_without_a_token_the_service_refuses(fake, sa_json, tmp_path):
    service = Service(config_for(fake, sa_json, host="0.0.0.0", port=0), Store(tmp_path / "s.db"))
    with pytest.raises(ServiceError, match="refusing to listen on 0.0.0.0") as err:
        await service.start()
    assert err.value.exit_code == 2
    await service.stop()


def test_a_hosted_service_serves_from_its_own_thread(fake_in_thread, tmp_path):
    fake = fake_in_thread
    host = ServiceThread(Service(config_for(fake, "", port=0), Store(tmp_path / "s.db")))
    served_on: list[str] = []
    host.service.bus.subscribe(CallStarted, lambda e: served_on.append(threading.current_thread().name))
    url = host.start()
    try:
        fake.script(Reply.text("from the gateway's thread"))
        answer = ask(url, "hi")  # this thread, the host's, blocks: the gateway's loop is not here
        assert answer == "from the gateway's thread"
        assert served_on == ["gatewatch-gateway"]
    finally:
        host.stop()
    assert Store(tmp_path / "s.db").count() == 1
    assert not host.alive


def test_stopping_a_hosted_service_lets_a_stream_in_flight_finish_and_records_it(fake_in_thread, tmp_path):
    fake = fake_in_thread
    host = ServiceThread(Service(config_for(fake, "", port=0), Store(tmp_path / "s.db")))
    began = threading.Event()
    host.service.bus.subscribe(CallStarted, lambda e: began.set())
    url = host.start()
    fake.script(Reply.text("one two three four five", chunks=5, chunk_delay=0.2))
    answers: list[str] = []
    caller = threading.Thread(target=lambda: answers.append(ask(url, "slow")))
    caller.start()
    assert began.wait(10)
    host.stop()  # drains: the call in flight ends normally before the loop stops
    caller.join(10)
    assert answers == ["one two three four five"]
    assert Store(tmp_path / "s.db").count(parse("slow")) == 1
