"""The served-lists log: a sample of the lists serving answered (titles, scores, model, variant, fallback), one row
per response, buffered and written as Parquet parts under FOLDER/date=YYYY-MM-DD/ (never rewritten, so several server
processes can share the folder). `streamrec monitor` reads it back for score drift and popularity concentration."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from streamrec.storage.partlog import PartitionedLog, read_parts

SCHEMA = pa.schema([("ts", pa.timestamp("us")), ("request_id", pa.string()), ("route", pa.string()),
                    ("model_version", pa.string()), ("experiment", pa.string()), ("variant", pa.string()),
                    ("fallback", pa.string()), ("items", pa.list_(pa.string())),
                    ("scores", pa.list_(pa.float64()))])


def served_folder(data_dir: Path | str) -> Path:
    """Where serving writes the log under a data folder."""
    return Path(data_dir) / "monitoring" / "served"


class ServedLog(PartitionedLog):
    """Thread-safe; on the request path one random draw and a tuple append. Flushed every `flush_rows` rows or
    `flush_s` seconds (in the thread of the request that crosses the limit) and on `close()`."""

    def __init__(self, folder: Path | str, sample: float = 1.0, flush_rows: int = 2000, flush_s: float = 10.0,
                 seed: int | None = None):
        super().__init__(folder, SCHEMA, flush_rows, flush_s)
        self.sample = sample
        self._random = random.Random(seed)

    def record(self, ts: datetime, request_id: str | None, route: str, model_version: str | None,
               experiment: str | None, variant: str, fallback: str | None, items: Sequence[str],
               scores: Sequence[float | None]) -> None:
        """One answered list (kept with probability `sample`)."""
        if self.sample <= 0 or (self.sample < 1 and self._random.random() >= self.sample):
            return
        self._add([(ts, request_id, route, model_version, experiment, variant, fallback, list(items), list(scores))])

    def _table(self, rows: list[tuple]) -> pa.Table:
        return pa.table([pa.array(col, type=f.type) for col, f in zip(zip(*rows), SCHEMA)], schema=SCHEMA)


def read_served(folder: Path | str, days: float | None = None) -> pa.Table:
    """Every row written under `folder`, oldest first; with `days`, only those of the last `days` before the newest
    row (serving's clock, which may be a synthetic world's)."""
    table = read_parts(folder, SCHEMA).sort_by("ts")
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
