"""The stream state machine on its own: event order, block indexes, signatures, opening early."""

from proxy.translate import request as treq
from proxy.translate.response import IdSource
from proxy.translate.stream import StreamTranslator


def ids():
    n = iter(range(100))
    return IdSource(lambda: f"{next(n):04d}")


def chunk(*parts, finish=None, usage=None):
    c = {"candidates": [{"content": {"role": "model", "parts": list(parts)}}]}
    if finish:
        c["candidates"][0]["finishReason"] = finish
    if usage:
        c["usageMetadata"] = usage
    return c


def test_thinking_text_and_a_call_get_consecutive_indexes_and_a_signature():
    st = StreamTranslator("claude-x", "msg_1", ids(), thinking=True)
    events = st.feed(chunk({"text": "hmm", "thought": True}, usage={"promptTokenCount": 40}))
    events += st.feed(chunk({"text": "Run it."}))
    events += st.feed(
        chunk(
            {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "c2ln"},
            finish="STOP",
            usage={"promptTokenCount": 40, "candidatesTokenCount": 7},
        )
    )
    events += st.finish_events()
    kinds = [e for e, _ in events]
    assert kinds[0] == "message_start" and events[0][1]["message"]["usage"]["input_tokens"] == 40
    starts = [(d["index"], d["content_block"]["type"]) for e, d in events if e == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "text"), (2, "thinking"), (3, "tool_use")]
    sigs = [
        d["delta"]["signature"]
        for e, d in events
        if e == "content_block_delta" and d["delta"]["type"] == "signature_delta"
    ]
    # no signature came with the first thought; the call's came with it, wrapped as ours
    assert sigs == ["gw-none", "gw1.c2ln"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert (
        events[-2][1]["delta"]["stop_reason"] == "tool_use" and events[-2][1]["usage"]["output_tokens"] == 7
    )
    assert st.signatures_out == {"toolu_0000": "c2ln"}
    msg = st.message()
    assert [b["type"] for b in msg["content"]] == ["thinking", "text", "thinking", "tool_use"]
    assert msg["content"][3]["input"] == {"command": "ls"}


def test_open_sends_message_start_once_even_before_any_chunk():
    st = StreamTranslator("m", "msg_2", ids(), thinking=False)
    assert [e for e, _ in st.open()] == ["message_start"]
    assert st.open() == []
    events = st.feed(chunk({"text": "hi"}, finish="STOP"))
    assert "message_start" not in [e for e, _ in events]


def test_thoughts_are_dropped_when_the_client_did_not_ask_for_thinking():
    st = StreamTranslator("m", "msg_3", ids(), thinking=False)
    events = st.feed(
        chunk({"text": "secret musing", "thought": True}, {"text": "answer"}, finish="MAX_TOKENS")
    )
    events += st.finish_events()
    assert [d["content_block"]["type"] for e, d in events if e == "content_block_start"] == ["text"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_signatures_on_text_parts_and_a_trailing_empty_part_reach_the_client():
    st = StreamTranslator("m", "msg_4", ids(), thinking=True)
    events = st.feed(chunk({"text": "Hello", "thoughtSignature": "AAAA"}))  # a whole signed text part
    events += st.feed(chunk({"text": " world"}))
    events += st.feed(chunk({"text": "", "thoughtSignature": "BBBB"}, finish="STOP"))  # trailing, empty
    events += st.finish_events()
    msg = st.message()
    # each signature follows its text: the first belongs to the text before it, the second to an empty part
    assert [(b["type"], b.get("signature")) for b in msg["content"]] == [
        ("text", None),
        ("thinking", "gw1p.AAAA"),
        ("text", None),
        ("thinking", "gw1.BBBB"),
    ]
    assert msg["content"][0]["text"] == "Hello" and msg["content"][2]["text"] == " world"
    starts = [d["index"] for e, d in events if e == "content_block_start"]
    stops = [d["index"] for e, d in events if e == "content_block_stop"]
    assert starts == stops == [0, 1, 2, 3]
    # echoed back, each signature lands where Gemini put it
    back = treq.translate(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        | {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": msg["content"]}]},
        treq.Target("gemini-3-pro-preview"),
    ).body["contents"][1]["parts"]
    assert back == [
        {"text": "Hello", "thoughtSignature": "AAAA"},
        {"text": " world"},
        {"text": "", "thoughtSignature": "BBBB"},
    ]
