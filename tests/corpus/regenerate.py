"""The translation corpus: what the gateway makes of every body here, byte for byte.

`python -m tests.corpus.regenerate` writes `expected/` from the current code; `tests/test_translation_corpus.py`
recomputes every output and compares bytes. Regenerate only when a change of behaviour is meant, and read the
diff: it is the change.

- `requests/NAME.json`: an Anthropic Messages body (optional `NAME.memory.json`: the tool_use signatures and
  text-part signatures the gateway would hold for it). Per target, `expected/requests/NAME/TARGET.json` is the
  generateContent body exactly as the relay sends it (`orjson.dumps`), and `expected/requests/NAME/meta.json`
  what else translation returns (notes, names, billing fields…), per target.
- `invalid.json`: bodies that must be refused; `expected/invalid.json` their errors.
- `responses/NAME.json` (a Gemini generateContent answer) and `streams/NAME.sse` (a Gemini SSE stream, as
  `alt=sse` sends it), with the request-side options in `answer_options.json`: `expected/…/NAME.json` is the
  message the client gets, `NAME.sse` the SSE bytes it gets, `NAME.meta.json` what the gateway keeps and notes.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from proxy.errors import GatewayError
from proxy.translate import request as treq
from proxy.translate.names import ToolNames
from proxy.translate.response import IdSource
from proxy.translate.stream import Event, StreamTranslator, sse

HERE = Path(__file__).parent
EXPECTED = HERE / "expected"
PRETTY = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
"""the outputs that are not bytes the gateway sends: readable diffs, keys in the order the code made them"""

TARGETS: dict[str, treq.Target] = {
    # The relay builds the Target from the target's config, whatever its provider (Vertex AI or the Gemini
    # API): model, max_tokens and schema_mode are all translation sees, so these are the kinds it tells apart.
    "gemini-2.5-flash": treq.Target("gemini-2.5-flash"),
    "gemini-2.5-pro.json_schema": treq.Target("gemini-2.5-pro", schema_mode="json_schema"),
    "gemini-3.1-pro-preview.max16384": treq.Target("gemini-3.1-pro-preview", max_tokens=16384),
    "gemini-4-argon.json_schema": treq.Target("gemini-4-argon", schema_mode="json_schema"),
    "gemini-2.0-flash": treq.Target("gemini-2.0-flash"),  # a model that does not think
}
MODEL = "claude-opus-5-5"
"""the model the client asked for, as the answers name it"""

Outputs = dict[str, bytes]
"""path under expected/ → bytes"""


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _error(exc: GatewayError) -> str:
    return f"{exc.status} {exc.type}: {exc.message}"


def _meta(t: treq.Translated) -> dict[str, Any]:
    return {
        "thinking": t.thinking,
        "search": t.search,
        "tool_names": t.tool_names,
        "names": t.names.mapped,
        "dropped": t.dropped,
        "billing": t.billing,
        "notes": [{"kind": n.kind, "detail": n.detail, "data": n.data} for n in t.notes],
    }


def request_outputs(name: str) -> Outputs:
    """Every target's upstream body for `requests/NAME.json`, and what else translation returned."""
    body = _load(HERE / "requests" / f"{name}.json")
    mem_path = HERE / "requests" / f"{name}.memory.json"
    memory = _load(mem_path) if mem_path.exists() else {}
    out: Outputs = {}
    meta: dict[str, Any] = {}
    for tname, target in TARGETS.items():
        try:
            t = treq.translate(body, target, memory.get("signatures"), memory.get("texts"))
        except GatewayError as exc:
            meta[tname] = {"error": _error(exc)}
            continue
        out[f"requests/{name}/{tname}.json"] = orjson.dumps(t.body)  # what relay/gemini.py sends
        meta[tname] = _meta(t)
    out[f"requests/{name}/meta.json"] = orjson.dumps(meta, option=PRETTY)
    return out


def invalid_outputs() -> Outputs:
    """The error each invalid body gets (one line when every target says the same)."""
    result: dict[str, Any] = {}
    for name, body in _load(HERE / "invalid.json").items():
        said: dict[str, str] = {}
        for tname, target in TARGETS.items():
            try:
                treq.translate(body, target)
                said[tname] = "accepted"
            except GatewayError as exc:
                said[tname] = _error(exc)
        result[name] = next(iter(said.values())) if len(set(said.values())) == 1 else said
    return {"invalid.json": orjson.dumps(result, option=PRETTY)}


def _translator(key: str) -> StreamTranslator:
    opts = _load(HERE / "answer_options.json").get(key, {})
    names = ToolNames()
    names.mapped.update(opts.get("names", {}))
    counter = itertools.count()
    return StreamTranslator(
        MODEL,
        "msg_corpus",
        IdSource(lambda: f"corpus{next(counter):04d}"),
        opts.get("thinking", True),
        names=names,
        search=opts.get("search", False),
    )


def _kept(st: StreamTranslator, empty: str | None) -> dict[str, Any]:
    return {
        "empty": empty,
        "stop_reason": st.stop_reason,
        "generated_chars": st.generated_chars,
        "signatures_out": st.signatures_out,
        "text_signatures_out": st.text_signatures_out,
        "notes": [{"kind": n.kind, "detail": n.detail, "data": n.data} for n in st.notes()],
    }


def response_outputs(name: str) -> Outputs:
    """A whole generateContent answer, as `relay.gemini.oneshot` turns it into the client's message."""
    st = _translator(f"responses/{name}")
    st.feed(_load(HERE / "responses" / f"{name}.json"))
    empty = st.empty()
    st.finish_events()
    return {
        f"responses/{name}.json": orjson.dumps(st.message()),
        f"responses/{name}.meta.json": orjson.dumps(_kept(st, empty), option=PRETTY),
    }


def chunks(raw: bytes) -> Iterator[dict[str, Any]]:
    """The JSON chunks of a Gemini SSE stream (`data:` lines)."""
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            yield orjson.loads(line[5:])


def stream_outputs(name: str) -> Outputs:
    """A Gemini stream as the client sees it: every event's SSE frame, and the block closed before the
    gateway's error event when the stream was cut (no finish reason)."""
    st = _translator(f"streams/{name}")
    events: list[Event] = []
    for chunk in chunks((HERE / "streams" / f"{name}.sse").read_bytes()):
        events += st.feed(chunk)
    cut = st.finish is None and not st.blocked
    empty = None if cut else st.empty()
    events += st.abort() if cut else st.finish_events()
    kept = {"cut": cut, **_kept(st, empty), "message": st.message()}
    return {
        f"streams/{name}.sse": b"".join(sse(e, d) for e, d in events),
        f"streams/{name}.meta.json": orjson.dumps(kept, option=PRETTY),
    }


def cases() -> dict[str, Callable[[], Outputs]]:
    """Every group of outputs, by a name for the test's id."""
    out: dict[str, Callable[[], Outputs]] = {}
    for p in sorted((HERE / "requests").glob("*.json")):
        if not p.name.endswith(".memory.json"):
            out[f"requests/{p.stem}"] = lambda n=p.stem: request_outputs(n)
    out["invalid"] = invalid_outputs
    for p in sorted((HERE / "responses").glob("*.json")):
        out[f"responses/{p.stem}"] = lambda n=p.stem: response_outputs(n)
    for p in sorted((HERE / "streams").glob("*.sse")):
        out[f"streams/{p.stem}"] = lambda n=p.stem: stream_outputs(n)
    return out


def expected_files() -> set[str]:
    return {p.relative_to(EXPECTED).as_posix() for p in EXPECTED.rglob("*") if p.is_file()}


def main() -> None:
    outputs: Outputs = {}
    for make in cases().values():
        outputs |= make()
    for stale in expected_files() - set(outputs):
        (EXPECTED / stale).unlink()
    for rel, data in outputs.items():
        path = EXPECTED / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    for d in sorted(EXPECTED.rglob("*"), reverse=True):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    print(f"{len(cases())} cases, {len(outputs)} outputs in {EXPECTED}", file=sys.stderr)


if __name__ == "__main__":
    main()
