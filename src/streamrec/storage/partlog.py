"""Append-only logs written as Parquet parts under FOLDER/date=YYYY-MM-DD/: rows buffered in memory, flushed every
`flush_rows` rows or `flush_s` seconds (in the thread that crosses the limit) and on `close()`. A part is written to a
temporary name and renamed, so it is whole or absent, and parts are never rewritten, so several processes can share a
folder. The experiments' exposure log and monitoring's served-lists log are both this."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class PartitionedLog:
    """Thread-safe buffer of rows (dicts by default; subclasses may keep tuples and override `_table`)."""

    def __init__(self, folder: Path | str, schema: pa.Schema, flush_rows: int, flush_s: float):
        self.folder, self.schema = Path(folder), schema
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self._rows: list[Any] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._parts = 0
        self.written = 0

    def _add(self, rows: list[Any]) -> None:
        with self._lock:
            self._rows.extend(rows)
            due = len(self._rows) >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_s
        if due:
            self.flush()

    def _table(self, rows: list[Any]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=self.schema)

    def flush(self) -> int:
        """Write the buffered rows as Parquet parts (one per day of their `ts`); returns how many."""
        with self._lock:
            rows, self._rows = self._rows, []
            self._last_flush = time.monotonic()
            self._parts += 1
            part = self._parts
        if not rows:
            return 0
        table = self._table(rows)
        days = [t.date() for t in table.column("ts").to_pylist()]
        for day in sorted(set(days)):
            folder = self.folder / f"date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".part-{os.getpid()}-{part}.parquet.tmp"
            pq.write_table(table.filter(pa.array([d == day for d in days])), tmp)
            tmp.rename(folder / f"part-{os.getpid()}-{part}-{int(time.time() * 1e6)}.parquet")  # whole or absent
        self.written += len(rows)
        return len(rows)

    def close(self) -> None:
        self.flush()


def read_parts(folder: Path | str, schema: pa.Schema) -> pa.Table:
    """Every row written under `folder` (in part order), or an empty table of `schema`."""
    parts = sorted(Path(folder).glob("date=*/part-*.parquet"))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=schema) for p in parts])
