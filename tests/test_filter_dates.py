"""Every date the filter takes converts, or is a QueryError: in the parser (hypothesis over every datetime Python
holds, every offset), in both stores, under the console's search box (the gateway it hosts still answering), and
in `gatewatch export`."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.widgets import Input, Static

from proxy.simulator import Reply
from proxy.store import query
from tests.test_cli import _filled, cli
from tests.test_console import call, make_app, plain, wait_for
from tests.test_store import filled, make

EDGES = (
    "0001-01-01",
    "0001-01-01T00:00:00+23:59",
    "1969-12-31T23:59:59",
    "1970-01-01",
    "1970-01-01T00:00:00+14:00",  # before the epoch in UTC: a number below 0, still a date
    "9999-12-31",
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59.999999-23:59",
    "2026-02-29",  # not a date
    "99999999999999999999999999999w",
    "521000w",
    "500000w",
)
OFFSETS = st.builds(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)), st.integers(-(24 * 60 - 1), 24 * 60 - 1)
)


def _outcome(text: str) -> query.Filter | query.QueryError:
    try:
        return query.parse(text)
    except query.QueryError as exc:
        return exc


def _finite(flt: query.Filter) -> bool:
    values = [getattr(c, "value", None) for c in flt.conditions] + [
        getattr(c, "seconds", None) for c in flt.conditions
    ]
    return all(math.isfinite(v) for v in values if isinstance(v, float))


@settings(max_examples=400, deadline=None)
@given(
    when=st.datetimes(min_value=dt.datetime.min, max_value=dt.datetime.max, timezones=st.none() | OFFSETS),
    field=st.sampled_from(["since", "until", "-since", "-until"]),
    date_only=st.booleans(),
)
def test_every_date_python_holds_converts_or_is_a_query_error(when, field, date_only):
    text = when.date().isoformat() if date_only else when.isoformat()
    out = _outcome(f"{field}:{text}")
    if isinstance(out, query.QueryError):
        assert when.year < query.FIRST_YEAR and "no call is that old" in str(out)
        return
    assert _finite(out)
    (c,) = out.conditions
    assert isinstance(c, query.Compare)
    if when.tzinfo is not None and not date_only:  # an aware datetime: exactly its instant
        assert c.value == pytest.approx((when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.smhdwT:+-Z ", max_size=40))
def test_any_duration_or_date_like_text_parses_finite_or_is_a_query_error(value):
    out = _outcome(f"since:{value}")
    assert isinstance(out, query.QueryError) or _finite(out)


def test_the_edges_run_in_both_stores(backend):
    store = filled(backend, [make(i) for i in range(3)])
    try:
        for value in EDGES:
            for field in ("since", "until"):
                out = _outcome(f"{field}:{value}")
                if isinstance(out, query.QueryError):
                    continue
                found = store.page(out, limit=10)
                assert store.count(out) == len(found)
                want = 3 if (field == "since") == (value.startswith(("0", "1969", "1970", "5"))) else 0
                assert len(found) == want, (field, value)
    finally:
        store.close()


def test_since_year_one_is_an_error_everywhere():
    for text in ("since:0001-01-01", "until:0001-01-01T00:00:00+23:59", "since:1969-12-31T23:59:59"):
        with pytest.raises(query.QueryError, match="no call is that old"):
            query.parse(text)
    with pytest.raises(query.QueryError, match="longer than gatewatch reaches back"):
        query.parse("since:99999999999999999999999999999w")


def test_gatewatch_export_since_year_one_prints_an_error_not_a_traceback(tmp_path):
    db = tmp_path / "e.db"
    _filled(db, [make(i) for i in range(2)])
    r = cli("export", "--db", str(db), "--", "since:0001-01-01")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "no call is that old" in r.stderr
    r = cli("export", "--db", str(db), "--format", "jsonl", "--", "until:9999-12-31")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr


async def test_since_year_one_under_the_search_box_is_an_error_and_the_hosted_gateway_still_answers(
    fake, sa_json, tmp_path
):
    app = make_app(fake, sa_json, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        box, line = app.query_one("#search", Input), app.query_one("#status-line", Static)
        for typed, says in [
            ("since:0001-01-01", "no call is that old"),
            ("until:0001-01-01", "no call is that old"),
            ("since:99999999999999999999w", "longer than gatewatch"),
        ]:
            box.value = typed
            await wait_for(pilot, lambda says=says: says in plain(line.content, width=78))
        for typed in ("until:9999-12-31", "since:9999-12-31T23:59:59.999999-23:59"):
            box.value = typed
            await pilot.pause(0.3)
        assert app.is_running
        fake.script(Reply.text("still here"))
        answer = await call(app, "are you there?", model="gemini-2.5-flash", stream=False)
        assert answer.content[0].text == "still here"
        box.value = ""
        table = app.query_one("HistoryTable")
        await wait_for(pilot, lambda: table.row_count == 1)
        assert app.is_running
