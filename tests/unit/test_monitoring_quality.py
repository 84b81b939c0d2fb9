"""Data quality per ingestion batch: files ingested by streamrec's own ingestion, then checked from the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.errors import ConfigError, DataError
from streamrec.monitoring import QualityThresholds, check_batches, quality_alerts
from streamrec.monitoring.config import load_config
from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
from streamrec.storage.events.duckdb import DuckDBEventStore
from tests.helpers import event, write_csv

COLUMNS = ["event_id", "user_id", "item_id", "type", "ts", "fraction"]


@pytest.fixture
def store(tmp_path: Path):
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "events.duckdb") as s:
        yield s


def clean_rows(prefix: str, n: int = 20, day: int = 1, titles: int = 5) -> list[dict]:
    return [event(f"{prefix}{i}", user_id=f"u{i % 7}", item_id=f"t{i % titles}",
                  ts=f"2024-03-{day:02d}T{10 + i % 8:02d}:00:00Z") for i in range(n)]


def ingest(store, tmp_path: Path, name: str, rows: list[dict]) -> None:
    store.ingest_file(write_csv(tmp_path / name, rows, columns=COLUMNS), IngestConfig())


def alerts_of(store, **thresholds):
    config = QualityThresholds(**thresholds)
    checks = check_batches(store.con, config)
    return checks, quality_alerts(checks, config)


def test_clean_batches_raise_no_alert(store, tmp_path):
    ingest(store, tmp_path, "a.csv", clean_rows("a", day=1))
    ingest(store, tmp_path, "b.csv", clean_rows("b", day=2))
    checks, alerts = alerts_of(store)
    assert [(c.batch_id, c.read, c.stored, c.quarantined) for c in checks] == [(1, 20, 20, 0), (2, 20, 20, 0)]
    assert checks[0].summary.new_title_share is None  # the first batch of a store has nothing to be new against
    assert checks[1].summary.new_title_share == 0.0
    assert alerts == []


def test_a_spike_of_rejections_alerts_with_its_reasons(store, tmp_path):
    ingest(store, tmp_path, "a.csv", clean_rows("a", day=1))
    bad = [event(f"x{i}", type="watch") for i in range(6)] + [event(f"y{i}", user_id="") for i in range(3)]
    ingest(store, tmp_path, "b.csv", clean_rows("b", day=2, n=11) + bad)
    checks, alerts = alerts_of(store)
    assert checks[1].reasons == {"bad_enum": 6, "missing": 3}
    assert [(a.kind, a.name, a.severity) for a in alerts] == [
        ("rejection_rate", f"batch 2 ({tmp_path / 'b.csv'})", "alert")]
    assert alerts[0].value == pytest.approx(9 / 20) and alerts[0].threshold == 0.05
    assert "bad_enum 6" in alerts[0].detail and "missing 3" in alerts[0].detail


def test_late_events_and_new_titles_alert(store, tmp_path):
    ingest(store, tmp_path, "a.csv", clean_rows("a", day=1))
    late = clean_rows("b", day=5, titles=5)[:10] + clean_rows("c", day=2, n=10, titles=5)  # 10 events 3 days late
    ingest(store, tmp_path, "b.csv", late)
    fresh = [event(f"n{i}", item_id=f"new{i}", ts="2024-03-06T10:00:00Z") for i in range(15)]
    ingest(store, tmp_path, "c.csv", fresh + clean_rows("d", day=6, n=5))
    checks, alerts = alerts_of(store)
    assert checks[1].summary.late_events == 10
    assert checks[2].summary.new_title_share == pytest.approx(15 / 20)
    assert sorted((a.kind, a.name.split(" (")[0]) for a in alerts) == [("late_events", "batch 2"),
                                                                       ("new_titles", "batch 3")]
    _, relaxed = alerts_of(store, max_late_share=0.6, max_new_title_share=0.8)
    assert relaxed == []


def test_null_rate_and_volume_thresholds(store, tmp_path):
    for day, n in ((1, 20), (2, 20), (3, 2)):
        ingest(store, tmp_path, f"{day}.csv", clean_rows(f"d{day}", day=day, n=n))
    checks, alerts = alerts_of(store, max_null_rate={"fraction": 0.5}, volume_ratio=5)
    assert checks[0].summary.null_rate["fraction"] == 1.0  # plays carry no fraction
    kinds = sorted((a.kind, a.name.split(" (")[0] + (" fraction" if a.kind == "null_rate" else "")) for a in alerts)
    assert kinds == [("null_rate", "batch 1 fraction"), ("null_rate", "batch 2 fraction"),
                     ("null_rate", "batch 3 fraction"), ("volume", "batch 3")]


def test_only_the_latest_batches_are_checked(store, tmp_path):
    for day in (1, 2, 3):
        ingest(store, tmp_path, f"{day}.csv", clean_rows(f"d{day}", day=day))
    checks, _ = alerts_of(store, batches=2)
    assert [c.batch_id for c in checks] == [2, 3]


def test_a_store_without_batches_is_a_clear_error(tmp_path):
    import duckdb

    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    with pytest.raises(DataError, match="streamrec ingest"):
        check_batches(con, QualityThresholds())
    con.close()


def test_thresholds_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[quality]\nmax_rejection_rate = 0.5\n[drift]\npsi_alert = 0.3\n")
    config = load_config(path)
    assert config.quality.max_rejection_rate == 0.5 and config.drift.psi_alert == 0.3
    path.write_text("[quality]\nmax_rejections = 0.5\n")
    with pytest.raises(ConfigError, match="max_rejections"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such"):
        load_config(tmp_path / "missing.toml")
