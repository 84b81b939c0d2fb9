"""The Redis online store beyond the shared contract: its keys, its errors, Redis TTLs, concurrent workers,
restarts. Every test runs against a real redis-server (tests/conftest.py)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import numpy as np
import pytest
import redis
from tests.redis_helpers import free_port

from streamrec.errors import BackendError, ConfigError
from streamrec.settings import MemoryOnlineStoreConfig, RedisOnlineStoreConfig, load_settings
from streamrec.storage.online import HistoryEntry, LiveEvent, MemoryOnlineStore, RankedPool, open_online_store
from streamrec.storage.online.redis import RedisOnlineStore, redacted_url

T0 = datetime(2026, 3, 1, 12, 0)
POOL = RankedPool(("t1", "t2"), (0.5, 0.25), ("ease", "als"), "s", 0.0)


def _store(url: str, **config) -> RedisOnlineStore:
    return RedisOnlineStore(RedisOnlineStoreConfig(url=url, **config))


def _live(event_id: str, user: str, item: str, minutes: int) -> LiveEvent:
    return LiveEvent(event_id, user, HistoryEntry(item, T0 + timedelta(minutes=minutes), "play"))


def _fill(store: RedisOnlineStore) -> None:
    store.put_features("title", ["a"], ["t1"], np.ones((1, 1), np.float32), T0)
    store.add_history("u1", [HistoryEntry("t1", T0, "play")])
    store.record([_live("e1", "u2", "t2", 1)])
    store.hide("u1", "t3")
    store.put_ranked("u1", "k", POOL, ttl_s=60)


def test_every_key_carries_the_namespace_and_namespaces_do_not_see_each_other(redis_url):
    a, b = _store(redis_url, namespace="svc-a"), _store(redis_url, namespace="svc-b")
    _fill(a)
    with redis.Redis.from_url(redis_url) as raw:
        keys = sorted(k.decode() for k in raw.keys("*"))
    assert keys == a.keys() and len(keys) >= 6
    assert all(k.startswith("svc-a:") for k in keys)
    assert not b.get_features("title", ["t1"]).found.any() and b.history("u1") == [] and b.hidden("u1") == set()
    assert b.get_ranked("u1", "k") is None and b.title_counts([T0.date()]) == {}
    assert b.record([_live("e1", "u2", "t2", 1)]) == 1  # its own seen markers
    a.close(), b.close()


def test_an_unreachable_server_is_a_backend_error_naming_the_url_without_password_and_the_operation():
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    store = _store(url, socket_timeout_s=1.0)
    with pytest.raises(BackendError, match=r"127\.0\.0\.1.*get_features\('title', 500 keys\)") as caught:
        store.get_features("title", [f"t{i}" for i in range(500)])
    assert "s3cret" not in str(caught.value) and ":***@" in str(caught.value)
    with pytest.raises(BackendError, match=r"record\(1 events\)"):
        store.record([_live("e1", "u1", "t1", 0)])
    with pytest.raises(BackendError, match=r"history\('u1'\)"):
        store.history("u1")
    store.close()


def test_a_wrong_database_in_the_url_is_a_backend_error(redis_server):
    store = _store(redis_server.url.rsplit("/", 1)[0] + "/999")
    with pytest.raises(BackendError, match=r"put_ranked\('u1', 'k'\).*(DB index|out of range)"):
        store.put_ranked("u1", "k", POOL, ttl_s=60)
    store.close()


def test_redacted_url_keeps_user_host_port_and_database():
    assert redacted_url("redis://bob:pw@cache.internal:6380/2") == "redis://bob:***@cache.internal:6380/2"
    assert redacted_url("rediss://:pw@[::1]:6379/0") == "rediss://:***@[::1]:6379/0"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_pool_expires_by_its_redis_ttl(redis_url):
    store = _store(redis_url, namespace="ns")
    store.put_ranked("u1", "k", POOL, ttl_s=30)
    with redis.Redis.from_url(redis_url) as raw:
        assert 29_000 < raw.pttl("ns:ranked:u1:k") <= 30_000
        store.put_ranked("u1", "k", POOL, ttl_s=0.05)
        time.sleep(0.2)
        assert raw.exists("ns:ranked:u1:k") == 0  # gone from Redis itself, not only filtered on read
    assert store.get_ranked("u1", "k") is None
    store.close()


def test_histories_day_counts_and_seen_markers_carry_their_ttls(redis_url):
    store = _store(redis_url, namespace="ns", history_ttl_s=600, seen_ttl_s=300, title_counts_ttl_s=900)
    store.record([_live("e1", "u1", "t1", 0)])
    store.add_history("u2", [HistoryEntry("t1", T0, "play")])
    with redis.Redis.from_url(redis_url) as raw:
        assert 590 < raw.ttl("ns:hist:u1") <= 600 and 590 < raw.ttl("ns:hist:u2") <= 600
        assert 290 < raw.ttl("ns:seen:e1") <= 300
        assert 890 < raw.ttl(f"ns:day:{T0.date().isoformat()}") <= 900
    kept = _store(redis_url, namespace="kept")
    kept.add_history("u1", [HistoryEntry("t1", T0, "play")])
    with redis.Redis.from_url(redis_url) as raw:
        assert raw.ttl("kept:hist:u1") == -1  # no history_ttl_s: kept
    store.close(), kept.close()


def _race(workers: list[RedisOnlineStore], jobs: list[list[list[LiveEvent]]]) -> list[int]:
    """Each worker records its list of batches in its own thread, all starting at once; how many each found new."""
    start, new = threading.Barrier(len(workers)), [0] * len(workers)

    def run(i: int) -> None:
        start.wait()
        for batch in jobs[i]:
            new[i] += workers[i].record(batch)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return new


def test_record_is_exactly_once_when_two_workers_record_the_same_batch_at_once(redis_url):
    events = [_live(f"e{i}", f"u{i % 7}", f"t{i % 11}", i % 500) for i in range(6_000)]
    first, second = events[:3_000], events[3_000:]
    workers = [_store(redis_url, history_length=10_000) for _ in range(2)]
    assert sum(_race(workers, [[first], [first]])) == len(first)  # one batch each, the same one
    slices = [second[i:i + 100] for i in range(0, len(second), 100)]
    new = _race(workers, [slices, slices[::-1]])  # from both ends: they meet, and overlap, in the middle
    assert sum(new) == len(second) and min(new) > 0
    expected = MemoryOnlineStore(history_length=10_000)
    assert expected.record(events) == len(events)
    for user in (f"u{i}" for i in range(7)):
        assert workers[0].history(user) == expected.history(user)
    assert workers[1].title_counts([T0.date()]) == expected.title_counts([T0.date()])
    assert sum(workers[1].title_counts([T0.date()]).values()) == len(events)
    for w in workers:
        w.close()


def test_a_feature_read_is_one_command_and_a_new_schema_leaves_no_old_vector(redis_url):
    store = _store(redis_url, namespace="ns")
    keys = [f"t{i}" for i in range(500)]
    store.put_features("title", ["a", "b"], keys, np.arange(1000, dtype=np.float32).reshape(500, 2), T0)
    with redis.Redis.from_url(redis_url) as raw:
        raw.config_resetstat()
        rows = store.get_features("title", keys)
        calls = {k: v["calls"] for k, v in raw.info("commandstats").items() 
                 if k not in ("cmdstat_info", "cmdstat_config|resetstat")}
        assert calls == {"cmdstat_hmget": 1}
        np.testing.assert_array_equal(rows.values[499], [998, 999])
        store.put_features("title", ["c"], ["t1"], np.ones((1, 1), np.float32), T0)
        assert raw.hlen("ns:feat:title") == 2  # the schema and t1's vector: the 500 old ones went with it
    assert store.get_features("title", keys).found.sum() == 1
    store.close()


def test_a_restarted_server_loses_the_scripts_and_the_store_loads_them_again(own_redis):
    store = _store(own_redis.url, socket_timeout_s=2.0)
    assert store.record([_live("e1", "u1", "t1", 1)]) == 1
    own_redis.stop()
    with pytest.raises(BackendError, match="record"):
        store.record([_live("e2", "u1", "t2", 2)])
    own_redis.start()  # persistent: data kept, Lua scripts gone (NOSCRIPT)
    assert store.record([_live("e1", "u1", "t1", 1), _live("e2", "u1", "t2", 2)]) == 1
    store.put_features("user", ["x"], ["u1"], np.ones((1, 1), np.float32), T0)
    assert [e.item_id for e in store.history("u1")] == ["t1", "t2"]
    store.close()


def test_settings_choose_the_backend_and_reject_unknown_keys(redis_url, tmp_path):
    assert isinstance(load_settings(config=None).online_store, MemoryOnlineStoreConfig)
    settings = load_settings(online_store={"type": "redis", "url": redis_url, "namespace": "x", "history_ttl_s": 60})
    assert isinstance(settings.online_store, RedisOnlineStoreConfig) and settings.online_store.seen_ttl_s == 7 * 86_400
    store = open_online_store(settings.online_store)
    assert isinstance(store, RedisOnlineStore) and store.history("nobody") == []
    store.close()
    memory = open_online_store(load_settings(online_store={"history_length": 5}).online_store)
    assert isinstance(memory, MemoryOnlineStore) and memory.history_length == 5
    with pytest.raises(ConfigError, match="online_store"):
        load_settings(online_store={"type": "redis", "ttl": 5})
    with pytest.raises(ConfigError, match="namespace"):
        load_settings(online_store={"type": "redis", "namespace": "a b*"})
