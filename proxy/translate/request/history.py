"""The turns fitted to Gemini's rules for function calls: every call answered, one response each, in the next user
turn; a call never opens the history; a response never follows a turn without calls; and on Gemini 3 a signature
on the first call of every step of the current turn."""

from __future__ import annotations

from proxy.translate import marks
from proxy.translate.notes import Notes
from proxy.translate.request.state import Part, Turn

OPENING = "(earlier conversation omitted)"


def fix_function_turns(turns: list[Turn], notes: Notes) -> list[Turn]:
    """The turns, repaired where Gemini would refuse them (each repair noted)."""
    out: list[Turn] = []
    filled: list[str] = []
    for idx, turn in enumerate(turns):
        calls = [p["functionCall"]["name"] for p in turn["parts"] if "functionCall" in p]
        if turn["role"] == "model" and calls and not out:
            # Gemini wants a function call to follow a user turn; a history that opens with the model's
            # call (trimmed by the client) gets a neutral user turn in front.
            out.append({"role": "user", "parts": [{"text": OPENING}]})
            notes.add(
                "history-repaired",
                "a user turn put before the history's first function call (Gemini wants one there)",
                added=OPENING,
            )
        out.append(turn)
        nxt = turns[idx + 1] if idx + 1 < len(turns) else None
        # the model's last word has nothing to answer yet
        if turn["role"] == "model" and calls and nxt is not None and nxt["role"] == "user":
            filled += _answer(calls, nxt)
    _orphans_as_text(out, notes)
    if filled:
        notes.add(
            "history-repaired",
            f"{len(filled)} function call(s) the client never answered given an error response",
            tools=filled,
        )
    return out


def _answer(calls: list[str], nxt: Turn) -> list[str]:
    """One response per call, in the calls' order, first in the next turn; a call the client never answered
    (interrupted, any of a parallel batch) gets a filled-in response under its own name. → the filled ones."""
    given = [p for p in nxt["parts"] if "functionResponse" in p]
    others = [p for p in nxt["parts"] if "functionResponse" not in p]
    answered: list[Part] = []
    filled: list[str] = []
    for name in calls:
        match = next((p for p in given if p["functionResponse"]["name"] == name), None)
        if match is not None:
            given.remove(match)
            answered.append(match)
        else:
            filled.append(name)
            answered.append(
                {"functionResponse": {"name": name, "response": {"error": "no result was returned"}}}
            )
    nxt["parts"] = answered + given + others
    return filled


def _orphans_as_text(turns: list[Turn], notes: Notes) -> None:
    """Function responses in a user turn after a model turn without calls become text."""
    for idx, turn in enumerate(turns):
        if turn["role"] != "user":
            continue
        prev = turns[idx - 1] if idx > 0 else None
        if prev is not None and any("functionCall" in p for p in prev["parts"]):
            continue
        if any("functionResponse" in p for p in turn["parts"]):
            notes.add("history-repaired", "function responses with no call before them sent as text")
        turn["parts"] = [_as_text(p) for p in turn["parts"]]


def _as_text(p: Part) -> Part:
    if "functionResponse" not in p:
        return p
    return {"text": f"[result of {p['functionResponse']['name']}] {p['functionResponse']['response']}"}


def sign_current_turn(contents: list[Turn]) -> int:
    """Gemini 3 wants a signature it issued on the first function call of every model step since the last
    user message that is not only function responses; where there is none, Google's documented skip value.
    Returns how many were put in."""
    start = 0
    for i, c in enumerate(contents):
        if c["role"] == "user" and not any("functionResponse" in p for p in c["parts"]):
            start = i
    n = 0
    for c in contents[start:]:
        if c["role"] != "model":
            continue
        first = next((p for p in c["parts"] if "functionCall" in p), None)
        if first is not None and not first.get("thoughtSignature"):
            first["thoughtSignature"] = marks.SKIP
            n += 1
    return n


def inject_signatures(contents: list[Turn], notes: Notes) -> None:
    """`sign_current_turn`, noted."""
    injected = sign_current_turn(contents)
    if injected:
        notes.add(
            "signature-injected",
            f"signature injected (x{injected}): {marks.SKIP} on function calls Gemini did not sign",
            count=injected,
        )
