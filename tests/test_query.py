"""The filter language: `parse` reads text into a `Filter` (data), the SQLite store answers it, `TERMS` writes
every description of it."""

import io
import pathlib
import re

import pytest

from proxy.store import query
from proxy.store.query import Ago, Compare, Failed, Glob, Present, Range, UsedTool
from tests.test_store import filled, make


@pytest.mark.parametrize(
    "flt,expected",
    [
        ("", 20),
        ("model:flash", 20),
        ("model:pro", 0),
        ("target:vertex*", 20),
        ("status:200", 18),
        ("status:5xx", 2),
        ("status:>=400", 2),
        ("status:error", 2),
        ("tool:Bash", 10),
        ("-tool:Bash", 10),
        ("latency>110", 9),
        ("latency>0.11s", 9),
        ("cost>0.0005", 20),
        ("stream:yes", 5),
        ("session:abc", 3),
        ("number", 20),
        ('"prompt number 7"', 1),
        ("answer 12", 1),
        ("since:2026-10-01", 0),
        ("since:2026-01-01", 20),
        ("until:2030-01-01 model:flash status:200", 18),
        ("kind:count", 1),
        ("cancelled:yes", 1),
        ("provider:vertex", 20),
        ("provider:gemini", 0),
        ("input>99", 20),
        ("input>100", 0),
        ("output<=10", 20),
        ("tokens>=1k", 0),
        ("error:yes", 2),
        ("-error:yes", 18),
        ("status:ok", 18),
        ("-router", 20),
        ("-number", 0),
        ("number -answer", 0),
        ('number -"answer 12"', 19),
        ("http://example.com/x", 0),
    ],
)
def test_each_filter_term(tmp_path, flt, expected):
    recs = [
        make(
            i,
            status=500 if i in (3, 4) else 200,
            error_type="api_error" if i in (3, 4) else None,
            request_mode="stream" if i < 5 else "oneshot",
            session_id="abc-1" if i < 3 else "zzz",
            kind="count_tokens" if i == 19 else "messages",
            cancelled=i == 18,
        )
        for i in range(20)
    ]
    store = filled(tmp_path, recs)
    assert store.count(query.parse(flt)) == expected


def test_durations_parse_for_since_and_prune():
    assert query.parse_duration("15m") == 900 and query.parse_duration("2h") == 7200
    assert query.parse_duration("1.5d") == 129600 and query.parse_duration("soon") is None


def test_bad_filters_say_what_is_wrong():
    for flt, needle in [
        ("since:yesterday", "since/until"),
        ("status:abc", "status:abc"),
        ("cost>cheap", "not a number"),
        ("stream:maybe", "yes or no"),
        ('"open', "quotes"),
        ("latency>", "latency: needs a number after >"),  # was free text that matched nothing
        ("model:flash - router", "lone '-'"),
    ]:
        with pytest.raises(query.QueryError, match=needle):
            query.parse(flt)


def test_a_filter_is_data_parsed_once():
    flt = query.parse('model:flash -tool:Bash status:4xx latency>2s -error:yes "two words" -router')
    assert flt.conditions == (
        Glob(("request_model", "response_model"), "flash"),
        UsedTool("Bash", negated=True),
        Range("status", 400, 500),
        Compare("latency_ms", ">", 2000.0),
        Present("error_type", negated=True),
    )
    assert flt.words == ("two words",) and flt.excluded == ("router",)
    assert query.parse("since:1h").conditions == (Ago("started_at", ">=", 3600.0),)  # now: when it runs
    assert query.parse("-until:2d").conditions == (Ago("started_at", "<", 172800.0, negated=True),)
    assert query.parse("-status:error").conditions == (Failed(negated=True),)
    assert not query.parse("") and query.parse("x")


def test_an_unknown_field_is_named_with_the_fields_there_are():
    with pytest.raises(query.QueryError) as exc:
        query.parse("modle:flash")
    msg = str(exc.value)
    assert msg.startswith("unknown field 'modle' (did you mean model?); fields: model, target, provider,")
    assert all(name in msg for name in ("input", "output", "provider", "cancelled"))
    with pytest.raises(query.QueryError, match="unknown field 'colour'"):
        query.parse("-colour:red")
    # whatever its value, none included: `modle:` searched as text matched nothing, silently
    for typo in ("modle:", "-modle:", "modle: flash"):
        with pytest.raises(query.QueryError, match=r"unknown field 'modle' \(did you mean model\?\)"):
            query.parse(typo)


def test_a_note_kind_no_translation_produces_is_refused_with_the_kinds():
    # a typo would otherwise match nothing, silently, and read as "no call had this"
    with pytest.raises(query.QueryError) as exc:
        query.parse("note:signatur-injected")
    assert "(did you mean signature-injected?)" in str(exc.value) and "schema-keyword-removed" in str(
        exc.value
    )
    with pytest.raises(query.QueryError, match="no such note kind"):
        query.parse("-note:bogus")
    for ok in ("note:signature", "note:schema-*", "note:SIGNATURE-KEPT", "-note:cap-applied"):
        assert query.parse(ok).conditions


@pytest.mark.parametrize(
    "text", ["http://localhost:8000/v1", "Note:", "a:b:c", "TypeError:boom", "ratio 3:2"]
)
def test_text_with_a_colon_is_still_free_text(text):
    flt = query.parse(text)
    assert flt.conditions == () and " ".join(flt.words) == text


def test_every_description_of_the_language_is_written_from_terms():
    names = [t.name for t in query.TERMS]
    for name in (
        "model",
        "target",
        "provider",
        "status",
        "since",
        "until",
        "session",
        "tool",
        "stream",
        "kind",
        "error",
        "cancelled",
        "cost",
        "latency",
        "ttft",
        "tokens",
        "input",
        "output",
        "text",
        "-",
    ):
        assert name in names
    assert all(t.example in query.__doc__ and t.example in query.help_text() for t in query.TERMS)


def test_the_readme_table_is_the_one_terms_writes():
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    table = re.search(r"^\| term \| example \| meaning \|\n(?:^\|.*\n)+", readme, re.M)
    assert table, "the README has no table of filter terms"
    assert table.group(0).strip() == query.markdown_table()


async def test_the_console_help_lists_every_term_and_fits_80x24(tmp_path):
    from rich.console import Console
    from textual.containers import Vertical
    from textual.widgets import Static

    from console.app import GatewatchApp, HelpScreen
    from proxy import config as cfg
    from proxy.store import Store

    app = GatewatchApp(cfg.Config(), Store(tmp_path / "h.db"), config_error="no gateway here")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one(Vertical)
        # the whole help on screen: nothing cut, nothing to scroll to
        assert box.region.height <= 24 and box.region.width <= 80
        assert box.virtual_size.height <= box.content_region.height, (box.virtual_size, box.content_region)
        out = io.StringIO()
        Console(file=out, width=80).print(app.screen.query_one("#help-terms", Static).content)
    shown = out.getvalue()
    assert "…" not in shown
    for t in query.TERMS:
        if t.unit:  # the number terms share a line: each named, the first two with an example
            assert f" {t.name} " in f" {shown} ".replace(":", " "), t.name
        else:
            assert t.example.split("  ")[0] in shown, t.name
            assert " ".join(t.help.split()) in " ".join(shown.split()), t.name


def test_a_duration_is_measured_when_the_filter_runs_not_when_it_was_typed(tmp_path, monkeypatch):
    import time

    import proxy.store.sql as sql

    now = time.time()
    store = filled(tmp_path, [make(1, started_at=now - 1800)])
    flt = query.parse("since:1h")
    assert store.count(flt) == 1
    monkeypatch.setattr(sql.time, "time", lambda: now + 3600)  # the console stays open an hour
    assert store.count(flt) == 0


@pytest.mark.parametrize(
    "term",
    [
        "target:nothing",
        "target:vertex*",
        "model:pro",
        "model:flash",
        "ttft>5000",
        "ttft<5000",
        "session:zzz*",
        "session:abc",
        "agent:a1",
        "provider:vertex",
        "status:200",
        "status:4xx",
        "cost>0.0005",
        "latency>100",
        "tool:Bash",
        "note:schema-*",
        "router",
    ],
)
def test_a_negated_term_keeps_every_record_the_term_does_not_match_empty_fields_too(backend, term):
    """Issue 22: SQL's `NOT (x)` is NULL where x's field is empty, which dropped those records from `-term`
    in the console, `export` and `stats` alike; both stores, one NULL-safe negation."""
    from proxy.record import Usage

    recs = [make(i) for i in range(6)]
    recs += [  # records with the fields the terms read left empty
        make(
            10 + i,
            target=None,
            provider=None,
            response_model=None,
            status=None,
            latency_ms=None,
            usage=Usage(),
            session_id=None,
            agent_id=None,
            preview="",
            response_text="",
        )
        for i in range(3)
    ]
    recs += [make(20, session_id="abc-1", agent_id="a1", usage=Usage(time_to_first_token=6000.0, cost=0.01))]
    store = filled(backend, recs)
    total = store.count(query.parse(""))
    assert total == len(recs)
    matched, rest = store.count(query.parse(term)), store.count(query.parse(f"-{term}"))
    assert matched + rest == total, (term, matched, rest)
