"""Every event store backend passes this suite; a subclass only says how to open one."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from streamrec.data.catalog import TITLES_SCHEMA
from streamrec.errors import DataError
from streamrec.settings import DuckDBEventStoreConfig, IngestConfig, SparkEventStoreConfig, load_settings
from streamrec.storage.events import open_event_store
from streamrec.storage.events.duckdb import DuckDBEventStore
from streamrec.storage.events.spark import SparkEventStore
from tests.helpers import event, write_csv

CONFIG = IngestConfig(unknown_titles="accept")


class EventStoreContract:
    """Behaviour every EventStore has. Subclasses provide the `store` fixture."""

    def test_empty_store_counts_zero(self, store):
        counts = store.counts()
        assert counts["events"] == 0 and counts["quarantine"] == 0 and counts["batches"] == 0

    def test_ingest_then_read_round_trips(self, store, tmp_path):
        store.ingest_file(write_csv(tmp_path / "a.csv", [event("e1"), event("e2", user_id="u2")]), CONFIG)
        events = store.read("events")
        assert sorted(events.column("event_id").to_pylist()) == ["e1", "e2"]
        assert events.schema.field("ts").type == pa.timestamp("us")

    def test_report_adds_up(self, store, tmp_path):
        path = write_csv(tmp_path / "a.csv", [event("e1"), event("e1"), event("e2", type="x")])
        report = store.ingest_file(path, CONFIG)
        assert report.read == report.stored + report.duplicates + report.quarantined == 3

    def test_reingesting_a_file_changes_nothing(self, store, tmp_path):
        path = write_csv(tmp_path / "a.csv", [event("e1")])
        store.ingest_file(path, CONFIG)
        before = store.counts()
        assert store.ingest_file(path, CONFIG).skipped
        assert store.counts() == before

    def test_catalog_upsert_replaces_by_key(self, store):
        store.put_catalog({"titles": pa.table({"item_id": ["t1", "t2"], "title": ["Old", "Two"]})})
        store.put_catalog({"titles": pa.table({"item_id": ["t1"], "title": ["New"]})})
        titles = {r["item_id"]: r["title"] for r in store.read("titles").to_pylist()}
        assert titles == {"t1": "New", "t2": "Two"}
        assert store.read("titles").schema.names == TITLES_SCHEMA.names

    def test_unknown_catalog_table_is_rejected(self, store):
        with pytest.raises(DataError, match="unknown table"):
            store.put_catalog({"movies": pa.table({"item_id": ["t1"]})})

    def test_reading_a_missing_table_is_a_clear_error(self, store):
        with pytest.raises(DataError, match="no table 'nope'"):
            store.read("nope")


class TestDuckDBEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path):
        with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "events.duckdb") as store:
            yield store


class TestEventStoreFromSettings(EventStoreContract):
    """The store the settings choose (the default profile) behaves the same."""

    @pytest.fixture
    def store(self, tmp_path: Path):
        with open_event_store(load_settings(data_dir=tmp_path)) as store:
            yield store


class TestSparkEventStore(EventStoreContract):
    """Spark over Parquet (a real local Spark: the session fixture)."""

    @pytest.fixture
    def store(self, tmp_path: Path, spark):
        with SparkEventStore(SparkEventStoreConfig(), tmp_path / "lake") as store:
            yield store


def test_settings_choose_the_spark_store(tmp_path: Path):
    """event_store.type = "spark" opens the Spark store at DATA_DIR/lake (Spark itself starts on the first ingest)."""
    with open_event_store(load_settings(data_dir=tmp_path, event_store={"type": "spark"})) as store:
        assert isinstance(store, SparkEventStore) and store.path == tmp_path / "lake"
        assert store.counts()["events"] == 0
