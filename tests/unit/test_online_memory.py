"""What only the memory online store does: its ranked pools are bounded, least recently used evicted first."""

from __future__ import annotations

from streamrec.storage.online import MemoryOnlineStore, RankedPool


def test_ranked_pools_past_the_bound_evict_the_least_recently_used():
    store = MemoryOnlineStore(max_ranked=2)
    pool = RankedPool(("t1",), (1.0,), ("ease",), "s", 0.0)
    store.put_ranked("u1", "k", pool, 60)
    store.put_ranked("u2", "k", pool, 60)
    assert store.get_ranked("u1", "k") == pool  # u1 is now the most recently used
    store.put_ranked("u3", "k", pool, 60)
    assert store.get_ranked("u2", "k") is None
    assert store.get_ranked("u1", "k") == pool and store.get_ranked("u3", "k") == pool
