"""Validation of a batch of events given as objects (the events API), with exactly the rules and code path of file
ingestion: the batch is staged as JSONL and checked by `ingest._check` against the same catalog tables.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from streamrec.events.ingest import _check
from streamrec.events.rules import TYPED
from streamrec.events.schema import EVENT_COLUMN_NAMES
from streamrec.events.staging import stage_file
from streamrec.settings import IngestConfig


@dataclass(frozen=True)
class Rejection:
    """One invalid event: its position in the batch (0-based), the field and the reason code, and a detail."""

    index: int
    field: str
    reason: str
    detail: str


@dataclass
class CheckedBatch:
    valid: list[dict[str, Any]] = field(default_factory=list)  # canonical, typed events, batch order
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: int = 0  # repeats of an event_id within the batch (the first valid one is kept)


class BatchValidator:
    """Checks event batches against the ingestion rules and the catalog (titles, users) it was given.

    Thread-safe: each batch runs on its own cursor of one in-memory database holding the catalog's ids.
    """

    def __init__(self, config: IngestConfig, titles: pa.Table | None = None, users: pa.Table | None = None):
        self.config = config
        self._con = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        for name, key, table in (("titles", "item_id", titles), ("users", "user_id", users)):
            ids = table.select([key]) if table is not None and key in table.column_names else \
                pa.table({key: pa.array([], pa.string())})
            self._con.register("src_ids", ids)
            self._con.execute(f"CREATE TABLE {name} AS SELECT CAST({key} AS VARCHAR) AS {key} FROM src_ids")
            self._con.unregister("src_ids")

    def check(self, events: Sequence[Mapping[str, Any]]) -> CheckedBatch:
        """Validate `events` (JSON objects) as ingestion validates a file of them."""
        out = CheckedBatch()
        if not events:
            return out
        with self._lock:
            con = self._con.cursor()
        try:
            with tempfile.TemporaryDirectory(prefix="streamrec-events-") as tmp:
                path = Path(tmp) / "batch.jsonl"
                path.write_text("".join(json.dumps(e, default=str) + "\n" for e in events))
                staged = stage_file(con, path, "jsonl", self.config.csv_delimiter)
                try:
                    _check(con, staged, self.config)
                    typed = ", ".join(f'"{TYPED}{c}" AS "{c}"' for c in EVENT_COLUMN_NAMES)
                    rows = con.execute(f"SELECT {typed}, {staged.idx_sql} AS __idx FROM checked_b "
                                       "WHERE __reason IS NULL ORDER BY __idx").fetchall()
                    bad = con.execute(f"SELECT __row, field, code, detail FROM {staged.rejected} "
                                      "ORDER BY __row").fetchall()
                finally:
                    staged.drop(con)
        finally:
            con.close()
        seen: set[str] = set()
        for row in rows:
            event = dict(zip(EVENT_COLUMN_NAMES, row[:-1]))
            if event["event_id"] in seen:
                out.duplicates += 1
                continue
            seen.add(event["event_id"])
            out.valid.append(event)
        out.rejected = [Rejection(int(line) - 1, str(fld), str(code), str(detail)) for line, fld, code, detail in bad]
        return out

    def close(self) -> None:
        self._con.close()
