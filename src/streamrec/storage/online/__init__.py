"""The online store seam: memory (embedded default) or Redis (shared by serving processes and realtime workers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamrec.storage.online.base import FeatureRows, HistoryEntry, LiveEvent, OnlineStore, RankedPool
from streamrec.storage.online.memory import MemoryOnlineStore

if TYPE_CHECKING:
    from streamrec.settings import OnlineStoreConfig

__all__ = ["FeatureRows", "HistoryEntry", "LiveEvent", "MemoryOnlineStore", "OnlineStore", "RankedPool",
           "open_online_store"]


def open_online_store(config: OnlineStoreConfig) -> OnlineStore:
    """The online store `config` describes (settings.online_store); Redis connects on its first call.

    Args:
        config: a MemoryOnlineStoreConfig or a RedisOnlineStoreConfig.

    Returns:
        the store; close it when done.
    """
    if config.type == "redis":
        from streamrec.storage.online.redis import RedisOnlineStore  # redis-py only loaded when chosen

        return RedisOnlineStore(config)
    return MemoryOnlineStore(history_length=config.history_length, max_ranked=config.max_ranked)
