"""Ingest many paths: data set folders (catalog first, then their event files), folders of files, or files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from streamrec.data.dataset import Dataset
from streamrec.errors import NotFound
from streamrec.events.report import IngestSummary
from streamrec.events.staging import _SUFFIXES
from streamrec.settings import IngestConfig
from streamrec.storage.events.base import EventStore


def expand_paths(paths: Sequence[Path | str]) -> tuple[list[Dataset], list[Path]]:
    """Split the arguments into data set folders and event files (a plain folder gives its event files)."""
    datasets, files = [], []
    for raw in paths:
        path = Path(raw)
        if Dataset.is_dataset(path):
            dataset = Dataset.open(path)
            datasets.append(dataset)
            files.extend(dataset.event_files)
        elif path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and _is_event_file(p)))
        elif path.is_file():
            files.append(path)
        else:
            raise NotFound("file or folder", str(path))
    return datasets, files


def _is_event_file(path: Path) -> bool:
    suffixes = [s for s in path.suffixes if s not in (".gz", ".zst")]
    return bool(suffixes) and suffixes[-1].lower() in _SUFFIXES


def ingest_paths(
    store: EventStore,
    paths: Sequence[Path | str],
    config: IngestConfig,
    fmt: str | None = None,
    quality: Callable | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> IngestSummary:
    """Ingest every path; each file is its own atomic batch. Catalogs of data sets are upserted first."""
    datasets, files = expand_paths(paths)
    summary = IngestSummary()
    for dataset in datasets:
        tables = {name: dataset.table(name) for name in ("titles", "availability", "users", "tags")}
        for name, n in store.put_catalog({k: v for k, v in tables.items() if v.num_rows}).items():
            summary.catalog[name] = summary.catalog.get(name, 0) + n
    for i, path in enumerate(files):
        summary.batches.append(store.ingest_file(path, config, fmt=fmt, quality=quality))
        if on_progress:
            on_progress(i + 1, len(files))
    return summary
