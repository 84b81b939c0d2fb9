"""Offline features: every definition against a brute-force recomputation, point-in-time correctness, errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from streamrec.errors import ConfigError, DataError
from streamrec.features import BUILTIN, Feature, point_in_time, select

T0 = datetime(2026, 3, 1)


def random_events(seed: int, n: int = 400) -> pa.Table:
    rng = np.random.default_rng(seed)
    types = rng.choice(["play", "progress", "complete", "impression", "rating"], n)
    fraction = np.where(np.isin(types, ["progress", "complete"]), rng.uniform(0, 1, n), np.nan)
    return pa.table({
        "user_id": rng.choice([f"u{i}" for i in range(6)], n),
        "item_id": rng.choice([f"t{i}" for i in range(5)], n),
        "type": types,
        "ts": pa.array([T0 + timedelta(seconds=int(s)) for s in rng.integers(-40 * 86_400, 0, n)], pa.timestamp("us")),
        "watched_s": pa.array(np.where(np.isnan(fraction), np.nan, fraction * 3600), pa.float64(), from_pandas=True),
        "fraction": pa.array(fraction, pa.float64(), from_pandas=True),
        "rating": pa.array(np.full(n, np.nan), pa.float64(), from_pandas=True),
    })


def brute_force(events: pa.Table, feature: Feature, key: str, at: datetime) -> float | None:
    """The feature by its definition, one event at a time."""
    column = "user_id" if feature.entity == "user" else "item_id"
    rows = [r for r in events.to_pylist() if r[column] == key and r["ts"] < at and r["type"] in feature.events
            and (feature.window_days is None or r["ts"] >= at - timedelta(days=feature.window_days))]
    if feature.aggregation == "count":
        return len(rows)
    values = [r[feature.value] for r in rows if r.get(feature.value) is not None and not np.isnan(r[feature.value])] \
        if feature.value else []
    if feature.aggregation == "sum":
        return float(sum(values))
    if feature.aggregation == "mean":
        return float(np.mean(values)) if values else None
    newest = max((r["ts"] for r in rows), default=None)
    return (at - newest).total_seconds() / 86_400 if newest else None


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_builtin_feature_matches_its_definition_computed_by_hand(con, seed):
    events = random_events(seed)
    con.register("events", events)
    rng = np.random.default_rng(seed + 100)
    n = 30
    spine = pa.table({
        "user_id": rng.choice([f"u{i}" for i in range(7)], n),  # u6 has no events at all
        "item_id": rng.choice([f"t{i}" for i in range(6)], n),
        "ts": pa.array([T0 - timedelta(seconds=int(s)) for s in rng.integers(0, 30 * 86_400, n)], pa.timestamp("us")),
    })
    aggregates = [f for f in BUILTIN if isinstance(f, Feature)]
    out = point_in_time(con, spine, aggregates)
    assert out.column_names[:3] == ["user_id", "item_id", "ts"]
    assert out.column("user_id").to_pylist() == spine.column("user_id").to_pylist()  # spine order kept
    for feature in aggregates:
        got = out.column(feature.name).to_pylist()
        for i, row in enumerate(spine.to_pylist()):
            key = row["user_id"] if feature.entity == "user" else row["item_id"]
            expected = brute_force(events, feature, key, row["ts"])
            if expected is None:
                assert got[i] is None or np.isnan(got[i]), (feature.name, i)
            else:
                assert got[i] == pytest.approx(expected, rel=1e-9, abs=1e-9), (feature.name, i)


def test_events_at_or_after_the_time_never_count(con):
    at = T0
    events = pa.table({"user_id": ["u", "u", "u"], "item_id": ["a", "a", "a"], "type": ["play"] * 3,
                       "ts": pa.array([at - timedelta(microseconds=1), at, at + timedelta(days=1)], pa.timestamp("us")),
                       "watched_s": [None] * 3, "fraction": [None] * 3, "rating": [None] * 3})
    con.register("events", events)
    spine = pa.table({"user_id": ["u"], "item_id": ["a"], "ts": pa.array([at], pa.timestamp("us"))})
    out = point_in_time(con, spine, select(["user_plays_1d", "title_plays_28d", "user_days_since_last_play"]))
    assert out.column("user_plays_1d").to_pylist() == [1]
    assert out.column("title_plays_28d").to_pylist() == [1]
    assert out.column("user_days_since_last_play")[0].as_py() == pytest.approx(1e-6 / 86_400)


def test_window_edges_are_inclusive_at_the_start(con):
    events = pa.table({"user_id": ["u", "u"], "item_id": ["a", "b"], "type": ["play", "play"],
                       "ts": pa.array([T0 - timedelta(days=7), T0 - timedelta(days=7, microseconds=1)],
                                      pa.timestamp("us")),
                       "watched_s": [None] * 2, "fraction": [None] * 2, "rating": [None] * 2})
    con.register("events", events)
    spine = pa.table({"user_id": ["u"], "ts": pa.array([T0], pa.timestamp("us"))})
    out = point_in_time(con, spine, select(["user_plays_7d", "user_plays_28d"]))
    assert (out.column("user_plays_7d")[0].as_py(), out.column("user_plays_28d")[0].as_py()) == (1, 2)


def test_spine_without_a_needed_key_is_a_data_error(con):
    con.register("events", random_events(0))
    spine = pa.table({"user_id": ["u1"], "ts": pa.array([T0], pa.timestamp("us"))})
    with pytest.raises(DataError, match=r"missing columns \['item_id'\]"):
        point_in_time(con, spine, select(entity="title"))


def test_unknown_feature_names_list_the_defined_ones():
    with pytest.raises(ConfigError, match="unknown features \\['user_vibes'\\]; defined: user_plays_1d"):
        select(["user_plays_1d", "user_vibes"])


@pytest.mark.parametrize("kwargs, message", [
    ({"aggregation": "count", "events": ("binge",)}, "unknown event types"),
    ({"aggregation": "mean", "events": ("play",)}, "needs value"),
    ({"aggregation": "count", "events": ("play",), "value": "fraction"}, "takes no value"),
    ({"aggregation": "days_since_last", "events": ("play",), "window_days": 7}, "no window"),
])
def test_inconsistent_definitions_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Feature(name="x", entity="user", **kwargs)


def test_attributes_come_from_the_catalog_relative_to_the_time_and_are_null_without_one(con):
    con.register("events", random_events(0))
    spine = pa.table({"user_id": ["u1", "u9"], "item_id": ["t1", "t2"],
                      "ts": pa.array([datetime(2026, 3, 2, 21, 30), datetime(2026, 3, 1)], pa.timestamp("us"))})
    names = ["user_tenure_days", "user_region", "title_days_since_release", "title_runtime_min", "title_is_series",
             "title_n_genres", "context_hour", "context_weekday"]
    bare = point_in_time(con, spine, select(names))
    assert bare.column("user_region").to_pylist() == [None, None]  # no catalog tables in this connection
    assert bare.column("context_hour").to_pylist() == [21, 0]
    assert bare.column("context_weekday").to_pylist() == [1, 7]  # 2026-03-02 is a Monday
    con.register("users", pa.table({"user_id": ["u1"], "region": ["DE"],
                                    "signup_ts": pa.array([datetime(2026, 2, 28, 21, 30)], pa.timestamp("us"))}))
    con.register("titles", pa.table({"item_id": ["t1", "t2"], "kind": ["movie", "series"],
                                     "genres": [["Drama", "Crime"], []],
                                     "release_date": pa.array([datetime(2026, 3, 1).date(), datetime(2026, 3, 5).date()],
                                                              pa.date32()),
                                     "runtime_min": pa.array([120, 45], pa.int32())}))
    out = point_in_time(con, spine, select(names)).to_pylist()
    assert (out[0]["user_tenure_days"], out[0]["user_region"]) == (pytest.approx(2.0), "DE")
    assert (out[1]["user_tenure_days"], out[1]["user_region"]) == (None, None)  # not in the catalog
    assert out[0]["title_days_since_release"] == pytest.approx(1 + 21.5 / 24)
    assert out[1]["title_days_since_release"] == pytest.approx(-4.0)  # announced, not released yet
    assert [(r["title_runtime_min"], r["title_is_series"], r["title_n_genres"]) for r in out] == [
        (120.0, False, 2), (45.0, True, 0)]


def test_genre_match_is_the_mean_share_of_the_users_plays_in_the_titles_genres(con):
    events = pa.table({"user_id": ["u1"] * 4, "item_id": ["a", "b", "c", "a"], "type": ["play"] * 4,
                       "ts": pa.array([T0 - timedelta(days=d) for d in (1, 2, 3, 40)], pa.timestamp("us")),
                       "watched_s": [None] * 4, "fraction": [None] * 4, "rating": [None] * 4})
    con.register("events", events)
    spine = pa.table({"user_id": ["u1"] * 5 + ["u2"], "item_id": ["a", "b", "c", "d", "e", "d"],
                      "ts": pa.array([T0] * 6, pa.timestamp("us"))})
    name = "user_title_genre_match_28d"
    assert point_in_time(con, spine, select([name])).column(name).to_pylist() == [None] * 6  # no catalog
    con.register("titles", pa.table({"item_id": ["a", "b", "c", "d", "e"],
                                     "genres": [["Drama"], ["Drama", "Comedy"], ["Action"], ["Drama", "Action"], []]}))
    got = point_in_time(con, spine, select([name])).column(name).to_pylist()
    # 28 days: plays of a (Drama), b (Drama, Comedy), c (Action): Drama 2/3, Comedy 1/3, Action 1/3; the old play
    # of a is outside the window; u2 has no plays; e has no genres
    assert got == pytest.approx([2 / 3, 1 / 2, 1 / 3, 1 / 2, 0.0, 0.0])
