"""The online store contract: every backend behaves as the memory default does."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from streamrec.errors import DataError
from streamrec.settings import RedisOnlineStoreConfig
from streamrec.storage.online import HistoryEntry, LiveEvent, MemoryOnlineStore, OnlineStore, RankedPool

T0 = datetime(2026, 3, 1, 12, 0)


def _redis(request: pytest.FixtureRequest) -> OnlineStore:
    from streamrec.storage.online.redis import RedisOnlineStore

    return RedisOnlineStore(RedisOnlineStoreConfig(url=request.getfixturevalue("redis_url"), history_length=3))


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], OnlineStore]] = {
    "memory": lambda request: MemoryOnlineStore(history_length=3),
    "redis": _redis,  # a real redis-server (tests/conftest.py), its database emptied per test
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request):
    s = BACKENDS[request.param](request)
    yield s
    s.close()


def test_feature_vectors_round_trip_in_key_order_with_unknown_keys_as_nan(store):
    store.put_features("title", ["a", "b"], ["t1", "t2"], np.array([[1, 2], [3, 4]], np.float32), T0)
    rows = store.get_features("title", ["t2", "ghost", "t1"])
    assert rows.names == ("a", "b")
    np.testing.assert_array_equal(rows.values[[0, 2]], [[3, 4], [1, 2]])
    assert np.isnan(rows.values[1]).all()
    assert rows.found.tolist() == [True, False, True]
    assert rows.as_of[0] == rows.as_of[2] == T0.replace(tzinfo=UTC).timestamp()  # naive times are UTC


def test_an_update_replaces_one_key_and_keeps_the_others(store):
    store.put_features("user", ["x"], ["u1", "u2"], np.array([[1], [2]], np.float32), T0)
    store.put_features("user", ["x"], ["u2"], np.array([[5]], np.float32), T0 + timedelta(hours=1))
    rows = store.get_features("user", ["u1", "u2"])
    assert rows.values[:, 0].tolist() == [1, 5]
    assert rows.as_of[1] - rows.as_of[0] == pytest.approx(3600)


def test_a_new_schema_replaces_the_old_vectors(store):
    store.put_features("user", ["x"], ["u1"], np.array([[1]], np.float32), T0)
    store.put_features("user", ["x", "y"], ["u2"], np.array([[1, 2]], np.float32), T0)
    rows = store.get_features("user", ["u1", "u2"])
    assert rows.names == ("x", "y") and rows.found.tolist() == [False, True]


def test_unknown_entity_and_bad_shapes(store):
    rows = store.get_features("title", ["t1"])
    assert rows.names == () and not rows.found.any()
    with pytest.raises(DataError, match="values"):
        store.put_features("title", ["a"], ["t1", "t2"], np.zeros((1, 1)), T0)


def test_history_is_kept_oldest_first_trimmed_to_its_length_even_with_late_events(store):
    entries = [HistoryEntry(f"t{i}", T0 + timedelta(minutes=i), "play") for i in (3, 1, 2)]
    store.add_history("u1", entries)
    store.add_history("u1", [HistoryEntry("t0", T0, "play")])  # late: older than everything kept
    store.add_history("u1", [HistoryEntry("t4", T0 + timedelta(minutes=4), "complete", 1.0)])
    assert [e.item_id for e in store.history("u1")] == ["t2", "t3", "t4"]
    assert store.history("nobody") == []


def test_hidden_titles(store):
    store.hide("u1", "t9")
    store.hide("u1", "t9")
    assert store.hidden("u1") == frozenset({"t9"}) and store.hidden("u2") == frozenset()


def _pool(stamp: str = "s1") -> RankedPool:
    return RankedPool(("t2", "t1"), (0.9, 0.5), ("ease", "als"), stamp, T0.replace(tzinfo=UTC).timestamp())


def test_ranked_pools_round_trip_per_user_and_key_and_are_replaced(store):
    store.put_ranked("u1", "v1|EU|tv", _pool(), ttl_s=60)
    got = store.get_ranked("u1", "v1|EU|tv")
    assert got == _pool() and got.fallback is None
    assert store.get_ranked("u1", "v2|EU|tv") is None and store.get_ranked("u2", "v1|EU|tv") is None
    store.put_ranked("u1", "v1|EU|tv", _pool("s2"), ttl_s=60)
    assert store.get_ranked("u1", "v1|EU|tv").stamp == "s2"


def test_ranked_pools_expire(store):
    store.put_ranked("u1", "k", _pool(), ttl_s=0.05)
    assert store.get_ranked("u1", "k") is not None
    time.sleep(0.2)
    assert store.get_ranked("u1", "k") is None


def _live(event_id: str, user: str, item: str, minutes: int, kind: str = "play") -> LiveEvent:
    return LiveEvent(event_id, user, HistoryEntry(item, T0 + timedelta(minutes=minutes), kind))


def test_recording_live_events_is_idempotent_by_event_id(store):
    batch = [_live("e1", "u1", "t1", 1), _live("e2", "u1", "t2", 2), _live("e3", "u2", "t1", 3, "complete")]
    assert store.record(batch) == 3
    assert store.record(batch) == 0  # a replay changes nothing
    assert store.record([_live("e2", "u1", "t2", 2), _live("e4", "u1", "t3", 0)]) == 1
    assert [e.item_id for e in store.history("u1")] == ["t3", "t1", "t2"]  # the late one in its place
    assert [e.type for e in store.history("u2")] == ["complete"]


def test_recorded_events_count_per_title_and_day(store):
    day = T0.date()
    store.record([_live("e1", "u1", "t1", 1), _live("e2", "u2", "t1", 2), _live("e3", "u2", "t2", 3),
                  _live("e4", "u3", "t1", 60 * 24)])  # the next day
    assert dict(store.title_counts([day])) == {"t1": 2.0, "t2": 1.0}
    assert dict(store.title_counts([day, day + timedelta(days=1)])) == {"t1": 3.0, "t2": 1.0}
    assert dict(store.title_counts([day - timedelta(days=1)])) == {}


def test_history_entries_round_trip_exactly_and_equal_times_keep_their_arrival_order(store):
    aware = datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=UTC)
    naive = [HistoryEntry("t1", T0, "progress", 0.25), HistoryEntry("t2", T0, "play"),
             HistoryEntry("t3", T0 + timedelta(microseconds=1), "rating")]
    store.add_history("u1", naive)
    store.add_history("u2", [HistoryEntry("t3", aware, "complete", 1.0)])
    assert store.history("u1") == naive and store.history("u1")[0].ts.tzinfo is None
    assert store.history("u2") == [HistoryEntry("t3", aware, "complete", 1.0)]
    assert store.history("u2")[0].ts.utcoffset() == timedelta(0)


def test_a_fallback_pool_round_trips_and_a_zero_ttl_keeps_nothing(store):
    pool = RankedPool(("t1",), (1.0,), ("popularity",), "", 0.0, fallback="popular")
    store.put_ranked("u:1", "k", pool, ttl_s=60)
    assert store.get_ranked("u:1", "k") == pool and store.get_ranked("u", "1:k") is None
    store.put_ranked("u:1", "k", pool, ttl_s=0)
    assert store.get_ranked("u:1", "k") is None


def test_adding_the_same_history_again_changes_nothing(store):
    entries = [HistoryEntry("t1", T0, "play"), HistoryEntry("t2", T0 + timedelta(minutes=1), "complete", 1.0)]
    store.add_history("u1", entries)
    store.add_history("u1", entries)  # a second server start fills the shared store again
    store.add_history("u1", [HistoryEntry("t2", T0 + timedelta(minutes=1), "play")])  # same time, another event
    assert [(e.item_id, e.type) for e in store.history("u1")] == [("t1", "play"), ("t2", "complete"), ("t2", "play")]


def test_a_ranked_pool_keeps_its_diversity_order(store):
    pool = RankedPool(("a", "b", "c"), (3.0, 2.0, 1.0), ("ease",) * 3, "s", 0.0, None, (0, 2, 1))
    store.put_ranked("u1", "k", pool, ttl_s=60)
    assert store.get_ranked("u1", "k").picks == (0, 2, 1)
