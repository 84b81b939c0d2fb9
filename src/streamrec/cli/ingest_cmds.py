"""`streamrec ingest`: validated, deduplicated, crash-safe ingestion into the event store."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ingest verbs to the root app."""
