"""Generic event files through a column mapping: CSV, TSV, Parquet, JSON lines."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import structlog
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.data.dataset import Dataset
from streamrec.data.tabular import ColumnMapping, detect_format, file_to_dataset, read_events_file
from streamrec.errors import DataError, NotFound
from streamrec.events.schema import EVENT_ARROW_SCHEMA


def rows(table: pa.Table, *names: str) -> list[tuple]:
    return [tuple(r[n] for n in names) for r in table.to_pylist()]


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n007,1,4.5,964982703\n2,3,3.0,964981247\n2,1,1.0,964981247\n")
    return path


def test_csv_with_common_names_needs_no_mapping(ratings_csv: Path) -> None:
    events = read_events_file(ratings_csv)
    assert events.schema == EVENT_ARROW_SCHEMA
    assert rows(events, "user_id", "item_id", "type", "rating", "ts") == [
        ("007", "1", "rating", 4.5, datetime(2000, 7, 30, 18, 45, 3)),  # leading zero kept: ids are text
        ("2", "3", "rating", 3.0, datetime(2000, 7, 30, 18, 20, 47)),
        ("2", "1", "rating", 1.0, datetime(2000, 7, 30, 18, 20, 47)),
    ]
    ids = events.column("event_id").to_pylist()
    assert len(set(ids)) == 3 and all(i.startswith("ev:") for i in ids)
    assert read_events_file(ratings_csv).column("event_id").to_pylist() == ids  # deterministic


def test_identical_rows_still_get_distinct_ids(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("user_id,item_id,ts\nu,i,100\nu,i,100\n")
    ids = read_events_file(path).column("event_id").to_pylist()
    assert ids[0] != ids[1]


def test_misnamed_columns_name_the_file_the_missing_and_the_found(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("who,what,when\n1,2,3\n")
    with pytest.raises(DataError) as info:
        read_events_file(path, ColumnMapping(user="who", item="item"))
    message = str(info.value)
    assert str(path) in message
    assert "'item' (mapped to item)" in message and "timestamp (none of ts, timestamp" in message
    assert "columns found: ['who', 'what', 'when']" in message
    assert "user" not in message.split("missing column(s):")[1].split(";")[0]  # user was found


def test_jsonl_with_a_mapping_and_iso_times(tmp_path: Path) -> None:
    path = tmp_path / "plays.jsonl"
    lines = [
        {"uid": "u1", "vid": "x", "when": "2020-01-01T02:00:00+02:00", "kind": "play", "secs": 30.5},
        {"uid": "u2", "vid": "y", "when": "2020-01-01T00:00:01Z", "kind": "complete", "secs": 60},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    mapping = ColumnMapping(user="uid", item="vid", timestamp="when", type="kind", watched_s="secs")
    events = read_events_file(path, mapping)
    assert rows(events, "user_id", "item_id", "type", "ts", "watched_s") == [
        ("u1", "x", "play", datetime(2020, 1, 1, 0, 0, 0), 30.5),
        ("u2", "y", "complete", datetime(2020, 1, 1, 0, 0, 1), 60.0),
    ]


def test_iso_strings_with_and_without_offsets(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("user_id,item_id,ts\na,1,2021-03-04 05:06:07\nb,2,2021-03-04T05:06:07-01:00\nc,3,2021-03-04\n")
    events = read_events_file(path)
    assert events.column("ts").to_pylist() == [
        datetime(2021, 3, 4, 5, 6, 7),  # no offset: UTC
        datetime(2021, 3, 4, 6, 6, 7),
        datetime(2021, 3, 4),
    ]
    assert set(events.column("type").to_pylist()) == {"play"}  # no rating column: plays


def test_parquet_epoch_milliseconds_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.table({"user_id": [1, 2], "item_id": ["a", "b"], "ts": [1_577_836_800_123, 1_577_836_801_000]})
    pq.write_table(table, path)
    events = read_events_file(path)
    assert rows(events, "user_id", "ts") == [
        ("1", datetime(2020, 1, 1, 0, 0, 0, 123_000)),
        ("2", datetime(2020, 1, 1, 0, 0, 1)),
    ]
    forced = read_events_file(path, ColumnMapping(timestamp_unit="us"))
    assert forced.column("ts")[0].as_py() == datetime(1970, 1, 19, 6, 17, 16, 800_123)


def test_parquet_typed_timestamps_and_given_event_ids(tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    ts = pa.array([datetime(2022, 5, 1, 12), datetime(2022, 5, 1, 13)], pa.timestamp("ms", tz="Europe/Paris"))
    pq.write_table(pa.table({"u": ["a", "b"], "i": ["x", "y"], "t": ts, "id": ["e1", None], "frac": [0.5, 1.0]}), path)
    mapping = ColumnMapping(user="u", item="i", timestamp="t", event_id="id", fraction="frac")
    events = read_events_file(path, mapping)
    assert events.column("ts").to_pylist() == [datetime(2022, 5, 1, 12), datetime(2022, 5, 1, 13)]  # UTC values
    ids = events.column("event_id").to_pylist()
    assert ids[0] == "e1" and ids[1].startswith("ev:")  # an empty id is filled, not dropped
    assert events.column("fraction").to_pylist() == [0.5, 1.0]


def test_strptime_format_and_bad_times(tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("user_id,item_id,ts\na,1,04/03/2021 10:00\nb,2,31/12/2021 23:59\n")
    events = read_events_file(path, ColumnMapping(timestamp_format="%d/%m/%Y %H:%M"))
    assert events.column("ts").to_pylist() == [datetime(2021, 3, 4, 10), datetime(2021, 12, 31, 23, 59)]
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,ts\na,1,2021-01-01\nb,2,yesterday\n")
    with pytest.raises(DataError, match=r"bad\.csv: data row 2: column 'ts': cannot read 'yesterday'"):
        read_events_file(bad)


def test_empty_required_values_are_reported_with_the_row(tmp_path: Path) -> None:
    path = tmp_path / "holes.jsonl"
    path.write_text('{"user_id": "a", "item_id": "x", "ts": 100}\n{"user_id": null, "item_id": "y", "ts": 200}\n')
    with pytest.raises(DataError, match=r"1 row\(s\) have no user \(column 'user_id'\), first at data row 2"):
        read_events_file(path)


def test_tsv_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "events.tsv.gz"
    with gzip.open(path, "wt") as f:
        f.write("user\titem\ttime\trating\nA\tB\t1600000000\t4\n")
    assert detect_format(path) == "tsv"
    assert rows(read_events_file(path), "user_id", "item_id", "rating", "type") == [("A", "B", 4.0, "rating")]


def test_format_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot tell the file format"):
        detect_format(tmp_path / "events.xlsx")
    with pytest.raises(NotFound):
        read_events_file(tmp_path / "absent.csv")
    with pytest.raises(ValueError):
        ColumnMapping(user="u", unknown_field="x")  # type: ignore[call-arg]


def test_file_to_dataset_orders_events_and_derives_titles_and_users(ratings_csv: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    info = file_to_dataset(ratings_csv, tmp_path / "ds", on_progress=lambda d, t: calls.append((d, t)))
    assert info.source == "csv:ratings.csv"
    assert info.params["mapping"] == {"user": "userId", "item": "movieId", "timestamp": "timestamp", "rating": "rating"}
    assert info.counts == {"titles": 2, "availability": 0, "users": 2, "events": 3}
    assert calls[-1] == (3, 3)
    data = Dataset.open(tmp_path / "ds")
    assert rows(data.events(), "user_id", "item_id") == [("2", "3"), ("2", "1"), ("007", "1")]  # time, then file order
    assert data.table("titles").column("item_id").to_pylist() == ["1", "3"]
    users = {u["user_id"]: u for u in data.table("users").to_pylist()}
    assert users["2"]["signup_ts"] == datetime(2000, 7, 30, 18, 20, 47) and users["2"]["region"] == "unknown"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CliRunner in an empty folder. The root callback configures structlog to print to the runner's stderr,
    which is closed after each invoke, so the previous logging set-up is restored afterwards."""
    monkeypatch.chdir(tmp_path)
    saved = structlog.get_config()
    yield CliRunner()
    structlog.configure(**saved)


def test_cli_load_file(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("who,what,stars,at\n1,2,5,1600000000\n")
    failed = runner.invoke(app, ["data", "load", "file", str(path), "--out", str(tmp_path / "a")])
    assert isinstance(failed.exception, DataError)
    assert "columns found: ['who', 'what', 'stars', 'at']" in str(failed.exception)
    args = ["--user-col", "who", "--item-col", "what", "--rating-col", "stars", "--ts-col", "at"]
    result = runner.invoke(app, ["data", "load", "file", str(path), "--out", str(tmp_path / "a"), *args])
    assert result.exit_code == 0, result.output
    assert "csv:odd.csv" in result.output
    events = Dataset.open(tmp_path / "a").events()
    assert rows(events, "user_id", "item_id", "rating", "type") == [("1", "2", 5.0, "rating")]
