"""The Spark engine agrees with the embedded one on a small synthetic world: ingestion counts, stored events and
quarantine exactly, features exactly (means to 1e-9), preprocessed tables (bots, sessions, interactions, impression-only
pairs) row for row (floats to 1e-9), ALS metrics within a stated tolerance, batch top-k identical; and the CLI runs
ingest -> features -> preprocess -> train -> recommend on the Spark event store.

Runs on a real local Spark (the session fixture of tests/conftest.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.data.interactions import Interactions
from streamrec.data.synthetic import WorldConfig, generate_world
from streamrec.engines.spark.als import SparkALS, recommend_all
from streamrec.engines.spark.run import preprocess as spark_preprocess
from streamrec.evaluation import evaluate
from streamrec.events.runner import ingest_paths
from streamrec.features import build_snapshot
from streamrec.models import load_model
from streamrec.models.als import ALS
from streamrec.preprocess.pipeline import run_preprocess
from streamrec.settings import (
    DuckDBEventStoreConfig,
    IngestConfig,
    PreprocessConfig,
    SparkEventStoreConfig,
    SplitConfig,
    load_settings,
)
from streamrec.storage.events.duckdb import DuckDBEventStore
from streamrec.storage.events.spark import SparkEventStore
from streamrec.training.batch import recommend_batch
from streamrec.training.train import make_split
from tests.helpers import event, write_csv

# ALS from the two engines: MLlib scales the L2 penalty by each row's count and solves exactly, implicit does
# neither (conjugate gradient), and their random starts differ; on this world their NDCG@10 / recall@10 agree to this.
METRIC_TOLERANCE = 0.05
ALS_PARAMS = {"factors": 32, "iterations": 10}
KCORE = {"min_user_interactions": 3, "min_item_interactions": 3}  # takes several rounds on the tiny world
PREPROCESSED = ("bots", "sessions", "interactions", "impressions_only")


def _dirty_rows(world_event_id: str) -> list[dict]:
    """One row per rule family, repeats within the file and of a stored event, epoch and ISO times."""
    return [
        event("d1", item_id="t000001"), event("d1", item_id="t000001"),  # repeated in the file: the first is kept
        event(world_event_id, item_id="t000001"),  # stored already, by the world's file
        event("d2", item_id="t000001", ts="1709294400"), event("d3", item_id="t000001", ts="1709294400123"),
        event("d4", item_id="t000001", ts="2024-03-01T14:00:00+02:00"),
        event("d5", item_id="t000001", type=" PLAY "), event("d6", item_id="t000001", type="dance"),
        event("d7", item_id="t000001", type="impression"), event("d8", item_id="t000001", type="impression",
                                                                  position="x"),
        event("d9", item_id="t000001", type="impression", position="3"),
        event("d10", item_id="t000001", type="rating", rating="11"), event("d11", item_id="t000001", type="rating",
                                                                         rating="nan"),
        event("d12", item_id="t000001", type="progress", fraction="0.5", watched_s="-1"),
        event("d13", item_id="no-such-title"), event("d14", item_id="t000001", ts="1990-01-01T00:00:00Z"),
        event("d15", item_id="t000001", ts="2999-01-01T00:00:00Z"), event("d16", item_id="t000001", ts="soon"),
        event("d17", item_id="t000001", user_id=""), event("d18\x01", item_id="t000001"),
        event("d19", item_id="t000001", user_id="u" * 200), event("  d20  ", item_id="t000001", device=" tv "),
    ]


def _bot_rows() -> list[dict]:
    """Two bots among the world's viewers: 70 plays of 70 titles in 35 s (event rate, titles per hour), and 60 progress
    events of 2,000 watched seconds each within ten hours (watch time)."""
    rate = [event(f"br{i}", user_id="bot-rate", item_id=f"t{i + 1:06d}", ts=f"2024-01-05T12:00:{i // 2:02d}Z")
            for i in range(70)]
    watch = [event(f"bw{i}", user_id="bot-watch", item_id=f"t{i + 1:06d}", type="progress", fraction="0.5",
                   watched_s="2000", ts=f"2024-01-06T{i // 6:02d}:{i % 6 * 10:02d}:00Z") for i in range(60)]
    return rate + watch


@pytest.fixture(scope="module")
def stores(tmp_path_factory, spark):
    """The tiny world plus a dirty CSV, ingested by both engines (catalog checked: unknown titles quarantined)."""
    root = tmp_path_factory.mktemp("parity")
    generate_world(WorldConfig.preset("tiny", seed=5), root / "world")
    first_id = pq.read_table(next((root / "world" / "events").glob("*.parquet")), columns=["event_id"]).column(0)[0]
    dirty = write_csv(root / "dirty.csv", _dirty_rows(first_id.as_py()) + _bot_rows())
    with open(dirty, "a", encoding="utf-8") as handle:
        handle.write("only,three,fields\r\n")  # a record the reader cannot parse (csv.writer ends lines so)
    reports = {}
    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb") as duck:
        reports["duckdb"] = ingest_paths(duck, [root / "world", dirty], IngestConfig()).batches
        build_snapshot(duck.con, root / "features-duckdb")
    with SparkEventStore(SparkEventStoreConfig(), root / "lake") as lake:
        reports["spark"] = ingest_paths(lake, [root / "world", dirty], IngestConfig()).batches
    from streamrec.engines.spark.run import build_features

    build_features(load_settings(data_dir=root, event_store={"type": "spark"}), out=root / "features-spark")
    return root, reports


def test_ingestion_agrees_row_for_row(stores):
    root, reports = stores
    counts = {engine: [(b.read, b.stored, b.duplicates, b.quarantined, b.by_reason) for b in batches]
              for engine, batches in reports.items()}
    assert counts["spark"] == counts["duckdb"]
    dirty = reports["duckdb"][-1]
    assert dirty.duplicates == 2 and dirty.by_reason["parse_error"] == 1 and len(dirty.by_reason) >= 8
    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb", read_only=True) as duck, \
            SparkEventStore(SparkEventStoreConfig(), root / "lake", read_only=True) as lake:
        for table, key in (("events", "event_id"), ("quarantine", "row")):
            columns = [c for c in duck.read(table).column_names if c not in ("quarantined_at", "raw")]
            expected = duck.read(table, columns).sort_by(key)
            got = lake.read(table, columns).sort_by(key)
            assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected.schema], table
            assert _comparable(got) == _comparable(expected), table
        assert lake.counts() == {t: n for t, n in duck.counts().items() if t in lake.counts()}


def _comparable(table) -> list[dict]:
    """Rows as dicts; of a record the reader could not parse only the line and the reason (the reader's own message
    and the field it names differ between DuckDB's and Spark's CSV readers)."""
    rows = table.to_pylist()
    for row in rows:
        if row.get("reason") == "parse_error":
            row["field"] = row["detail"] = None
    return rows


def test_features_agree(stores):
    root, _ = stores
    for file in ("users.parquet", "titles.parquet"):
        expected = pq.read_table(root / "features-duckdb" / file)
        got = pq.read_table(root / "features-spark" / file)
        assert got.schema.remove_metadata() == expected.schema.remove_metadata()
        assert got.schema.metadata[b"as_of"] == expected.schema.metadata[b"as_of"]
        _assert_columns_agree(got, expected)


def _assert_columns_agree(got, expected) -> None:
    """Column for column, row for row; floats to 1e-9 (the engines sum in different orders)."""
    for name in expected.column_names:
        want, have = expected.column(name).to_pylist(), got.column(name).to_pylist()
        if isinstance(next((v for v in want if v is not None), None), float):
            assert all((a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                       for a, b in zip(want, have, strict=True)), name
        else:
            assert have == want, name


def test_preprocess_agrees_table_for_table(stores):
    root, _ = stores
    settings = load_settings(data_dir=root, event_store={"type": "spark"}, preprocess=KCORE)
    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb") as duck, \
            SparkEventStore(SparkEventStoreConfig(), root / "lake") as lake:
        expected_report = run_preprocess(duck.con, settings.preprocess)
        report = spark_preprocess(settings, lake)
        for table in PREPROCESSED:
            expected, got = duck.read(table), lake.read(table)
            assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected.schema], table
            assert got.num_rows == expected.num_rows > 0, table
            _assert_columns_agree(got, expected)
    assert report.bot_reasons == {"event_rate": 1, "titles_per_hour": 1, "watch_time": 1}
    assert len(report.kcore_rounds) > 1 and report.rating_scale == 5.0
    timings = ("seconds", "step_seconds")
    got_counts = {k: v for k, v in report.as_dict().items() if k not in timings}
    want_counts = {k: v for k, v in expected_report.as_dict().items() if k not in timings}
    assert got_counts.keys() == want_counts.keys()
    for key, want in want_counts.items():
        assert got_counts[key] == (pytest.approx(want, rel=1e-9) if isinstance(want, float) else want), key


@pytest.fixture(scope="module")
def interactions(stores):
    root, _ = stores
    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb") as duck:
        run_preprocess(duck.con, PreprocessConfig())
        return duck.read("interactions", ["user_id", "item_id", "weight", "last_ts"])


def test_als_metrics_agree_within_tolerance(interactions):
    split = make_split(interactions, SplitConfig())
    result = evaluate({"embedded": ALS(ALS_PARAMS), "spark": SparkALS(ALS_PARAMS), "popularity": ("popularity", {})},
                      split, k=10, ks=[10], n_boot=10, latency_users=0)
    metric = {name: {m: result.models[name].metrics[f"{m}@10"].mean for m in ("ndcg", "recall")}
              for name in result.models}
    for m in ("ndcg", "recall"):
        assert abs(metric["spark"][m] - metric["embedded"][m]) <= METRIC_TOLERANCE, metric
    assert metric["spark"]["ndcg"] > metric["popularity"]["ndcg"], metric  # it learned tastes, not just popularity


def test_spark_als_is_saved_as_als_and_scored_in_batch_identically(interactions, tmp_path, spark):
    data = Interactions.from_table(interactions)
    fitted = SparkALS(ALS_PARAMS).fit(data)
    loaded = load_model(fitted.save(tmp_path / "model"))
    assert type(loaded) is ALS and np.array_equal(loaded.item_factors_, fitted.item_factors_)
    users = np.asarray([*data.user_ids, "newcomer"], dtype=object)
    expected = recommend_batch(loaded, data, users, k=5)
    got = recommend_all(loaded, data, users, k=5, spark=spark)
    for column in ("user_id", "rank", "item_id", "source"):
        assert got.column(column).to_pylist() == expected.column(column).to_pylist(), column
    assert np.allclose(got.column("score").to_numpy(), expected.column("score").to_numpy(), rtol=1e-5, atol=1e-6)
    assert got.column("source").to_pylist()[-1] == "popular"


def test_cli_runs_each_stage_on_spark(tmp_path, spark):
    world = tmp_path / "world"
    generate_world(WorldConfig.preset("tiny", seed=7), world)
    base = ["--data-dir", str(tmp_path / "d")]
    runner = CliRunner()
    result = runner.invoke(app, [*base, "ingest", str(world), "--engine", "spark"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "lake" / "batches" / "b000001.json").is_file()
    assert any((tmp_path / "d" / "lake" / "events").glob("date=*/*.parquet"))
    env = {"STREAMREC_EVENT_STORE__TYPE": "spark"}
    result = runner.invoke(app, [*base, "features", "build", "--engine", "spark"], env=env)
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "d" / "features" / "users.parquet").num_rows > 0
    # preprocess --engine spark writes into the Spark store, as ingest does; train and recommend read it from there
    result = runner.invoke(app, [*base, "preprocess", "--engine", "spark"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "lake" / "derived" / "current.json").is_file()
    result = runner.invoke(app, [*base, "train", "--engine", "spark", "--models", "als", "--no-register"], env=env)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "d" / "events.duckdb").exists()  # no stage fell back to the DuckDB store
    model = next((tmp_path / "d" / "models").glob("als-*[0-9]"))
    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, [*base, "recommend", "--engine", "spark", "--model", str(model), "--k", "5",
                                 "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    recs = pq.read_table(out)
    assert recs.num_rows > 0 and set(recs.column("rank").to_pylist()) == {1, 2, 3, 4, 5}
