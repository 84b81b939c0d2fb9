"""Implicit-feedback weights: the formula on hand-built events, and its properties under hypothesis."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.events.schema import EVENT_ARROW_SCHEMA, events_table_ddl
from streamrec.preprocess import IMPRESSION_ONLY_COLUMNS, INTERACTION_COLUMNS, compute_interactions
from streamrec.settings import PreprocessConfig

T0 = datetime(2024, 1, 1)
_ids = count()


def ev(user: str, item: str, type_: str, t: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{next(_ids)}",
        "user_id": user,
        "item_id": item,
        "type": type_,
        "ts": T0 + timedelta(seconds=t),
        **fields,
    }


def make_db(rows: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(events_table_ddl("events"))
    batch = pa.Table.from_pylist(rows, schema=EVENT_ARROW_SCHEMA)  # noqa: F841 - read by DuckDB by name
    con.execute("INSERT INTO events BY NAME SELECT * FROM batch")
    return con


def weights(con: duckdb.DuckDBPyConnection, cfg: PreprocessConfig | None = None) -> dict[tuple[str, str], float]:
    compute_interactions(con, "events", cfg or PreprocessConfig(), temporary=True)
    return {(u, i): w for u, i, w in con.execute("SELECT user_id, item_id, weight FROM interactions").fetchall()}


def test_formula_on_hand_built_events():
    con = make_db(
        [
            ev("u", "play_only", "play", 0),
            ev("u", "half", "play", 0),
            ev("u", "half", "progress", 60, fraction=0.5, watched_s=600),
            ev("u", "done", "play", 0),
            ev("u", "done", "complete", 60, watched_s=1200),
            ev("u", "nearly", "progress", 10, fraction=0.95),
            ev("u", "listed", "add_to_list", 0),
            ev("u", "top", "rating", 0, rating=5.0),
            ev("u", "low", "rating", 0, rating=0.5),
            ev("u", "hated", "rating", 0, rating=0.0),
            ev("u", "shown", "impression", 0, position=1),
            ev("u", "shown", "impression", 5, position=2),
        ]
    )
    result = compute_interactions(con, "events", PreprocessConfig(), temporary=True)
    got = weights(con)
    assert got == pytest.approx(
        {
            ("u", "play_only"): 1.0,
            ("u", "half"): 1.0 + 3.0 * 0.5,
            ("u", "done"): 1.0 + 3.0,
            ("u", "nearly"): 1.0 + 3.0,  # >= complete_fraction counts as completed
            ("u", "listed"): 1.0,
            ("u", "top"): 1.0 + 1.0,
            ("u", "low"): 1.0 - 0.8,
        }
    )
    assert result.n_nonpositive == 1  # the 0-star rating: weight 0, left out
    assert result.n_impressions_only == 1
    assert result.rating_scale == 5.0
    assert con.execute("SELECT * FROM impressions_only").fetchall() == [
        ("u", "shown", 2, T0, T0 + timedelta(seconds=5))
    ]


def test_output_columns_and_aggregates():
    con = make_db(
        [
            ev("u", "a", "impression", 0, position=0),
            ev("u", "a", "play", 10),
            ev("u", "a", "progress", 20, fraction=0.3),
            ev("u", "a", "progress", 30, fraction=0.6),
            ev("u", "a", "rating", 40, rating=4.0),
            ev("u", "a", "rating", 50, rating=2.0),
        ]
    )
    compute_interactions(con, "events", PreprocessConfig(), output="ia", impressions_output="io", temporary=True)
    assert [d[0] for d in con.execute("SELECT * FROM ia").description] == list(INTERACTION_COLUMNS)
    assert [d[0] for d in con.execute("SELECT * FROM io").description] == list(IMPRESSION_ONLY_COLUMNS)
    row = dict(zip(INTERACTION_COLUMNS, con.execute("SELECT * FROM ia").fetchone(), strict=True))
    assert row["first_ts"] == T0 + timedelta(seconds=10)
    assert row["last_ts"] == T0 + timedelta(seconds=50)
    assert (row["n_events"], row["n_plays"], row["n_impressions"]) == (5, 1, 1)
    assert row["max_fraction"] == pytest.approx(0.6)
    assert row["rating"] == 2.0  # the last rating counts
    assert row["completed"] is False and row["added_to_list"] is False
    assert row["weight"] == pytest.approx(1.0 + 3.0 * 0.6 + (2.0 / 5 - 0.5) / 0.5)


def test_ten_point_scale_is_inferred_and_configurable():
    rows = [ev("u", "a", "rating", 0, rating=10.0), ev("u", "b", "rating", 0, rating=5.0)]
    assert weights(make_db(rows)) == pytest.approx({("u", "a"): 2.0, ("u", "b"): 1.0})
    cfg = PreprocessConfig(rating_scale_max=5.0)
    assert weights(make_db(rows), cfg) == pytest.approx({("u", "a"): 2.0, ("u", "b"): 2.0})


def test_configured_weights_are_used():
    cfg = PreprocessConfig(play_weight=2.0, complete_weight=5.0, add_to_list_weight=0.0)
    con = make_db([ev("u", "a", "complete", 0), ev("u", "b", "add_to_list", 0)])
    assert weights(con, cfg) == pytest.approx({("u", "a"): 7.0})  # add_to_list alone weighs 0: left out


# ---- properties ---------------------------------------------------------------------------------------------

pair_events = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["i1", "i2", "i3", "i4"]),
        st.one_of(st.none(), st.floats(0.0, 1.0)),  # None: a play, else a progress with this fraction
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=30,
)


def _watch_rows(spec: list[tuple[str, str, float | None, int]]) -> list[dict[str, Any]]:
    return [ev(u, i, "play", t) if f is None else ev(u, i, "progress", t, fraction=f) for u, i, f, t in spec]


@settings(max_examples=30, deadline=None)
@given(spec=pair_events, data=st.data())
def test_completing_never_lowers_a_weight(spec, data):
    rows = _watch_rows(spec)
    before = weights(make_db(rows))
    pairs = sorted({(u, i) for u, i, _, _ in spec})
    completed = data.draw(st.lists(st.sampled_from(pairs), min_size=1, unique=True))
    after = weights(make_db(rows + [ev(u, i, "complete", 20_000) for u, i in completed]))
    assert set(after) == set(before)
    for pair in pairs:
        assert after[pair] >= before[pair] - 1e-12
    for pair in completed:
        assert after[pair] == pytest.approx(1.0 + 3.0)


@settings(max_examples=30, deadline=None)
@given(spec=pair_events)
def test_any_play_has_a_positive_weight(spec):
    got = weights(make_db(_watch_rows(spec)))
    assert set(got) == {(u, i) for u, i, _, _ in spec}
    assert all(w >= 1.0 for w in got.values())


@settings(max_examples=30, deadline=None)
@given(ratings=st.lists(st.sampled_from([x / 2 for x in range(1, 11)]), min_size=1, max_size=20))
def test_rating_only_weights_are_ordered_by_rating(ratings):
    con = make_db([ev("u", f"i{n}", "rating", n, rating=r) for n, r in enumerate(ratings)])
    got = weights(con)
    assert len(got) == len(ratings)  # MovieLens ratings (0.5..5) all stay, as weighted plays
    by_item = [got[("u", f"i{n}")] for n in range(len(ratings))]
    for a, wa in zip(ratings, by_item, strict=True):
        assert wa > 0
        for b, wb in zip(ratings, by_item, strict=True):
            if a < b:
                assert wa < wb
            elif a == b:
                assert wa == wb


def test_ratings_at_one_instant_resolve_to_the_highest_whatever_the_row_order():
    rows = [
        ev("u", "a", "rating", 5, rating=2.0),
        ev("u", "a", "rating", 5, rating=4.0),
        ev("u", "a", "rating", 1, rating=5.0),
    ]
    for order in (rows, rows[::-1]):
        con = make_db(order)
        compute_interactions(con, "events", PreprocessConfig(), temporary=True)
        assert con.execute("SELECT rating FROM interactions").fetchall() == [(4.0,)]
