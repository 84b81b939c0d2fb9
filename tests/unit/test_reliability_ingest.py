"""Ingestion under bad input and a failing disk: generated malformed files (every row stored once or quarantined with a
reason, valid rows never lost), hostile ids stored as plain data, and a full disk under the event store (a clear error,
the store as it was, the same files stored exactly once when space is back)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from tests.fuzz_files import Tally, check_files, fuzz_batches
from tests.helpers import event, write_csv

from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
from streamrec.storage.events.duckdb import DuckDBEventStore

TALLY = Tally()


@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=fuzz_batches())
def test_malformed_files_are_quarantined_row_by_row_and_no_valid_event_is_lost(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("fuzz")
    with DuckDBEventStore(DuckDBEventStoreConfig(), folder / "s.duckdb") as store:
        check_files(store, folder, files, TALLY)


def test_the_fuzz_run_tried_every_kind_of_bad_input(tmp_path_factory):
    """The generated files covered every corruption and format (so the property above was not vacuous)."""
    from tests.fuzz_files import BROKEN

    if not TALLY.files:  # this test run alone: generate the same files here
        test_malformed_files_are_quarantined_row_by_row_and_no_valid_event_is_lost(tmp_path_factory)
    assert TALLY.files >= 60 and TALLY.broken_rows > 300, TALLY.as_dict()
    assert set(BROKEN) <= set(TALLY.by_kind), TALLY.by_kind
    assert set(TALLY.by_format) == {"csv", "jsonl", "parquet"} and TALLY.files_refused > 0
    assert TALLY.valid_lost == 0 and TALLY.stored_twice == 0


# --- what the fuzzing found, pinned --------------------------------------------------------------------------------
def test_json_arrays_objects_and_booleans_in_event_fields_are_quarantined_as_bad_type(tmp_path):
    lines = [{"event_id": "a", "user_id": ["u1"], "item_id": "t1", "type": "play", "ts": "2024-03-01T12:00:00Z"},
             {"event_id": "b", "user_id": "u1", "item_id": {"id": 1}, "type": "play", "ts": "2024-03-01T12:00:00Z"},
             {"event_id": False, "user_id": "u1", "item_id": "t1", "type": "play", "ts": "2024-03-01T12:00:00Z"},
             {"event_id": "c", "user_id": 17, "item_id": "true-story", "type": "play", "ts": "2024-03-01T12:00:00Z",
              "note": [1, 2], "extra": {"x": True}}]
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "s.duckdb") as store:
        report = store.ingest_file(path, IngestConfig(unknown_titles="accept"))
        rows = store.read("quarantine").to_pylist()
        stored = store.read("events", ["event_id", "user_id", "item_id"]).to_pylist()
    assert report.quarantined == 3 and report.stored == 1  # a number is an id; unknown keys are ignored
    assert [(r["row"], r["field"], r["reason"]) for r in rows] == [
        (1, "user_id", "bad_type"), (2, "item_id", "bad_type"), (3, "event_id", "bad_type")]
    assert "array" in rows[0]["detail"] and stored == [{"event_id": "c", "user_id": "17", "item_id": "true-story"}]


def test_a_parquet_text_column_of_epoch_times_is_typed_per_row(tmp_path):
    """A dictionary-encoded text `ts` holding epoch seconds once crashed the clean-column check (a cast error)."""
    n = 50
    table = pa.table({"event_id": [f"e{i}" for i in range(n)], "user_id": ["u1"] * n, "item_id": ["t1"] * n,
                      "type": ["play"] * n, "ts": ["1709294400", "soon"] * (n // 2)})
    pq.write_table(table, tmp_path / "e.parquet", use_dictionary=True)
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "s.duckdb") as store:
        report = store.ingest_file(tmp_path / "e.parquet", IngestConfig(unknown_titles="accept"))
    assert (report.stored, report.quarantined, report.by_reason) == (n // 2, n // 2, {"bad_type": n // 2})


def test_a_first_row_over_the_line_size_limit_is_quarantined_alone(tmp_path):
    """DuckDB's CSV sniffer reads the first rows; one over its 2 MB line limit used to refuse the whole file."""
    rows = [event("big", user_id="w" * 2_500_000)] + [event(f"e{i}") for i in range(5)]
    path = write_csv(tmp_path / "e.csv", rows)
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "s.duckdb") as store:
        report = store.ingest_file(path, IngestConfig(unknown_titles="accept"))
        (row,) = store.read("quarantine").to_pylist()
    assert (report.stored, report.quarantined) == (5, 1) and row["row"] == 2 and row["reason"] == "parse_error"
