"""The on-disk layout of a data set: what `data generate` and `data load` write and `ingest` reads.

    DIR/dataset.json        name, source, seed, counts, schema version
    DIR/titles.parquet      catalog (streamrec.data.catalog.TITLES_SCHEMA)
    DIR/availability.parquet
    DIR/users.parquet
    DIR/tags.parquet        optional
    DIR/events/part-NNNNN.parquet   canonical events (streamrec.events.schema), in time order
    DIR/truth/              optional ground truth of a synthetic world (numpy arrays + truth.json)

Writes go to a temporary folder that is renamed into place at the end, so a crash never leaves a
half-written data set that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from streamrec.data.catalog import SCHEMAS, conform
from streamrec.errors import DataError, NotFound
from streamrec.events.schema import EVENT_ARROW_SCHEMA, EVENT_COLUMN_NAMES, SCHEMA_VERSION

MANIFEST = "dataset.json"


@dataclass
class DatasetInfo:
    """What dataset.json holds."""

    name: str
    source: str  # "synthetic", "movielens:ml-latest-small", "csv:..."
    counts: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION


def conform_events(table: pa.Table, source: str = "events") -> pa.Table:
    """Cast a table of events to the canonical event schema (extra columns dropped, missing nullable filled)."""
    missing = [c for c in ("event_id", "user_id", "item_id", "type", "ts") if c not in table.column_names]
    if missing:
        raise DataError(source, f"missing required event columns {missing}")
    arrays = []
    for f in EVENT_ARROW_SCHEMA:
        if f.name in table.column_names:
            col = table.column(f.name)
            if pa.types.is_timestamp(col.type) and col.type.tz is not None:
                col = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
            arrays.append(col.cast(f.type))
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=EVENT_ARROW_SCHEMA)


class DatasetWriter:
    """Writes a data set folder atomically: use as a context manager, call the put_* methods, exit to commit."""

    def __init__(self, out: Path | str, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}")
        self._parts = 0
        self._event_rows = 0
        self._part_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "DatasetWriter":
        if self.out.exists() and not self.overwrite:
            raise DataError(str(self.out), "already exists (pass overwrite to replace it)")
        shutil.rmtree(self.tmp, ignore_errors=True)
        (self.tmp / "events").mkdir(parents=True)
        return self

    def put_table(self, name: str, table: pa.Table) -> None:
        """Write one of titles / availability / users / tags, conformed to its schema."""
        table = conform(table, name, source=name)
        pq.write_table(table, self.tmp / f"{name}.parquet", compression="zstd")
        self.counts[name] = table.num_rows

    def put_events(self, batches: Iterable[pa.Table], rows_per_part: int = 2_000_000) -> None:
        """Append event batches (any order of calls) as Parquet parts of about `rows_per_part` rows."""
        for batch in batches:
            batch = conform_events(batch)
            if self._writer is None or self._part_rows >= rows_per_part:
                self._close_part()
                path = self.tmp / "events" / f"part-{self._parts:05d}.parquet"
                # event_id is unique: dictionary-encoding it only costs time.
                dictionary = [n for n in EVENT_ARROW_SCHEMA.names if n != "event_id"]
                self._writer = pq.ParquetWriter(path, EVENT_ARROW_SCHEMA, compression="zstd",
                                                use_dictionary=dictionary)
                self._parts += 1
                self._part_rows = 0
            self._writer.write_table(batch)
            self._part_rows += batch.num_rows
            self._event_rows += batch.num_rows

    def truth_dir(self) -> Path:
        """A folder for ground-truth files of a synthetic world."""
        path = self.tmp / "truth"
        path.mkdir(exist_ok=True)
        return path

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self, info: DatasetInfo) -> Path:
        self._close_part()
        info.counts = {**self.counts, "events": self._event_rows, **info.counts}
        (self.tmp / MANIFEST).write_text(json.dumps(info.__dict__, indent=2, default=str))
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        return self.out

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close_part()
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp.exists():
            raise DataError(str(self.out), "DatasetWriter exited without commit()")


@dataclass
class Dataset:
    """A data set folder opened for reading."""

    root: Path
    info: DatasetInfo

    @classmethod
    def open(cls, root: Path | str) -> "Dataset":
        root = Path(root)
        manifest = root / MANIFEST
        if not manifest.is_file():
            raise NotFound("data set", str(root), f"no {MANIFEST} there (make one with `streamrec data generate`)")
        raw = json.loads(manifest.read_text())
        return cls(root, DatasetInfo(**raw))

    @staticmethod
    def is_dataset(path: Path | str) -> bool:
        return (Path(path) / MANIFEST).is_file()

    def table(self, name: str) -> pa.Table:
        """titles / availability / users / tags (an empty table of the right schema when absent)."""
        path = self.root / f"{name}.parquet"
        if not path.exists():
            return SCHEMAS[name].empty_table()
        return pq.read_table(path)

    @property
    def event_files(self) -> list[Path]:
        return sorted((self.root / "events").glob("*.parquet"))

    def events(self) -> pa.Table:
        files = self.event_files
        if not files:
            return EVENT_ARROW_SCHEMA.empty_table()
        return pa.concat_tables(pq.read_table(f, columns=list(EVENT_COLUMN_NAMES)) for f in files)

    @property
    def truth_dir(self) -> Path:
        return self.root / "truth"
