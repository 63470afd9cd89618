"""The stream state machine on its own: event order, block indexes, signatures, opening early."""

from proxy.translate import marks
from proxy.translate import request as treq
from proxy.translate.response import IdSource
from proxy.translate.signatures import TextSignatures
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


def _history(content):
    return {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": content}],
    }


def test_text_part_signatures_stay_with_the_gateway_and_the_answer_ends_with_its_text():
    st = StreamTranslator("m", "msg_4", ids(), thinking=True)
    events = st.feed(chunk({"text": "let me think", "thought": True}))
    events += st.feed(chunk({"text": "Hello", "thoughtSignature": "AAAA"}))  # a whole signed text part
    events += st.feed(chunk({"text": " world"}))
    events += st.feed(chunk({"text": "", "thoughtSignature": "BBBB"}, finish="STOP"))  # trailing, empty
    events += st.finish_events()
    msg = st.message()
    # exactly what Claude would send: thinking, then the answer, whose last block is the text
    assert [(b["type"], b.get("signature")) for b in msg["content"]] == [
        ("thinking", "gw-none"),
        ("text", None),
    ]
    assert msg["content"][-1]["text"] == "Hello world"
    starts = [d["index"] for e, d in events if e == "content_block_start"]
    stops = [d["index"] for e, d in events if e == "content_block_stop"]
    assert starts == stops == [0, 1]
    assert "AAAA" not in str(events) and "BBBB" not in str(events)
    assert [n.kind for n in st.notes()].count("signature-held") == 1
    # the gateway keeps them; the next request puts each back where Gemini put it
    store = TextSignatures()
    store.keep("s1", st.text_signatures_out)
    back = treq.translate(
        _history(msg["content"]), treq.Target("gemini-3-pro-preview"), texts=store.view("s1")
    )
    assert back.body["contents"][1]["parts"] == [
        {"text": "Hello", "thoughtSignature": "AAAA"},
        {"text": " world"},
        {"text": "", "thoughtSignature": "BBBB"},
    ]
    kept = [n for n in back.notes if n.kind == "signature-kept"]
    assert kept and kept[0].data["from_gateway"] == 2
    # another session holds none of them, and a gateway that lost them (restart) says so
    other = treq.translate(
        _history(msg["content"]), treq.Target("gemini-3-pro-preview"), texts=store.view("s2")
    )
    assert other.body["contents"][1]["parts"] == [{"text": "Hello world"}]
    assert [n.kind for n in other.notes if n.kind.startswith("signature")] == ["signature-lost"]


def test_a_whole_answer_keeps_its_text_signature_too():
    st = StreamTranslator("m", "msg_5", ids(), thinking=True)
    msg = st.whole(
        chunk({"text": "hmm", "thought": True}, {"text": "Four.", "thoughtSignature": "CCCC"}, finish="STOP")
    )
    assert [b["type"] for b in msg["content"]] == ["thinking", "text"] and msg["content"][-1][
        "text"
    ] == "Four."
    assert st.text_signatures_out == {marks.textkey("Four."): [{"text": "Four.", "thoughtSignature": "CCCC"}]}


def test_a_signed_empty_part_after_a_call_goes_back_after_that_call():
    st = StreamTranslator("m", "msg_6", ids(), thinking=True)
    st.feed(chunk({"functionCall": {"name": "Bash", "args": {}}, "thoughtSignature": "c2ln"}))
    st.feed(chunk({"text": "", "thoughtSignature": "DDDD"}, finish="STOP"))
    st.finish_events()
    msg = st.message()
    assert [b["type"] for b in msg["content"]] == ["thinking", "tool_use"]
    store = TextSignatures()
    store.keep("", st.text_signatures_out)
    req = _history(msg["content"])
    req["messages"].append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0000", "content": "ok"}]}
    )
    parts = treq.translate(req, treq.Target("gemini-3-pro-preview"), texts=store.view("")).body["contents"][
        1
    ]["parts"]
    assert parts == [
        {"functionCall": {"name": "Bash", "args": {}}, "thoughtSignature": "c2ln"},
        {"text": "", "thoughtSignature": "DDDD"},
    ]


def test_an_older_client_history_with_our_text_signature_blocks_still_goes_back():
    """Sessions begun before the gateway kept text signatures hold them in empty thinking blocks."""
    content = [
        {"type": "text", "text": "Hello"},
        {"type": "thinking", "thinking": "", "signature": "gw1p.AAAA"},
        {"type": "text", "text": " world"},
        {"type": "thinking", "thinking": "", "signature": "gw1.BBBB"},
    ]
    back = treq.translate(_history(content), treq.Target("gemini-3-pro-preview")).body["contents"][1]["parts"]
    assert back == [
        {"text": "Hello", "thoughtSignature": "AAAA"},
        {"text": " world"},
        {"text": "", "thoughtSignature": "BBBB"},
    ]


def test_the_text_signature_store_is_bounded_per_session_in_sessions_and_in_bytes():
    store = TextSignatures(sessions=2, per_session=3, max_bytes=10_000)
    for n in range(5):
        store.keep("a", {f"t:{n}": [{"text": "x", "thoughtSignature": "S" * 10}]})
    assert list(store.view("a")) == ["t:2", "t:3", "t:4"]
    store.keep("b", {"t:0": None})
    store.keep("c", {"t:0": None})
    assert store.view("a") == {} and len(store.view("c")) == 1  # the least recently used session went first
    store.keep("d", {"t:big": [{"text": "x", "thoughtSignature": "S" * 20_000}]})
    assert store.view("d") == {} and store.weight <= 10_000


def test_a_grounded_answer_shows_its_search_before_its_text_streamed_or_not():
    grounding = {
        "webSearchQueries": ["q1", "q2"],
        "groundingChunks": [
            {"web": {"uri": "https://a.example/x", "title": "a.example"}},
            {"retrievedContext": {}},
        ],
    }
    st = StreamTranslator("m", "msg_7", ids(), thinking=True, search=True)
    live = st.feed(chunk({"text": "looking", "thought": True}))
    live += st.feed(chunk({"text": "Answer [1]."}))
    assert [d["content_block"]["type"] for e, d in live if e == "content_block_start"] == ["thinking"]
    c = chunk({"text": " More."}, finish="STOP")
    c["candidates"][0]["groundingMetadata"] = grounding
    st.feed(c)
    assert st.empty() is None
    events = st.finish_events()
    msg = st.message()
    assert [b["type"] for b in msg["content"]] == [
        "thinking",
        "server_tool_use",
        "web_search_tool_result",
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    assert (
        msg["content"][1]["input"] == {"query": "q1"}
        and msg["content"][2]["tool_use_id"] == msg["content"][1]["id"]
    )
    assert msg["content"][2]["content"] == [
        {
            "type": "web_search_result",
            "url": "https://a.example/x",
            "title": "a.example",
            "encrypted_content": "",
            "page_age": None,
        }
    ]
    assert msg["content"][-1]["text"] == "Answer [1]. More."
    assert msg["usage"]["server_tool_use"] == {"web_search_requests": 2}
    starts = [d["index"] for e, d in events if e == "content_block_start"]
    assert starts == [1, 2, 3, 4, 5]
    assert [n.kind for n in st.notes()].count("search-mapped") == 1
    whole = StreamTranslator("m", "msg_8", ids(), thinking=False, search=True).whole(c)
    assert [b["type"] for b in whole["content"]] == [
        "server_tool_use",
        "web_search_tool_result",
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]


def test_only_a_forgotten_latest_answer_is_a_lost_signature_note():
    old = [
        {"type": "thinking", "thinking": "", "signature": "gw-none"},
        {"type": "text", "text": "old answer"},
    ]
    new = [
        {"type": "thinking", "thinking": "", "signature": "gw-none"},
        {"type": "text", "text": "new answer"},
    ]
    req = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": old},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": new},
            {"role": "user", "content": "c"},
        ],
    }
    store = TextSignatures()
    store.keep("s", {marks.textkey("new answer"): None})  # aged out the old one, remembers the latest
    kinds = [
        n.kind for n in treq.translate(req, treq.Target("gemini-3.8-flash"), texts=store.view("s")).notes
    ]
    assert "signature-lost" not in kinds
    kinds = [
        n.kind for n in treq.translate(req, treq.Target("gemini-3.8-flash"), texts=store.view("gone")).notes
    ]
    assert kinds.count("signature-lost") == 1


def _state(st):
    """What a translator knows, besides its id source and tool names (objects of their own): a deep copy, so
    that a change made in place shows."""
    import copy

    return copy.deepcopy(
        {k: v for k, v in vars(st).items() if k not in ("ids", "names", "_delta_head", "_delta_index")}
    )


def test_the_text_fast_path_sends_the_bytes_and_keeps_the_state_that_feed_does():
    """`text_delta` (the relay's path for plain text chunks) against `feed` on the same chunks: every event's
    JSON byte for byte, and the state the answer is assembled from, over chunks it takes and chunks it leaves."""
    import orjson

    plain = [
        chunk({"text": 'plain "quoted" \\ back\nline é ✓ 🙂'}),
        chunk({"text": "more"}, usage={"promptTokenCount": 9}),
        {**chunk({"text": "with ids"}), "modelVersion": "gemini-x", "responseId": "r1"},
        {
            **chunk({"text": "from Vertex"}),
            "createTime": "2026-12-07T18:00:00.000000Z",
        },  # on each Vertex chunk
    ]
    left = [  # each one must go through `feed`: what it carries has no place on the fast path
        chunk({"text": "signed", "thoughtSignature": "c2ln"}),
        chunk({"text": "last"}, finish="STOP"),
        chunk({"text": "a"}, {"text": "b"}),
        chunk({"text": "thought", "thought": True}),
        chunk({"functionCall": {"name": "f", "args": {}}}),
        chunk({"text": ""}),
        chunk(),
        {**chunk({"text": "x"}), "promptFeedback": {"blockReason": "SAFETY"}},
        {
            **chunk({"text": "x"}),
            "candidates": [{"content": {"parts": [{"text": "x"}]}, "safetyRatings": []}],
        },
        {"candidates": [{"content": {"parts": [{"text": "x"}]}}, {"content": {"parts": [{"text": "y"}]}}]},
    ]
    odd = [  # shapes Gemini never sends (`feed` does not take them either): not taken, no exception
        {"candidates": "no"},
        {"candidates": [{"content": {"parts": "xy"}}]},
        {"candidates": [{"content": {"parts": [{"text": 5}]}}]},
        {"candidates": [{"content": None}]},
    ]
    for i, other in enumerate(left):
        for thinking in (False, True):
            a = StreamTranslator("claude-x", "msg_1", ids(), thinking=thinking)
            b = StreamTranslator("claude-x", "msg_1", ids(), thinking=thinking)
            seq = [
                plain[0],
                plain[1],
                other,
                plain[2],
                plain[1],
                other,
                chunk({"text": "end"}, finish="STOP"),
            ]
            taken = 0
            for c in seq:
                want = [orjson.dumps(d) for _, d in a.feed(c)]
                before = _state(b)
                fast = b.text_delta(c)
                if fast is None:
                    assert _state(b) == before, (i, "a chunk left to feed changed nothing")
                    got = [orjson.dumps(d) for _, d in b.feed(c)]
                else:
                    taken += 1
                    got = [fast]
                assert got == want, (i, c)
                assert _state(b) == _state(a), (i, c)
            assert taken >= 1  # the second plain chunk continues the block the first opened
            a.finish_events(), b.finish_events()
            assert a.message() == b.message()
    for other in left + odd:  # with a text block open, none of them is taken
        st = StreamTranslator("claude-x", "msg_1", ids(), thinking=True)
        st.feed(plain[0])
        assert st.open_kind == "text" and all(st.text_delta(c) is not None for c in plain[1:])
        assert st.text_delta(other) is None, other
