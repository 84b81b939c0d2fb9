"""Live events into the event store: each accepted batch is written as one Parquet part (canonical columns, the event
schema) under DATA_DIR/incoming/live/date=YYYY-MM-DD/ before the batch counts as handled — before POST /v1/events
answers on the in-process bus, before the worker acknowledges on Redis Streams. `streamrec ingest
DATA_DIR/incoming/live` stores them as any file (validated, deduplicated by event_id, a file's checksum makes
re-ingesting it a no-op), so an event delivered twice is stored once and a crash loses none that was accepted."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from streamrec.events.schema import EVENT_ARROW_SCHEMA, EVENT_COLUMN_NAMES


class EventLanding:
    """A bus handler writing each batch as one Parquet part, whole or absent (written aside, then renamed)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.written = 0
        self._parts = 0
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not events:
            return
        rows = [{c: _plain(e.get(c), c) for c in EVENT_COLUMN_NAMES} for e in events]
        table = pa.Table.from_pylist(rows, schema=EVENT_ARROW_SCHEMA)
        day = min(r["ts"] for r in rows).date()
        with self._lock:
            self._parts += 1
            part = self._parts
        folder = self.folder / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{os.getpid()}-{part}-{time.time_ns()}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)
        with self._lock:
            self.written += len(rows)


def _plain(value: Any, column: str) -> Any:
    if column == "ts" and isinstance(value, str):  # as JSON carried it
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
