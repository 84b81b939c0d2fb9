"""The served-lists log: a sample of the lists serving answered (titles, scores, model, variant, fallback), one row
per response, buffered and written as Parquet parts under FOLDER/date=YYYY-MM-DD/ (never rewritten, so several server
processes can share the folder). `streamrec monitor` reads it back for score drift and popularity concentration."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SCHEMA = pa.schema([("ts", pa.timestamp("us")), ("request_id", pa.string()), ("route", pa.string()),
                    ("model_version", pa.string()), ("experiment", pa.string()), ("variant", pa.string()),
                    ("fallback", pa.string()), ("items", pa.list_(pa.string())),
                    ("scores", pa.list_(pa.float64()))])


def served_folder(data_dir: Path | str) -> Path:
    """Where serving writes the log under a data folder."""
    return Path(data_dir) / "monitoring" / "served"


class ServedLog:
    """Thread-safe; on the request path one random draw and a tuple append. Flushed every `flush_rows` rows or
    `flush_s` seconds (in the thread of the request that crosses the limit) and on `close()`."""

    def __init__(self, folder: Path | str, sample: float = 1.0, flush_rows: int = 2000, flush_s: float = 10.0,
                 seed: int | None = None):
        self.folder, self.sample = Path(folder), sample
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self._rows: list[tuple] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._last_flush = time.monotonic()
        self._parts = 0
        self.written = 0

    def record(self, ts: datetime, request_id: str | None, route: str, model_version: str | None,
               experiment: str | None, variant: str, fallback: str | None, items: Sequence[str],
               scores: Sequence[float | None]) -> None:
        """One answered list (kept with probability `sample`)."""
        if self.sample <= 0 or (self.sample < 1 and self._random.random() >= self.sample):
            return
        row = (ts, request_id, route, model_version, experiment, variant, fallback, list(items), list(scores))
        with self._lock:
            self._rows.append(row)
            due = len(self._rows) >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_s
        if due:
            self.flush()

    def flush(self) -> int:
        """Write the buffered rows (one part per day); returns how many."""
        with self._lock:
            rows, self._rows = self._rows, []
            self._last_flush = time.monotonic()
            self._parts += 1
            part = self._parts
        if not rows:
            return 0
        columns = list(zip(*rows))
        table = pa.table([pa.array(col, type=f.type) for col, f in zip(columns, SCHEMA)], schema=SCHEMA)
        days = [t.date() for t in columns[0]]
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


def read_served(folder: Path | str, days: float | None = None) -> pa.Table:
    """Every row written under `folder`, oldest first; with `days`, only those of the last `days` before the newest
    row (serving's clock, which may be a synthetic world's)."""
    parts = sorted(Path(folder).glob("date=*/part-*.parquet"))
    if not parts:
        return SCHEMA.empty_table()
    table = pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts]).sort_by("ts")
    if days is not None and table.num_rows:
        newest = table["ts"][-1].as_py()
        table = table.filter(pc.greater_equal(table["ts"], pa.scalar(newest - timedelta(days=days),
                                                                       pa.timestamp("us"))))
    return table


def latest_served_version(served: pa.Table) -> str | None:
    """The model version that answered most of the ranked (not fallback) lists in `served`, or None when none did:
    the version whose training-time reference the served scores are compared with."""
    from collections import Counter

    scored = [v for v, fb in zip(served["model_version"].to_pylist(), served["fallback"].to_pylist()) if fb is None]
    return Counter(scored).most_common(1)[0][0] if scored else None
