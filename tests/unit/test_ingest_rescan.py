"""Parquet ingestion reads the file twice (check, then insert): the same records, the same dedup, and a file that
changes in between stores nothing. Also the pieces that keep it fast: repeated hashes by sorting, the trim guard."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamrec.events.ingest as ingest_module
from streamrec.errors import DataError
from streamrec.events.rules import _trimmed
from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
from streamrec.storage.events.duckdb import DuckDBEventStore
from tests.helpers import write_csv

TS = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)


def rows_with_repeats(n: int = 3000) -> list[dict]:
    """Valid plays, with ids repeated within the file; some first occurrences of a repeated id are invalid."""
    rows = []
    for i in range(n):
        event_id = f"e{i % 100}" if i % 7 == 0 else f"u{i}"  # every 7th row: one of 100 ids, each repeated
        bad = i % 7 == 0 and i < 1000  # a repeated id's first occurrence, invalid: a later one must be stored
        rows.append({"event_id": event_id, "user_id": f"u{i % 13}", "item_id": f"t{i % 17}",
                     "type": "bogus" if bad else "play", "ts": TS})
    return rows


def write_parquet(path: Path, rows: list[dict], row_group_size: int = 256) -> Path:
    table = pa.table({"event_id": [r["event_id"] for r in rows], "user_id": [r["user_id"] for r in rows],
                      "item_id": [r["item_id"] for r in rows], "type": [r["type"] for r in rows],
                      "ts": pa.array([r["ts"] for r in rows], pa.timestamp("us", tz="UTC"))})
    pq.write_table(table, path, row_group_size=row_group_size)  # many row groups: a parallel, unordered scan
    return path


def expected(rows: list[dict]) -> tuple[dict[str, int], list[int]]:
    """event_id → the 1-based file row stored for it (its first valid occurrence), and the invalid rows."""
    kept: dict[str, int] = {}
    invalid = []
    for number, row in enumerate(rows, start=1):
        if row["type"] != "play":
            invalid.append(number)
        else:
            kept.setdefault(row["event_id"], number)
    return kept, invalid


def test_parquet_keeps_the_first_valid_occurrence_and_quarantines_by_row(tmp_path):
    rows = rows_with_repeats()
    kept, invalid = expected(rows)
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "s.duckdb") as store:
        report = store.ingest_file(write_parquet(tmp_path / "a.parquet", rows), IngestConfig(unknown_titles="accept"))
        assert (report.read, report.stored, report.quarantined) == (len(rows), len(kept), len(invalid))
        assert report.duplicates == len(rows) - len(invalid) - len(kept)
        stored = store.read("events", ["event_id", "user_id"]).to_pylist()
        assert sorted(r["event_id"] for r in stored) == sorted(kept)
        # the stored copy is the first valid one: its user_id tells which file row it came from
        assert {r["event_id"]: r["user_id"] for r in stored} == {k: f"u{(n - 1) % 13}" for k, n in kept.items()}
        assert sorted(r["row"] for r in store.read("quarantine").to_pylist()) == invalid


def test_a_second_parquet_batch_stores_only_new_ids_and_the_same_file_again_nothing(tmp_path):
    rows = rows_with_repeats()
    later = [{**r, "type": "play"} for r in rows_with_repeats(4000)[2500:]]  # overlaps the first file's ids
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "s.duckdb") as store:
        first = store.ingest_file(write_parquet(tmp_path / "a.parquet", rows), IngestConfig(unknown_titles="accept"))
        second = store.ingest_file(write_parquet(tmp_path / "b.parquet", later), IngestConfig(unknown_titles="accept"))
        again = store.ingest_file(tmp_path / "b.parquet", IngestConfig(unknown_titles="accept"))
        ids = [r["event_id"] for r in store.read("events", ["event_id"]).to_pylist()]
        new = {r["event_id"] for r in later} - set(expected(rows)[0])
        assert second.stored == len(new) and second.duplicates == len(later) - len(new)
        assert len(ids) == len(set(ids)) == first.stored + second.stored
        assert again.skipped and store.counts()["batches"] == 2


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_changed_during_ingestion_stores_nothing(tmp_path, monkeypatch, fmt):
    rows = rows_with_repeats()
    path = tmp_path / f"a.{fmt}"

    def write(rows_: list[dict]) -> Path:
        if fmt == "parquet":
            return write_parquet(path, rows_)
        return write_csv(path, [{**r, "ts": r["ts"].isoformat()} for r in rows_])

    write(rows)
    check = ingest_module._check

    def check_then_rewrite(con, staged, config):
        checked = check(con, staged, config)
        write([{**r, "type": "bogus"} for r in rows] + rows[:10])  # another writer replaces the file
        return checked

    monkeypatch.setattr(ingest_module, "_check", check_then_rewrite)
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "s.duckdb") as store:
        with pytest.raises(DataError, match="changed while it was being ingested"):
            store.ingest_file(path, IngestConfig(unknown_titles="accept"))
        assert store.counts()["events"] == store.counts()["quarantine"] == store.counts()["batches"] == 0
        monkeypatch.setattr(ingest_module, "_check", check)
        report = store.ingest_file(path, IngestConfig(unknown_titles="accept"))  # the new file, once it is still
        assert (report.read, report.stored) == (len(rows) + 10, len(expected(rows[:10])[0]))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, 40), max_size=300), part=st.sampled_from([1, 4, 64, 1 << 25]))
def test_repeated_hashes_are_exactly_the_values_seen_twice_in_any_number_of_parts(values, part):
    con = duckdb.connect()
    con.register("v", pa.table({"i": pa.array(values, pa.int64())}))
    con.execute("CREATE TABLE t AS SELECT hash(i) AS __h FROM v")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_module, "_HASHES_PER_PART", part)
        got = ingest_module._repeated_hashes(con, "t", len(values))
    want = {h for h, n in Counter(r[0] for r in con.execute("SELECT __h FROM t").fetchall()).items() if n > 1}
    assert sorted(got.tolist()) == sorted(want)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.none(), st.text(st.sampled_from(
    ["a", "Z", "0", "-", " ", "\t", "\n", "\x00", "\x7f", "é", "\u00a0", "\u2003", "\u3000", "\u200b", "\ufeff"]),
    max_size=6), st.text(max_size=6)))
def test_the_trim_guard_gives_what_trim_gives(text):
    con = duckdb.connect()
    got, want = con.execute(f"SELECT {_trimmed('$1::VARCHAR')}, nullif(trim($1::VARCHAR), '')", [text]).fetchall()[0]
    assert got == want
