"""Nested agents (issue 21): an agent spawned by a sub-agent (`x-claude-code-parent-agent-id`) nests under that
sub-agent in the ledger, the Sessions tree and the `agent:` filter, on each store backend."""

from __future__ import annotations

import pytest

from console.sessions import tree
from proxy.simulator import Reply
from proxy.store.query import parse
from tests.conftest import run_gateway, target_for

SESSION = "5d0c2b1a-0e4f-4c3d-8b2a-1f0e9d8c7b6a"
A, B, C = "agent-a-1111", "agent-b-2222", "agent-c-3333"
PROMPT_A, PROMPT_B, PROMPT_C = "Survey the code.", "Find the tests.", "Read the parser closely."
AGENT_TOOL = {
    "name": "Agent",
    "description": "Launch a new agent to handle a task on its own.",
    "input_schema": {
        "type": "object",
        "properties": {"description": {"type": "string"}, "prompt": {"type": "string"}},
        "required": ["description", "prompt"],
    },
}


def spawn(prompt: str) -> Reply:
    return Reply.call("Agent", {"description": "a task", "prompt": prompt})


@pytest.fixture
async def nested(backend, fake, sa_json):
    """main spawns A; A spawns C; main then spawns B; C calls (its first message reworded, so only the header
    says who spawned it); B calls. Committed to a store on each backend."""
    async for gw in run_gateway({"targets": [target_for("gemini", fake, sa_json)]}, fake):

        async def call(agent: str | None, parent: str | None, text: str, reply: Reply, gw=gw) -> None:
            headers = {"x-claude-code-session-id": SESSION}
            if agent:
                headers["x-claude-code-agent-id"] = agent
            if parent:
                headers["x-claude-code-parent-agent-id"] = parent
            fake.script(reply)
            await gw.client.messages.create(
                model="gemini-2.5-flash",
                max_tokens=100,
                messages=[{"role": "user", "content": text}],
                tools=[AGENT_TOOL],
                extra_headers=headers,
            )

        await call(None, None, "Refactor the parser.", spawn(PROMPT_A))
        await call(A, None, PROMPT_A, spawn(PROMPT_C))
        await call(None, None, "And the tests.", spawn(PROMPT_B))
        await call(C, A, "Task: " + PROMPT_C, Reply.text("the parser is recursive descent"))
        await call(C, A, "go on", Reply.text("done"))
        await call(B, None, PROMPT_B, Reply.text("tests/test_parser.py"))
        store = backend.open().start()
        for r in gw.records:
            store.submit(r)
        store.close()
        yield store, gw.records


async def test_an_agent_spawned_by_a_sub_agent_nests_under_it_in_the_ledger_and_the_tree(nested):
    store, records = nested
    agents = {a.agent_id: a for a in store.agents(SESSION)}
    assert agents[C].parent_agent == A  # the header, not the session's latest spawn (main's of B)
    assert agents[C].parent_call == records[1].id  # A's call whose Agent tool_use started C
    assert agents[B].parent_agent == "" and agents[B].parent_call == records[2].id
    assert agents[A].parent_agent == "" and agents[C].calls == 2
    assert records[3].parent_agent_id == A and records[1].parent_agent_id is None
    s = store.session(SESSION)
    assert s is not None and s.agents == 3
    assert [(depth, a.agent_id) for depth, a in tree(s, store.agents(SESSION))] == [
        (1, ""),
        (2, A),
        (3, C),
        (2, B),
    ]


async def test_the_agent_filter_takes_a_sub_agent_with_the_agents_it_spawned(nested):
    store, records = nested
    ids = lambda q: {r.id for r in store.page(parse(q))}  # noqa: E731
    assert ids(f"agent:{A[:9]}") == {records[1].id, records[3].id, records[4].id}
    assert ids(f"agent:{C}") == {records[3].id, records[4].id}
    assert ids("agent:main") == {records[0].id, records[2].id}
    assert ids(f"-agent:{A}") == {records[0].id, records[2].id, records[5].id}  # main's calls too
    assert store.get(records[3].id).parent_agent_id == A  # read back whole
