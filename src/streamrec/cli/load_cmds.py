"""`streamrec data load|download`: MovieLens and generic event files into a data set folder."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the load/download verbs to the `data` group."""
