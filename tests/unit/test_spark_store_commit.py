"""The Spark event store's commit protocol and the SQL dialect bridge, without starting Spark: a batch counts only
once its commit record exists, a dead writer's leftovers are never read and are removed, one writer at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamrec.engines.spark.dialect import to_spark
from streamrec.errors import BackendError, ConfigError, DataError
from streamrec.settings import SparkEventStoreConfig
from streamrec.storage.events.spark import EVENTS_SCHEMA, SparkEventStore


def _events(ids: list[str], batch_id: int) -> pa.Table:
    n = len(ids)
    columns = {f.name: pa.nulls(n, f.type) for f in EVENTS_SCHEMA}
    columns.update(event_id=pa.array(ids, pa.string()), user_id=pa.array(["u1"] * n), item_id=pa.array(["t1"] * n),
                   type=pa.array(["play"] * n), ts=pa.array([0] * n, pa.timestamp("us")),
                   schema_version=pa.array([1] * n, pa.int16()), batch_id=pa.array([batch_id] * n, pa.int64()))
    return pa.table(columns)


def _commit(root: Path, batch_id: int, ids: list[str]) -> None:
    """A batch as a writer leaves it: its file in place and, last, its commit record."""
    rel = f"events/date=2024-03-01/b{batch_id:06d}-part-0.parquet"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_events(ids, batch_id), root / rel)
    record = {"batch_id": batch_id, "source": "f.csv", "sha256": f"sha{batch_id}", "bytes": 1, "read": len(ids),
              "stored": len(ids), "duplicates": 0, "quarantined": 0, "finished_at": "2024-03-01T00:00:00",
              "report": {}, "files": {"events": [rel], "quarantine": []}}
    (root / "batches" / f"b{batch_id:06d}.json").write_text(json.dumps(record))


def test_only_committed_batches_are_read_and_a_dead_writers_files_go(tmp_path):
    root = tmp_path / "lake"
    SparkEventStore(SparkEventStoreConfig(), root).close()
    _commit(root, 1, ["e1", "e2"])
    orphan = root / "events" / "date=2024-03-02" / "b000002-part-0.parquet"  # moved into place, never committed
    orphan.parent.mkdir(parents=True)
    pq.write_table(_events(["e3"], 2), orphan)
    (root / "_tmp" / "b000002").mkdir(parents=True)
    with SparkEventStore(SparkEventStoreConfig(), root, read_only=True) as reader:
        assert reader.counts()["events"] == 2 and sorted(reader.read("events").column("event_id").to_pylist()) == [
            "e1", "e2"]
        assert orphan.exists()  # a reader removes nothing
    with SparkEventStore(SparkEventStoreConfig(), root) as writer:
        assert not orphan.exists() and not (root / "_tmp").exists()
        assert writer.counts()["events"] == 2 and writer.read("batches").column("batch_id").to_pylist() == [1]


def test_derived_tables_are_read_from_the_recorded_version_and_a_dead_writers_version_goes(tmp_path):
    root = tmp_path / "lake"
    SparkEventStore(SparkEventStoreConfig(), root).close()
    with pytest.raises(DataError, match="no table 'interactions'"):
        SparkEventStore(SparkEventStoreConfig(), root, read_only=True).read("interactions")
    for version, users in ((1, ["u1", "u2"]), (2, ["u9"])):  # version 2 written, its record never was
        part = root / "derived" / f"v{version:06d}" / "interactions" / "part-00000.parquet"
        part.parent.mkdir(parents=True)
        pq.write_table(pa.table({"user_id": users, "weight": [1.0] * len(users)}), part)
    record = {"version": 1, "tables": {"interactions": {
        "files": ["derived/v000001/interactions/part-00000.parquet"], "rows": 2}}}
    (root / "derived" / "current.json").write_text(json.dumps(record))
    with SparkEventStore(SparkEventStoreConfig(), root, read_only=True) as reader:
        assert reader.read("interactions", ["user_id"]).column(0).to_pylist() == ["u1", "u2"]
    with SparkEventStore(SparkEventStoreConfig(), root) as writer:
        assert not (root / "derived" / "v000002").exists() and (root / "derived" / "v000001").exists()
        assert writer.read("interactions").num_rows == 2


def test_one_writer_at_a_time(tmp_path):
    with SparkEventStore(SparkEventStoreConfig(), tmp_path / "lake"):
        with pytest.raises(BackendError, match="another process is writing"):
            SparkEventStore(SparkEventStoreConfig(), tmp_path / "lake")
    SparkEventStore(SparkEventStoreConfig(), tmp_path / "lake").close()  # free again once the first one closed


def test_read_only_needs_a_store_and_refuses_writes(tmp_path):
    with pytest.raises(ConfigError, match="no event store here yet"):
        SparkEventStore(SparkEventStoreConfig(), tmp_path / "nothing", read_only=True)
    SparkEventStore(SparkEventStoreConfig(), tmp_path / "lake").close()
    with SparkEventStore(SparkEventStoreConfig(), tmp_path / "lake", read_only=True) as reader:
        with pytest.raises(ConfigError, match="read-only"):
            reader.put_catalog({"titles": pa.table({"item_id": ["t1"]})})


@pytest.mark.parametrize(("duckdb", "spark"), [
    ('"t_type" IN (\'play\')', "`t_type` IN ('play')"),
    ("CAST(\"r_ts\" AS VARCHAR)", "CAST(`r_ts` AS STRING)"),
    ("strlen(\"t_id\") > 3", "octet_length(`t_id`) > 3"),
    ("regexp_matches(\"t_id\", '[\\x00-\\x1f]')", "regexp(`t_id`, '[\\\\x00-\\\\x1f]')"),
    ("NOT isfinite(len(c.genres))",
     "NOT (NOT isnan((CASE WHEN (c.genres) IS NULL THEN NULL ELSE size(c.genres) END)) AND "
     "abs((CASE WHEN (c.genres) IS NULL THEN NULL ELSE size(c.genres) END)) <> double('infinity'))"),
    ("\"t_ts\" > (now() AT TIME ZONE 'UTC') + INTERVAL 300 SECOND", "`t_ts` > current_timestamp() + INTERVAL 300 SECOND"),
    ("'it''s \"quoted\"'", "'it''s \"quoted\"'"),
    ("FROM e SEMI JOIN k USING (user_id) LEFT ANTI JOIN (SELECT user_id FROM b) USING (user_id)",
     "FROM e LEFT SEMI JOIN k USING (user_id) LEFT ANTI JOIN (SELECT user_id FROM b) USING (user_id)"),
    ("epoch_us(ts) // 3600000000", "unix_micros(CAST(ts AS TIMESTAMP)) div 3600000000"),
    ("arg_max(rating, CAST(epoch_us(ts) AS HUGEINT))",
     "max_by(rating, CAST(unix_micros(CAST(ts AS TIMESTAMP)) AS DECIMAL(38, 0)))"),
    ("unnest(string_split(reason, ','))", "explode(split(reason, ','))"),
])
def test_duckdb_sql_is_spoken_as_spark_sql(duckdb, spark):
    assert to_spark(duckdb) == spark
