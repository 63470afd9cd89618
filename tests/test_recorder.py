"""The per-call recorder and the events a call emits: started, progressed (only when asked, coalesced),
finished (after the record was handed over)."""

from proxy.record.events import Bus, CallFinished, CallProgressed, CallStarted
from proxy.simulator import Reply
from tests.conftest import run_gateway, target_for

MSG = [{"role": "user", "content": "hi"}]


async def test_a_call_is_started_then_finished_after_its_record_was_handed_over(fake, sa_json):
    bus = Bus()
    seen: list[tuple[str, str, int]] = []
    bus.subscribe(CallStarted, lambda e: seen.append(("started", e.record.id, len(gw.records))))
    bus.subscribe(CallFinished, lambda e: seen.append(("finished", e.record.id, len(gw.records))))
    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake, bus):
        fake.script(Reply.text("hello"))
        await gw.client.messages.create(model="m", max_tokens=10, messages=MSG)
        rid = gw.records[-1].id
        assert seen == [("started", rid, 0), ("finished", rid, 1)]
        assert gw.gateway.in_flight == {}


async def test_progress_is_coalesced_per_call_and_shows_the_stream_advancing(fake, sa_json, monkeypatch):
    monkeypatch.setattr(Bus, "PROGRESS_EVERY_S", 0.05)
    bus = Bus()
    progress: list[tuple[str | None, int]] = []
    bus.subscribe(CallProgressed, lambda e: progress.append((e.record.target, e.record.stream_chunks)))
    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake, bus):
        fake.script(Reply.text(" ".join(["w"] * 40), chunks=40, chunk_delay=0.01))
        async with gw.client.messages.stream(model="m", max_tokens=100, messages=MSG) as s:
            await s.get_final_message()
        assert progress[0] == ("studio", 0)  # routed to a target, before any chunk
        assert 2 <= len(progress) < 40  # coalesced, never one per chunk
        chunks = [c for _, c in progress]
        assert chunks == sorted(chunks) and chunks[-1] > 0
        assert gw.records[-1].stream_chunks == 40


async def test_no_progress_is_built_when_nobody_listens(fake, sa_json, monkeypatch):
    built: list[object] = []
    monkeypatch.setattr(CallProgressed, "__init__", lambda self, record: built.append(record))
    bus = Bus()
    bus.subscribe(CallFinished, lambda e: None)
    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake, bus):
        fake.script(Reply.text("a b c d e f", chunks=6))
        async with gw.client.messages.stream(model="m", max_tokens=100, messages=MSG) as s:
            await s.get_final_message()
        assert built == [] and gw.records[-1].stream_chunks == 6


async def test_payloads_are_kept_only_under_log_payloads(fake, sa_json):
    raw = {"gateway": {"log_payloads": False}, "targets": [target_for("gemini", fake, sa_json)]}
    async for gw in run_gateway(raw, fake):
        fake.script(Reply.text("a b c", chunks=3))
        async with gw.client.messages.stream(model="m", max_tokens=100, messages=MSG) as s:
            await s.get_final_message()
        fake.script(Reply.text("one"))
        await gw.client.messages.create(model="m", max_tokens=10, messages=MSG)
        for rec in gw.records:
            assert rec.client_request is None and rec.upstream_request is None
            assert rec.upstream_response is None and rec.response is None and rec.events is None
            assert rec.response_text and rec.usage.output_tokens


async def test_a_stream_s_payloads_are_the_json_that_crossed_the_wire_and_the_store_reads_them_as_lists(
    fake, sa_json
):
    """A live stream keeps its chunks and events as the JSON sent (no objects rebuilt on the loop); the
    stored record has them as lists, equal to what the upstream sent and the client got."""
    from proxy.record import payload
    from proxy.store.payloads import hydrate, serialize_parts

    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake):
        fake.script(Reply.text("alpha beta gamma delta", chunks=4))
        async with gw.client.messages.stream(model="m", max_tokens=100, messages=MSG) as s:
            got = [ev.model_dump() async for ev in s if ev.type in ("content_block_delta", "message_stop")]
        rec = gw.records[-1]
        data, blobs = serialize_parts(rec, [])
        stored = hydrate(data, blobs)
        assert stored["events"] == payload(rec.events) and stored["upstream_response"] == payload(
            rec.upstream_response
        )
        sent = [e["data"] for e in stored["events"] if e["event"] in ("content_block_delta", "message_stop")]
        assert sent == [{k: v for k, v in g.items() if k in d} for g, d in zip(got, sent, strict=True)]
        chunks = stored["upstream_response"]
        assert len(chunks) == 4 and "".join(
            p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"]
        ).split() == ["alpha", "beta", "gamma", "delta"]
