"""Why a session cost what it cost: through the real gateway and the strict fake with Google's implicit cache
(proxy/simulator.py's ImplicitCache, on in this file's fake), each session's calls committed to a real store (SQLite and PostgreSQL), the writer's
detector finds cache breaks (naming what changed and the tokens re-billed), repeats, retry cascades, tool loops
and stream fallbacks, and finds nothing in a session whose prefix holds."""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import uuid

import anthropic
import pytest

from proxy.simulator import ImplicitCache, Reply, prompt_bytes
from proxy.store.query import parse
from tests.cc_requests import TOOLS
from tests.conftest import run_gateway, target_for
from tests.test_cli import cli

SYSTEM = "You are a coding agent under test. " + " ".join(
    f"Rule {i}: keep the code tidy and tested." for i in range(240)
)
"""~10 KB: well past the 1,024 tokens Google's implicit cache starts at"""
FINDINGS = ("cache-break", "repeat", "retry-cascade", "tool-loop", "stream-fallback")


class Session:
    """A Claude-Code-like session: a system prompt and tools, and a conversation that grows a tool round
    per call (the model asks for a command, the client answers)."""

    def __init__(self, gw, sid: str | None = None) -> None:
        self.gw, self.sid = gw, sid or str(uuid.uuid4())
        self.messages: list[dict] = [{"role": "user", "content": "tidy the repository"}]
        self.system = SYSTEM
        self.tools = copy.deepcopy(TOOLS)
        self.n = 0

    def body(self, stream: bool = False) -> dict:
        return {
            "model": "gemini-2.5-flash",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": self.system}],
            "tools": self.tools,
            "messages": copy.deepcopy(self.messages),
            "stream": stream,
        }

    async def send(self, body: dict | None = None, stream: bool = False):
        body = body or self.body(stream)
        resp = await self.gw.client.messages.with_raw_response.create(
            **body, extra_headers={"x-claude-code-session-id": self.sid}
        )
        if stream:
            async for _ in await resp.parse():
                pass
        return resp.headers["request-id"]

    def output(self) -> str:
        """A tool result of ~6 KB, as a file listing is: the conversation soon outweighs the system prompt"""
        return "\n".join(f"-rw-r--r-- 1 dev dev {i * 37} src/module_{self.n}_{i}.py" for i in range(150))

    async def turn(self, command: str | None = None) -> str:
        """One call answered with a Bash call; the conversation grows by that call and its result."""
        self.n += 1
        command = command or f"ls dir{self.n}"
        self.gw.fake.script(Reply.call("Bash", {"command": command}, signature=False))
        body = self.body()
        rid = await self.send(body)
        self.messages += [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": f"toolu_{self.n}",
                        "name": "Bash",
                        "input": {"command": command},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{self.n}", "content": self.output()}
                ],
            },
        ]
        return rid


@pytest.fixture
async def gw(fake, sa_json):
    fake.implicit_cache = ImplicitCache()
    async for running in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake):
        yield running


def committed(backend, records):
    """The calls committed in order to a fresh store on `backend`, as the gateway's writer would."""
    store = backend.open().start()
    for r in records:
        store.submit(r)
    store.close()
    return store


def found(store, records) -> dict[str, list]:
    """Each call's findings by index: {kind: [(index, note)…]}"""
    by_id = store.findings([r.id for r in records])
    out: dict[str, list] = {}
    for i, r in enumerate(records):
        for n in by_id.get(r.id, []):
            out.setdefault(n.kind, []).append((i, n))
    return out


async def test_the_upstream_prefix_is_byte_stable_and_the_fake_caches_it(gw):
    s = Session(gw)
    await s.turn()
    await s.turn()
    first, second = (prompt_bytes(r.body) for r in gw.fake.received)
    one, two = gw.fake.received
    assert (one.body["systemInstruction"], one.body["tools"]) == (
        two.body["systemInstruction"],
        two.body["tools"],
    )
    assert second.startswith(first)  # system, tools and the first call's contents: the same bytes
    assert gw.records[0].usage.cache_read_tokens == 0
    assert gw.records[1].usage.cache_read_tokens >= 1024
    assert gw.records[1].usage.cache_read_tokens >= len(first) // 4 - 1


async def test_a_session_whose_prefix_holds_has_no_finding(gw, backend):
    s = Session(gw)
    for _ in range(5):
        await s.turn()
    store = committed(backend, gw.records)
    assert all(r.usage.cache_read_tokens >= 1024 for r in gw.records[1:])
    assert found(store, gw.records) == {}
    assert store.count(parse("note:cache-break")) == 0
    view = store.session_view(s.sid)
    assert view.findings == {} and view.cache_share > 0.5 and view.saved > 0


async def test_a_system_prompt_changed_at_call_3_is_a_cache_break_on_call_3(gw, backend):
    s = Session(gw)
    await s.turn()
    await s.turn()
    s.system = SYSTEM.replace("Rule 7:", "Rule seven:")
    await s.turn()
    await s.turn()
    store = committed(backend, gw.records)
    findings = found(store, gw.records)
    assert list(findings) == ["cache-break"]
    [(index, note)] = findings["cache-break"]
    assert index == 2
    assert note.data["what"] == "system" and note.data["block"] == 0
    assert note.data["offset"] == SYSTEM.index("Rule 7:") + len("Rule ")
    rebilled = note.data["tokens"]
    r3 = gw.records[2]
    assert rebilled >= 1024 and rebilled == (
        gw.records[1].usage.input_tokens + gw.records[1].usage.cache_read_tokens - r3.usage.cache_read_tokens
    )
    assert note.data["cost"] > 0 and note.data["previous"] == gw.records[1].id
    assert "system changed at block 0" in note.detail and f"{rebilled:,} tokens re-billed" in note.detail
    # searchable, and on the record as any note is
    [row] = store.page(parse("note:cache-break"))
    assert row.id == r3.id and "cache-break" in row.notes
    stored = store.get(r3.id)
    assert any(n.kind == "cache-break" and n.data["tokens"] == rebilled for n in stored.notes)
    assert store.session_view(s.sid).findings["cache-break"][:2] == (1, rebilled)
    [doc] = store.iter_records(parse("note:cache-break"))  # exported with it
    assert doc["id"] == r3.id and [n["kind"] for n in doc["notes"]].count("cache-break") == 1
    # `gatewatch show` names it apart from the translation notes; `gatewatch stats` ends with its cost
    shown = cli("show", r3.id, "--db", backend.where)
    assert shown.returncode == 0, shown.stderr
    out = " ".join(shown.stdout.split())
    assert "Findings (1)" in out and "cache-break system changed at block 0" in out
    assert f"{rebilled:,} tokens re-billed" in out
    stats = cli("stats", "--db", backend.where)
    assert stats.returncode == 0, stats.stderr
    waste = stats.stdout[stats.stdout.index("\nwaste") :].split()
    assert waste[waste.index("cache-break") + 1 : waste.index("cache-break") + 4] == [
        "1",
        str(rebilled),
        f"{note.data['cost']:.4f}",
    ]


async def test_a_tool_changed_is_named(gw, backend):
    s = Session(gw)
    await s.turn()
    await s.turn()
    s.tools[1] = {**s.tools[1], "description": "Read a file, now with more words."}
    await s.turn()
    store = committed(backend, gw.records)
    findings = found(store, gw.records)
    [(index, note)] = findings["cache-break"]
    assert index == 2 and note.data["what"] == "tools" and note.data["tool"] == s.tools[1]["name"]
    assert f"{s.tools[1]['name']}'s definition" in note.detail


async def test_an_identical_resend_is_a_repeat_of_the_call_it_repeats(gw, backend):
    s = Session(gw)
    await s.turn()
    body = s.body()
    gw.fake.script(Reply.text("done"), Reply.text("done"))
    first = await s.send(body)
    again = await s.send(body)
    store = committed(backend, gw.records)
    findings = found(store, gw.records)
    [(index, note)] = findings["repeat"]
    assert gw.records[index].id == again and note.data["of"] == first
    assert note.detail == f"repeat of {first}"
    assert "cache-break" not in findings


async def test_the_same_tool_with_the_same_input_three_times_is_a_tool_loop(gw, backend):
    s = Session(gw)
    await s.turn("cat setup.py")
    await s.turn("git status")
    await s.turn("cat setup.py")
    await s.turn("cat setup.py")
    store = committed(backend, gw.records)
    findings = found(store, gw.records)
    assert list(findings) == ["tool-loop"]
    [(index, note)] = findings["tool-loop"]
    assert index == 3 and note.data["tool"] == "Bash" and note.data["times"] == 3
    assert note.data["calls"] == [gw.records[i].id for i in (0, 2, 3)]


async def test_resends_after_a_400_are_a_retry_cascade_and_a_stream_fallback_is_found(gw, backend):
    s = Session(gw)
    await s.turn()
    body = s.body()
    gw.fake.script(*[Reply.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")] * 3)
    for _ in range(3):
        with pytest.raises(anthropic.BadRequestError):
            await s.send(body)
    s.messages[-1]["content"].append({"type": "text", "text": "carry on"})  # the user's next words
    # a stream cut short, then the same turn one-shot (Claude Code's fallback)
    gw.fake.script(Reply.text("a long answer that is cut", cut_after=1), Reply.text("the answer"))
    with pytest.raises(anthropic.APIError):
        await s.send(s.body(stream=True), stream=True)
    await s.send(s.body(stream=False))
    store = committed(backend, gw.records)
    findings = found(store, gw.records)
    cascade = findings["retry-cascade"]
    assert [i for i, _ in cascade] == [2, 3]
    assert all(n.data["of"] == gw.records[1].id and n.data["status"] == 400 for _, n in cascade)
    assert [n.data["resend"] for _, n in cascade] == [1, 2]
    [(index, note)] = findings["stream-fallback"]
    assert index == 5 and note.data["of"] == gw.records[4].id
    assert set(findings) == {"retry-cascade", "stream-fallback"}


@pytest.mark.skipif(shutil.which("claude") is None, reason="the Claude Code CLI is not installed here")
async def test_real_claude_codes_tool_loop_holds_its_prefix_through_the_gateway(gw, backend, tmp_path):
    """The real CLI's calls (its ~12k-token system prompt and tools, a three-round Bash loop): the prefix the
    gateway sends upstream is byte-stable, the fake's cache holds it on every later call, and no finding."""
    gw.fake.script(
        *(Reply.call("Bash", {"command": f"echo {w}", "description": w}) for w in ("one", "two", "three")),
        Reply.text("done"),
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_", "CLAUDE_"))}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=gw.url,
        ANTHROPIC_API_KEY="anything",
        ANTHROPIC_MODEL="gemini-2.5-flash",
        DISABLE_TELEMETRY="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    proc = await asyncio.create_subprocess_exec(
        shutil.which("claude"),
        "-p",
        "run echo three times",
        "--allowedTools",
        "Bash",
        env=env,
        cwd=home,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0 and out.strip() == b"done", err.decode()[-2000:]
    calls = [r for r in gw.records if r.kind == "messages"]
    assert len(calls) == 4 and calls[0].usage.input_tokens >= 1024
    for prev, cur in zip(calls, calls[1:], strict=False):  # each later call reads the whole previous prompt
        assert cur.usage.cache_read_tokens >= prev.usage.input_tokens + prev.usage.cache_read_tokens - 64
    store = committed(backend, gw.records)
    assert found(store, gw.records) == {}
