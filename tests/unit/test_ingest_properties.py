"""Property tests: whatever mix of good, broken and repeated rows a file holds, every row is accounted for."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
from streamrec.storage.events.duckdb import DuckDBEventStore
from tests.helpers import event, write_csv, write_jsonl

# Each corruption makes exactly one row invalid.
CORRUPTIONS = [
    {"type": "teleport"}, {"ts": "not a time"}, {"user_id": ""}, {"ts": "3000-01-01"}, {"item_id": "y" * 300},
    {"type": "progress", "fraction": "7"}, {"type": "rating"}, {"type": "impression", "position": "-4"},
    {"event_id": "ctrl\x01"}, {"rating": "inf", "type": "rating"},
]
VALID_VARIANTS = [
    {}, {"type": "rating", "rating": "3.5"}, {"type": "progress", "fraction": "0.25", "watched_s": "120"},
    {"type": "impression", "position": "7", "row": "Trending Now", "request_id": "r9"},
    {"ts": "1709294400"}, {"ts": "2024-03-01 08:00:00+05:30"}, {"user_id": "  padded  "},
]

rows_strategy = st.lists(
    st.tuples(st.integers(0, 30), st.booleans(), st.integers(0, len(CORRUPTIONS) - 1),
              st.integers(0, len(VALID_VARIANTS) - 1)),
    min_size=1, max_size=60,
)


def build(rows):
    out, valid_ids, invalid = [], set(), 0
    for id_num, is_bad, corruption, variant in rows:
        fields = dict(CORRUPTIONS[corruption] if is_bad else VALID_VARIANTS[variant])
        row = event(f"e{id_num}" + fields.pop("event_id", ""), **fields)
        out.append(row)
        if is_bad:
            invalid += 1
        else:
            valid_ids.add(row["event_id"])
    return out, valid_ids, invalid


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, as_jsonl=st.booleans())
def test_every_row_is_stored_once_or_quarantined(tmp_path_factory, rows, as_jsonl):
    folder = tmp_path_factory.mktemp("prop")
    data, valid_ids, invalid = build(rows)
    columns = ["event_id", "user_id", "item_id", "type", "ts", "request_id", "position", "row", "watched_s",
               "fraction", "rating"]
    path = write_jsonl(folder / "e.jsonl", data) if as_jsonl else write_csv(folder / "e.csv", data, columns)
    with DuckDBEventStore(DuckDBEventStoreConfig(), folder / "s.duckdb") as store:
        report = store.ingest_file(path, IngestConfig(unknown_titles="accept"))
        stored = store.read("events", ["event_id"]).column("event_id").to_pylist()
        quarantine = store.read("quarantine")
    assert report.read == len(data) == report.stored + report.duplicates + report.quarantined
    assert sorted(stored) == sorted(valid_ids)  # each valid id exactly once
    assert report.quarantined == invalid == quarantine.num_rows
    assert all(r for r in quarantine.column("reason").to_pylist())
    # quarantine rows point at the right lines: the k-th data row is line k+2 in CSV, k+1 in JSONL
    first = 1 if as_jsonl else 2
    bad_lines = sorted(i + first for i, (_, is_bad, _, _) in enumerate(rows) if is_bad)
    assert sorted(quarantine.column("row").to_pylist()) == bad_lines


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=rows_strategy, second=rows_strategy)
def test_two_batches_store_the_union_of_valid_ids(tmp_path_factory, first, second):
    folder = tmp_path_factory.mktemp("prop2")
    (a, ids_a, _), (b, ids_b, _) = build(first), build(second)
    with DuckDBEventStore(DuckDBEventStoreConfig(), folder / "s.duckdb") as store:
        store.ingest_file(write_csv(folder / "a.csv", a, list(a[0].keys() | {"fraction", "rating", "position"})),
                          IngestConfig(unknown_titles="accept"))
        store.ingest_file(write_jsonl(folder / "b.jsonl", b), IngestConfig(unknown_titles="accept"))
        stored = store.read("events", ["event_id"]).column("event_id").to_pylist()
    assert sorted(stored) == sorted(ids_a | ids_b)
