"""Event store seam: `open_event_store(settings)` picks the backend named by the config."""

from __future__ import annotations

from streamrec.settings import Settings
from streamrec.storage.events.base import EventStore


def open_event_store(settings: Settings, read_only: bool = False) -> EventStore:
    """The configured event store (DuckDB file by default; the driver is imported only when chosen)."""
    config = settings.event_store
    if config.type == "duckdb":
        from streamrec.storage.events.duckdb import DuckDBEventStore

        return DuckDBEventStore(config, settings.event_store_path, read_only=read_only)
    raise AssertionError(f"unhandled event store type {config.type}")  # the config union is exhaustive


__all__ = ["EventStore", "open_event_store"]
