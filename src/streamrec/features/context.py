"""Context features online: the request's time and device through the same SQL the offline computation runs
(the declared context attributes), in a small in-memory DuckDB, so the two cannot drift apart."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

import duckdb

from streamrec.features.definitions import Attribute, Definition
from streamrec.features.offline import attribute_sql


class ContextFeatures:
    """`values(at, device)` → {name: value} for the context attributes among `definitions` (thread-safe)."""

    def __init__(self, definitions: Iterable[Definition]):
        self.features = [f for f in definitions if isinstance(f, Attribute) and f.entity == "context"]
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        selects = ", ".join(f'CAST({attribute_sql(f, "c")} AS {f.dtype}) AS "{f.name}"' for f in self.features)
        self._sql = f"SELECT {selects} FROM (SELECT CAST(? AS TIMESTAMP) AS ts, CAST(? AS VARCHAR) AS device) s"
        self._lock = threading.Lock()

    def values(self, at: datetime, device: str | None = None) -> dict[str, object]:
        if not self.features:
            return {}
        with self._lock:
            row = self._con.execute(self._sql, [at, device]).fetchone()
        return dict(zip((f.name for f in self.features), row))
