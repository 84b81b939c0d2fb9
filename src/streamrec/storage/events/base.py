"""The event store seam: where validated events, their quarantine and the catalog are kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from streamrec.events.report import BatchReport
from streamrec.settings import IngestConfig


class EventStore(Protocol):
    """Append-only, exactly-once event storage. Every backend passes tests/contract/test_event_store.py."""

    def ingest_file(self, path: Path, config: IngestConfig, fmt: str | None = None,
                    quality: Callable | None = None) -> BatchReport:
        """Validate one file and store it as one atomic batch (a no-op if the same file was stored before).
        `quality(con, relation) -> dict` summarises the stored batch when given."""
        ...

    def put_catalog(self, tables: Mapping[str, pa.Table]) -> dict[str, int]:
        """Upsert titles / availability / users / tags by key; returns rows written per table."""
        ...

    def read(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """A whole table (events, quarantine, batches, titles, availability, users, tags) as Arrow."""
        ...

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        ...

    def export_parquet(self, out: Path) -> Path:
        """Write the events as Parquet partitioned by date (for Spark and other engines)."""
        ...

    def close(self) -> None: ...
