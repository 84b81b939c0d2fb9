"""A generated synthetic world, ingested and preprocessed into a temporary event store: the set-up the pipeline
benchmarks share."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from streamrec.data.synthetic import WorldConfig, generate_world
from streamrec.events.runner import ingest_paths
from streamrec.preprocess.pipeline import run_preprocess
from streamrec.settings import DuckDBEventStoreConfig, IngestConfig, PreprocessConfig
from streamrec.storage.events.duckdb import DuckDBEventStore


@contextmanager
def world_store(size: str, seed: int) -> Iterator[tuple[object, DuckDBEventStore, pa.Table]]:
    """(the world's generation info, its open store, its interactions table); everything is deleted afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        info = generate_world(WorldConfig.preset(size, seed=seed), world, overwrite=True)
        with DuckDBEventStore(DuckDBEventStoreConfig(), Path(tmp) / "events.duckdb") as store:
            ingest_paths(store, [world], IngestConfig())
            run_preprocess(store.con, PreprocessConfig())
            table = store.con.sql("SELECT user_id, item_id, weight, last_ts FROM interactions").to_arrow_table()
            yield info, store, table
