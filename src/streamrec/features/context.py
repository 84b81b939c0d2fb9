"""Context features online: the request's time and device through the same SQL the offline computation runs
(the declared context attributes), in a small in-memory DuckDB, so the two cannot drift apart.

Context sees the request time to the minute (`context_time`), offline and online alike: then one query per minute
and device answers every request (a query per request cost more than the rest of the feature rows together)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

import duckdb

from streamrec.features.definitions import Attribute, Definition
from streamrec.features.offline import attribute_sql

CACHE = 4096  # distinct (minute, device) pairs kept


class ContextFeatures:
    """`values(at, device)` → {name: value} for the context attributes among `definitions` (thread-safe)."""

    def __init__(self, definitions: Iterable[Definition]):
        self.features = [f for f in definitions if isinstance(f, Attribute) and f.entity == "context"]
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        selects = ", ".join(f'CAST({attribute_sql(f, "c")} AS {f.dtype}) AS "{f.name}"' for f in self.features)
        self._sql = f"SELECT {selects} FROM (SELECT CAST(? AS TIMESTAMP) AS ts, CAST(? AS VARCHAR) AS device) s"
        self._lock = threading.Lock()
        self._cache: dict[tuple[datetime, str | None], dict[str, object]] = {}

    def values(self, at: datetime, device: str | None = None) -> dict[str, object]:
        if not self.features:
            return {}
        key = (context_time(at), device)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                row = self._con.execute(self._sql, list(key)).fetchone()
                cached = dict(zip((f.name for f in self.features), row))
                if len(self._cache) >= CACHE:
                    self._cache.clear()
                self._cache[key] = cached
        return cached


def context_time(at: datetime) -> datetime:
    """The request time as context features see it: to the minute."""
    return at.replace(second=0, microsecond=0)
