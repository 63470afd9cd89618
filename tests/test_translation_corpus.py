"""The translation corpus (`tests/corpus`): every request body, Gemini answer and Gemini stream there translates
to exactly the bytes in `tests/corpus/expected`, which `python -m tests.corpus.regenerate` wrote from the code
as it was. A refactor of `proxy/translate` keeps every byte; a change of behaviour regenerates, and its diff
is the change."""

from __future__ import annotations

import difflib

import orjson
import pytest

from tests.corpus import regenerate

CASES = regenerate.cases()


def _readable(data: bytes) -> list[str]:
    """A one-line JSON body as indented lines, so a failure shows which field moved."""
    try:
        return orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).decode().splitlines()
    except orjson.JSONDecodeError:
        return data.decode(errors="replace").splitlines()


@pytest.mark.parametrize("case", sorted(CASES))
def test_translates_byte_for_byte_as_before(case):
    for rel, data in CASES[case]().items():
        path = regenerate.EXPECTED / rel
        assert path.exists(), f"{rel}: no expected output (run python -m tests.corpus.regenerate)"
        want = path.read_bytes()
        if data != want:
            diff = "\n".join(
                difflib.unified_diff(_readable(want), _readable(data), "expected", "now", lineterm="", n=2)
            )
            pytest.fail(f"{rel} differs:\n{diff[:6000]}")


def test_every_expected_output_has_its_input_and_every_kind_is_covered():
    made: set[str] = set()
    for make in CASES.values():
        made |= set(make())
    assert regenerate.expected_files() == made
    kinds = {c.split("/")[0] for c in CASES}
    assert kinds == {"requests", "invalid", "responses", "streams"}
    assert len([c for c in CASES if c.startswith("requests/")]) >= 60
