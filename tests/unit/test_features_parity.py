"""Online = offline: replaying events one at a time through OnlineFeatures gives, at every query time, exactly the
point-in-time values the offline DuckDB computation gives for the same entity and time."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from streamrec.errors import DataError
from streamrec.features import BUILTIN, Feature, point_in_time
from streamrec.features.definitions import Ratio
from streamrec.features.online import OnlineFeatures
from streamrec.features.templates import candidates
from tests.unit.test_features_offline import T0, random_events

AGGREGATES = [f for f in BUILTIN if isinstance(f, Feature | Ratio)]  # ratios (trending velocity) too


def with_ids(events: pa.Table) -> pa.Table:
    return events.append_column("event_id", pa.array([f"e{i}" for i in range(events.num_rows)]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_replayed_online_values_equal_offline_point_in_time_values(seed):
    assert_replay_equals_offline(with_ids(random_events(seed, n=500)), AGGREGATES, seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_features_online_equal_offline(seed):
    """Features expanded from the templates (add_to_list, impression, rating events; means, sums, recency; windows
    up to 90 days) go through the same replay."""
    from tests.unit.test_features_templates import rich_events, sample

    assert_replay_equals_offline(rich_events(seed), sample(candidates()), seed, days=100)


def assert_replay_equals_offline(events: pa.Table, features: list[Feature], seed: int, days: int = 35) -> None:
    rows = sorted(events.to_pylist(), key=lambda r: r["ts"])
    online = OnlineFeatures(features)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events", events)
    rng = np.random.default_rng(seed)
    times = sorted(T0 - timedelta(seconds=int(s)) for s in rng.integers(0, days * 86_400, 6))
    applied = 0
    for at in [*times, T0 + timedelta(days=3)]:
        while applied < len(rows) and rows[applied]["ts"] < at:
            online.apply(rows[applied])
            applied += 1
        for entity, key_col, keys in (("user", "user_id", [f"u{i}" for i in range(7)]),
                                      ("title", "item_id", [f"t{i}" for i in range(6)])):
            spine = pa.table({key_col: keys, "ts": pa.array([at] * len(keys), pa.timestamp("us"))})
            chosen = [f for f in features if f.entity == entity]
            offline = point_in_time(con, spine, chosen).to_pylist()
            for key, expected in zip(keys, offline):
                got = online.values(entity, key, at)
                for f in chosen:
                    want = expected[f.name]
                    if want is None:
                        assert got[f.name] is None, (at, key, f.name)
                    else:
                        assert got[f.name] == pytest.approx(want, rel=1e-9, abs=1e-9), (at, key, f.name)
    assert applied == len(rows)


def test_applying_an_event_twice_changes_nothing():
    events = with_ids(random_events(5, n=50)).to_pylist()
    events.sort(key=lambda r: r["ts"])
    once, twice = OnlineFeatures(), OnlineFeatures()
    for e in events:
        assert once.apply(e)
        twice.apply(e)
        assert not twice.apply(e)
    at = T0 + timedelta(hours=1)
    assert once.values("user", "u1", at) == twice.values("user", "u1", at)


def test_late_events_count_and_queries_before_the_newest_event_are_refused():
    online = OnlineFeatures()
    base = {"user_id": "u", "item_id": "t", "type": "play"}
    online.apply({**base, "event_id": "b", "ts": T0})
    online.apply({**base, "event_id": "a", "ts": T0 - timedelta(days=3)})  # arrives late, still inside 7 days
    values = online.values("user", "u", T0 + timedelta(seconds=1))
    assert (values["user_plays_1d"], values["user_plays_7d"]) == (1, 2)
    with pytest.raises(DataError, match="before the newest applied event"):
        online.values("user", "u", T0 - timedelta(days=1))
    with pytest.raises(DataError, match=r"lacks \['ts'\]"):
        online.apply({**base, "event_id": "c"})


def random_genres(seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    pool = ["Drama", "Comedy", "Action", "Crime"]
    return {f"t{i}": list(rng.choice(pool, rng.integers(0, 3), replace=False)) for i in range(6)}


@pytest.mark.parametrize("seed", [0, 1])
def test_genre_match_online_equals_offline(seed):
    events = with_ids(random_events(seed, n=300))
    genres = random_genres(seed)
    rows = sorted(events.to_pylist(), key=lambda r: r["ts"])
    matches = [f for f in BUILTIN if f.entity == "user_title"]
    assert matches
    online = OnlineFeatures(BUILTIN, genres=genres)
    con = duckdb.connect()
    con.register("events", events)
    con.register("titles", pa.table({"item_id": list(genres), "genres": pa.array(list(genres.values()),
                                                                                 pa.list_(pa.string()))}))
    applied = 0
    for at in [T0 - timedelta(days=20), T0 - timedelta(days=3), T0 + timedelta(days=1)]:
        while applied < len(rows) and rows[applied]["ts"] < at:
            online.apply(rows[applied])
            applied += 1
        pairs = [(f"u{u}", f"t{t}") for u in range(7) for t in range(6)]
        spine = pa.table({"user_id": [p[0] for p in pairs], "item_id": [p[1] for p in pairs],
                          "ts": pa.array([at] * len(pairs), pa.timestamp("us"))})
        offline = point_in_time(con, spine, matches).to_pylist()
        for (user, title), expected in zip(pairs, offline):
            got = online.pair_values(user, title, at)
            for f in matches:
                assert got[f.name] == pytest.approx(expected[f.name], abs=1e-12), (at, user, title)
