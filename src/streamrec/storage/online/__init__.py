"""The online store seam: memory (embedded default); Redis arrives with the worker (issue 6)."""

from streamrec.storage.online.base import FeatureRows, HistoryEntry, OnlineStore, RankedPool
from streamrec.storage.online.memory import MemoryOnlineStore

__all__ = ["FeatureRows", "HistoryEntry", "MemoryOnlineStore", "OnlineStore", "RankedPool"]
