"""Long silences (issue 21): while Gemini is silent (thinking at length) the client's stream gets SSE `ping`s, no
two frames further apart than `gateway.ping_interval`, from its first byte to its last, through `serve` and
through a console-hosted gateway. Claude Code ends a stream silent for 300 s."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from console.app import GatewatchApp
from proxy import config as cfg
from proxy.simulator import Reply
from proxy.store import Store
from tests.conftest import API_KEY, target_for
from tests.serving import serve
from tests.test_console import wait_for

INTERVAL = 0.5
SILENCE = 3.0  # before the first chunk and between the chunks: 18 intervals in all
BODY = {
    "model": "gemini-2.5-flash",
    "max_tokens": 100,
    "stream": True,
    "messages": [{"role": "user", "content": "think hard"}],
}


def thinking_slowly() -> Reply:
    return Reply.text("forty two, after all", chunks=3, head_delay=SILENCE, chunk_delay=SILENCE / 2)


async def timed_events(url: str) -> list[tuple[float, str]]:
    """(arrival time, event name) of every SSE event of one streamed call, as the client reads them."""
    out: list[tuple[float, str]] = []
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/messages", json=BODY, headers={"x-api-key": "k"}) as r:
            assert r.status == 200
            async for line in r.content:
                if line.startswith(b"event: "):
                    out.append((time.monotonic(), line[7:].strip().decode()))
    return out


def check(events: list[tuple[float, str]]) -> None:
    names = [n for _, n in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names.count("ping") >= SILENCE * 2 / INTERVAL * 0.8  # pings all through the silences
    assert "content_block_delta" in names  # the answer itself came through between the pings
    gaps = [b - a for (a, _), (b, _) in zip(events, events[1:], strict=False)]
    assert max(gaps) <= INTERVAL, f"the client waited {max(gaps):.3f}s with ping_interval {INTERVAL}"


async def test_pings_keep_a_silent_stream_alive_through_serve(fake, tmp_path):
    config = tmp_path / "gatewatch.toml"
    config.write_text(
        f'[gateway]\nping_interval = {INTERVAL}\n\n[[targets]]\nname = "studio"\nprovider = "gemini"\n'
        f'model = "gemini-2.5-flash"\napi_key = "{API_KEY}"\napi_endpoint = "{fake.url}"\n'
    )
    proc, port = await serve({}, tmp_path, "--config", str(config))
    try:
        await asyncio.wait_for(proc.stdout.readline(), 30)  # listening
        fake.script(thinking_slowly())
        check(await timed_events(f"http://127.0.0.1:{port}"))
    finally:
        proc.terminate()
        await proc.wait()


async def test_pings_keep_a_silent_stream_alive_through_a_console_hosted_gateway(fake, sa_json, tmp_path):
    config = cfg.from_mapping(
        {"gateway": {"port": 0, "ping_interval": INTERVAL}, "targets": [target_for("gemini", fake, sa_json)]},
        "test",
    )
    app = GatewatchApp(config, Store(tmp_path / "c.db"), export_dir=str(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: bool(app.url))
        fake.script(thinking_slowly())
        check(await timed_events(app.url))
