"""Shared fixtures. Tests never read ../shared: they make their own data."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_world_store(tmp_path_factory) -> Path:
    """A tiny synthetic world (200 users, 300 titles, 14 days), ingested and preprocessed into a DuckDB store.
    Tests open it read-only or copy it; they must not change it."""
    from streamrec.data.synthetic import WorldConfig, generate_world
    from streamrec.events.runner import ingest_paths
    from streamrec.preprocess.pipeline import run_preprocess
    from streamrec.settings import DuckDBEventStoreConfig, IngestConfig, PreprocessConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    root = tmp_path_factory.mktemp("tiny_world")
    generate_world(WorldConfig.preset("tiny", seed=5), root / "world")
    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb") as store:
        ingest_paths(store, [root / "world"], IngestConfig())
        run_preprocess(store.con, PreprocessConfig())
    return root / "events.duckdb"
