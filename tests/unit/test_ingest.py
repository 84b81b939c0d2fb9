"""Batch ingestion: validation with reasons, quarantine, dedup, manifest, formats, policies."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamrec.errors import DataError, NotFound
from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
from streamrec.storage.events.duckdb import DuckDBEventStore
from tests.helpers import event, write_csv, write_jsonl


@pytest.fixture
def store(tmp_path: Path):
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "events.duckdb") as s:
        yield s


def quarantine_by_row(store) -> dict[int, dict]:
    return {r["row"]: r for r in store.read("quarantine").to_pylist()}


def test_valid_csv_is_stored_with_types(store, tmp_path):
    path = write_csv(tmp_path / "a.csv", [
        event("e1"),
        event("e2", type="impression", position=3, row="Top Picks", request_id="r1"),
        event("e3", type="progress", fraction="0.5", watched_s="600", ts="2024-03-01T14:00:00+02:00"),
        event("e4", type="rating", rating="4.5", ts="1709294400"),
        event("e5", type="complete", ts="1709294400000"),
    ])
    report = store.ingest_file(path, IngestConfig())
    assert (report.read, report.stored, report.duplicates, report.quarantined) == (5, 5, 0, 0)
    rows = {r["event_id"]: r for r in store.read("events").to_pylist()}
    assert rows["e2"]["position"] == 3 and rows["e2"]["row"] == "Top Picks"
    assert rows["e3"]["fraction"] == 0.5 and rows["e3"]["ts"].hour == 12  # +02:00 converted to UTC
    assert rows["e4"]["ts"] == rows["e5"]["ts"]  # epoch seconds and epoch milliseconds agree
    assert rows["e4"]["rating"] == 4.5


@pytest.mark.parametrize(
    "fields, reason, field",
    [
        ({"user_id": ""}, "missing", "user_id"),
        ({"type": "watch"}, "bad_enum", "type"),
        ({"ts": "yesterday"}, "bad_type", "ts"),
        ({"ts": "1970-01-02"}, "ts_too_old", "ts"),
        ({"ts": "2999-01-01"}, "ts_future", "ts"),
        ({"type": "progress", "fraction": "1.5"}, "out_of_range", "fraction"),
        ({"type": "progress", "fraction": "NaN"}, "out_of_range", "fraction"),
        ({"type": "progress"}, "type_field_missing", "fraction"),
        ({"type": "impression", "position": "two"}, "bad_type", "position"),
        ({"type": "rating", "rating": "-1"}, "out_of_range", "rating"),
        ({"item_id": "x" * 500}, "too_long", "item_id"),
        ({"user_id": "a\tb"}, "bad_id", "user_id"),
    ],
)
def test_each_invalid_row_is_quarantined_with_reason_field_and_row(store, tmp_path, fields, reason, field):
    path = write_csv(tmp_path / "a.csv", [event("ok1"), event("bad", **fields), event("ok2")],
                     columns=["event_id", "user_id", "item_id", "type", "ts", "position", "fraction", "rating"])
    report = store.ingest_file(path, IngestConfig())
    assert (report.read, report.stored, report.quarantined) == (3, 2, 1)
    assert report.by_reason == {reason: 1}
    row = quarantine_by_row(store)[3]  # header is line 1, so the second record is line 3
    assert (row["reason"], row["field"], row["source"]) == (reason, field, str(path))
    assert row["detail"] and '"bad"' in row["raw"]


def test_bad_encoding_and_broken_lines_are_quarantined_not_dropped(store, tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(
        b"event_id,user_id,item_id,type,ts\n"
        b"e1,u1,t1,play,2024-03-01\n"
        b"e2,u\xff\xfe,t1,play,2024-03-01\n"
        b"e3,u1,t1,play,2024-03-01,surplus,fields\n"
        b"e4,u1,t1,play,2024-03-01\n"
        b"e5,u1,t1,watch,2024-03-01\n"
    )
    report = store.ingest_file(path, IngestConfig())
    assert (report.read, report.stored, report.quarantined) == (5, 2, 3)
    rows = quarantine_by_row(store)
    assert rows[3]["reason"] == "bad_encoding"
    assert rows[4]["reason"] == "parse_error"
    assert rows[6]["reason"] == "bad_enum"  # line numbers stay right after rejected lines


def test_duplicates_within_and_across_batches_are_stored_once(store, tmp_path):
    first = write_csv(tmp_path / "a.csv", [event("e1"), event("e2"), event("e1")])
    second = write_csv(tmp_path / "b.csv", [event("e2"), event("e3")])
    r1 = store.ingest_file(first, IngestConfig())
    r2 = store.ingest_file(second, IngestConfig())
    assert (r1.stored, r1.duplicates, r2.stored, r2.duplicates) == (2, 1, 1, 1)
    ids = store.read("events", ["event_id"]).column("event_id").to_pylist()
    assert sorted(ids) == ["e1", "e2", "e3"]


def test_same_file_twice_is_a_no_op(store, tmp_path):
    path = write_csv(tmp_path / "a.csv", [event("e1"), event("bad", type="nope")])
    store.ingest_file(path, IngestConfig())
    again = store.ingest_file(path, IngestConfig())
    assert again.skipped and again.stored == 0
    assert store.counts()["events"] == 1 and store.counts()["quarantine"] == 1 and store.counts()["batches"] == 1


def test_missing_required_column_is_a_clear_error_and_stores_nothing(store, tmp_path):
    path = write_csv(tmp_path / "a.csv", [{"event_id": "e1", "user": "u1", "item_id": "t", "type": "play", "ts": "x"}])
    with pytest.raises(DataError, match=r"missing required column\(s\) \['user_id'\].*'user'"):
        store.ingest_file(path, IngestConfig())
    assert store.counts()["events"] == 0 and store.counts()["batches"] == 0


def test_missing_file_is_not_found(store, tmp_path):
    with pytest.raises(NotFound):
        store.ingest_file(tmp_path / "nope.csv", IngestConfig())


def test_unknown_format_is_a_data_error(store, tmp_path):
    path = tmp_path / "a.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match="format"):
        store.ingest_file(path, IngestConfig())


def test_jsonl_with_broken_lines(store, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [event("e1"), event("e2", type="rating", rating=4)])
    with open(path, "ab") as handle:
        handle.write(b"{not json\n\n[1, 2]\n")
        handle.write(b'{"event_id": "e3", "user_id": "u\\u0000x", "item_id": "t1", "type": "play", "ts": "2024-03-01"}\n')
    report = store.ingest_file(path, IngestConfig())
    assert (report.read, report.stored, report.quarantined) == (5, 2, 3)
    rows = quarantine_by_row(store)
    assert rows[3]["reason"] == "parse_error" and rows[5]["reason"] == "parse_error"
    assert rows[6]["reason"] == "bad_id" and rows[6]["detail"] == "contains a NUL byte"


def test_typed_parquet(store, tmp_path):
    table = pa.table({
        "event_id": ["p1", "p2", "p3"], "user_id": ["u1", "u1", "u2"], "item_id": ["t1", "t2", "t3"],
        "type": ["play", "rating", "rating"],
        "ts": pa.array([1_709_294_400_000_000] * 3, pa.timestamp("us", tz="UTC")),
        "rating": [None, 4.0, 12.0],
    })
    pq.write_table(table, tmp_path / "a.parquet")
    report = store.ingest_file(tmp_path / "a.parquet", IngestConfig())
    assert (report.stored, report.quarantined) == (2, 1)
    assert quarantine_by_row(store)[3]["reason"] == "out_of_range"


def test_unknown_title_policy(store, tmp_path):
    store.put_catalog({"titles": pa.table({"item_id": ["t1"]})})
    path = write_csv(tmp_path / "a.csv", [event("e1"), event("e2", item_id="ghost")])
    report = store.ingest_file(path, IngestConfig(unknown_titles="quarantine"))
    assert report.by_reason == {"unknown_title": 1}
    path2 = write_csv(tmp_path / "b.csv", [event("e3", item_id="ghost")])
    assert store.ingest_file(path2, IngestConfig(unknown_titles="accept")).stored == 1


def test_unknown_user_policy(store, tmp_path):
    store.put_catalog({"users": pa.table({"user_id": ["u1"]})})
    path = write_csv(tmp_path / "a.csv", [event("e1"), event("e2", user_id="stranger")])
    assert store.ingest_file(path, IngestConfig(unknown_users="quarantine")).by_reason == {"unknown_user": 1}


def test_export_parquet_partitioned_by_date(store, tmp_path):
    path = write_csv(tmp_path / "a.csv", [event("e1", ts="2024-03-01"), event("e2", ts="2024-03-02T10:00:00")])
    store.ingest_file(path, IngestConfig())
    out = store.export_parquet(tmp_path / "export")
    parts = sorted(p.name for p in out.iterdir())
    assert parts == ["date=2024-03-01", "date=2024-03-02"]
