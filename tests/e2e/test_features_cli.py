"""`streamrec features`: snapshots of a real ingested store, one user's features, bots left out, clear errors."""

from __future__ import annotations

from datetime import datetime

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.errors import ConfigError, DataError
from streamrec.features import BUILTIN, entity_features
from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
from streamrec.storage.events.duckdb import DuckDBEventStore

runner = CliRunner()


def write_events(path, rows):
    cols = ["event_id", "user_id", "item_id", "type", "ts", "fraction"]
    lines = [",".join(cols)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def store_dir(tmp_path):
    rows = [
        ("e1", "u1", "t1", "play", "2026-01-01T10:00:00Z", None),
        ("e2", "u1", "t1", "complete", "2026-01-01T11:00:00Z", 1.0),
        ("e3", "u1", "t2", "play", "2026-01-05T10:00:00Z", None),
        ("e4", "u2", "t1", "play", "2026-01-09T10:00:00Z", None),
        ("e5", "u2", "t2", "progress", "2026-01-09T11:00:00Z", 0.5),
    ]
    csv = write_events(tmp_path / "events.csv", rows)
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "events.duckdb") as store:
        store.ingest_file(csv, IngestConfig(unknown_titles="accept"))
    return tmp_path


def test_build_writes_snapshots_equal_to_the_point_in_time_computation(store_dir):
    result = runner.invoke(app, ["--data-dir", str(store_dir), "features", "build"])
    assert result.exit_code == 0, result.output
    assert "2026-01-09 11:00:01" in result.output  # just after the newest event
    users = pq.read_table(store_dir / "features" / "users.parquet")
    titles = pq.read_table(store_dir / "features" / "titles.parquet")
    assert users.column("user_id").to_pylist() == ["u1", "u2"]
    assert titles.column("item_id").to_pylist() == ["t1", "t2"]
    assert users.schema.metadata[b"as_of"] == b"2026-01-09T11:00:01"
    u1, u2 = users.to_pylist()
    assert (u1["user_plays_7d"], u1["user_plays_28d"], u1["user_completes_28d"]) == (1, 2, 1)
    assert (u2["user_plays_1d"], u2["user_avg_completion_28d"]) == (1, 0.5)
    assert u1["user_days_since_last_play"] == pytest.approx(4 + 1 / 24 + 1 / 86_400)
    t1 = titles.to_pylist()[0]
    assert (t1["title_plays_28d"], t1["title_avg_completion_28d"]) == (2, 1.0)
    with DuckDBEventStore(DuckDBEventStoreConfig(), store_dir / "events.duckdb") as store:
        again = entity_features(store.con, "user", ["u1", "u2"], datetime(2026, 1, 9, 11, 0, 1), BUILTIN)
    assert again.to_pylist() == users.to_pylist()


def test_build_at_an_earlier_time_sees_only_the_past(store_dir):
    result = runner.invoke(app, ["--data-dir", str(store_dir), "features", "build", "--at", "2026-01-05T00:00:00Z"])
    assert result.exit_code == 0, result.output
    users = pq.read_table(store_dir / "features" / "users.parquet").to_pylist()
    assert [u["user_id"] for u in users] == ["u1"]  # u2 has no events yet
    assert users[0]["user_events_all"] == 2


def test_show_prints_one_users_features_and_a_stranger_gets_zeros(store_dir):
    result = runner.invoke(app, ["--data-dir", str(store_dir), "features", "show", "u1"])
    assert result.exit_code == 0, result.output
    assert "user_plays_28d" in result.output and "features of user u1" in result.output
    stranger = runner.invoke(app, ["--data-dir", str(store_dir), "features", "show", "nobody"])
    assert stranger.exit_code == 0, stranger.output
    assert "user_events_all" in stranger.output


def test_bots_flagged_by_preprocess_are_left_out(store_dir):
    with DuckDBEventStore(DuckDBEventStoreConfig(), store_dir / "events.duckdb") as store:
        store.con.execute("CREATE TABLE bots AS SELECT 'u2' AS user_id")
    result = runner.invoke(app, ["--data-dir", str(store_dir), "features", "build"])
    assert result.exit_code == 0, result.output
    titles = pq.read_table(store_dir / "features" / "titles.parquet").to_pylist()
    assert titles[0]["title_plays_28d"] == 1  # only u1's play of t1
    assert pq.read_table(store_dir / "features" / "users.parquet").column("user_id").to_pylist() == ["u1"]


def test_bad_time_and_empty_store_are_clear_errors(tmp_path, store_dir):
    bad = runner.invoke(app, ["--data-dir", str(store_dir), "features", "build", "--at", "yesterday"])
    assert isinstance(bad.exception, ConfigError) and "not an ISO 8601 time" in str(bad.exception)
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "empty" / "events.duckdb"):
        pass
    empty = runner.invoke(app, ["--data-dir", str(tmp_path / "empty"), "features", "build"])
    assert isinstance(empty.exception, DataError) and "no events yet" in str(empty.exception)


def test_list_names_every_declared_feature():
    result = runner.invoke(app, ["features", "list"])
    assert result.exit_code == 0, result.output
    assert all(f.name[:18] in result.output for f in BUILTIN)
