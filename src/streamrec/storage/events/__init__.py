"""Event store seam: `open_event_store(settings)` picks the backend named by the config."""

from __future__ import annotations

from streamrec.settings import Settings
from streamrec.storage.events.base import EventStore


def open_event_store(settings: Settings, read_only: bool = False) -> EventStore:
    """The configured event store: a DuckDB file by default, or Spark over Parquet (drivers imported when chosen)."""
    config = settings.event_store
    if config.type == "duckdb":
        from streamrec.storage.events.duckdb import DuckDBEventStore

        return DuckDBEventStore(config, settings.event_store_path, read_only=read_only)
    if config.type == "spark":
        from streamrec.storage.events.spark import SparkEventStore  # pyspark itself only loads on the first ingest

        return SparkEventStore(config, settings.event_store_path, settings.spark, read_only=read_only)
    raise AssertionError(f"unhandled event store type {config.type}")  # the config union is exhaustive


__all__ = ["EventStore", "open_event_store"]
