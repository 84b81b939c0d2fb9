"""Typed Parquet takes a per-schema fast path (checks its types rule out are skipped, valid rows stop at the shared
fast-path tests); every check that can still fail applies, with the same reasons as the CSV path."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrec.events.ingest import _clean_columns
from streamrec.events.rules import (
    RAW,
    always_reads,
    build_rules,
    clean_values_sql,
    first_failing_sql,
    kept_raw_columns,
    reason_index_sql,
    typed_columns,
)
from streamrec.events.schema import COLUMN_BY_NAME
from streamrec.events.staging import _dictionary_columns, stage_file
from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
from streamrec.storage.events.duckdb import DuckDBEventStore
from tests.helpers import write_csv

TS = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)
GOOD = {"event_id": "e", "user_id": "u1", "item_id": "t1", "type": "play", "ts": TS, "request_id": None,
        "position": None, "row": None, "device": "tv", "fraction": None, "rating": None}
# (changes to a good row, the reason, the field): each makes exactly one row invalid
BAD = [
    ({"type": "impression", "position": 20_000}, "out_of_range", "position"),
    ({"type": "impression", "position": -1}, "out_of_range", "position"),
    ({"type": "progress", "fraction": 1.5}, "out_of_range", "fraction"),
    ({"type": "progress", "fraction": math.nan}, "out_of_range", "fraction"),
    ({"type": "rating", "rating": math.inf}, "out_of_range", "rating"),
    ({"user_id": "a\tb"}, "bad_id", "user_id"),
    ({"request_id": "r\x7f1"}, "bad_id", "request_id"),
    ({"event_id": "e\x01"}, "bad_id", "event_id"),
    ({"row": "Top\x00Picks"}, "nul_byte", "row"),
    ({"type": "teleport"}, "bad_enum", "type"),
    ({"type": "Play\x00"}, "nul_byte", "type"),
    ({"item_id": "x" * 200}, "too_long", "item_id"),
    ({"device": "d" * 40}, "too_long", "device"),
    ({"user_id": "   "}, "missing", "user_id"),
    ({"user_id": None}, "missing", "user_id"),
    ({"ts": None}, "missing", "ts"),
    ({"ts": datetime(1990, 1, 1, tzinfo=timezone.utc)}, "ts_too_old", "ts"),
    ({"ts": datetime(2999, 1, 1, tzinfo=timezone.utc)}, "ts_future", "ts"),
    ({"type": "impression"}, "type_field_missing", "position"),
    ({"type": "rating"}, "type_field_missing", "rating"),
]
# valid rows that still leave the fast path (or normalize): they must be stored, not quarantined
ODD_BUT_VALID = [{"row": "Top\tPicks"}, {"user_id": "  u9  "}, {"type": " PLAY "}, {"device": None},
                 {"type": "progress", "fraction": 1.0}, {"type": "impression", "position": 0}]


def typed_table(rows: list[dict]) -> pa.Table:
    return pa.table({
        "event_id": pa.array([r["event_id"] for r in rows], pa.string()),
        "user_id": pa.array([r["user_id"] for r in rows], pa.string()),
        "item_id": pa.array([r["item_id"] for r in rows], pa.string()),
        "type": pa.array([r["type"] for r in rows], pa.string()),
        "ts": pa.array([r["ts"] for r in rows], pa.timestamp("us", tz="UTC")),
        "request_id": pa.array([r["request_id"] for r in rows], pa.string()),
        "position": pa.array([r["position"] for r in rows], pa.int32()),
        "row": pa.array([r["row"] for r in rows], pa.string()),
        "device": pa.array([r["device"] for r in rows], pa.string()),
        "fraction": pa.array([r["fraction"] for r in rows], pa.float64()),
        "rating": pa.array([r["rating"] for r in rows], pa.float64()),
    })


def as_csv_row(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if value is None:
            out[key] = ""
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, float) and math.isnan(value):
            out[key] = "NaN"
        elif isinstance(value, float) and math.isinf(value):
            out[key] = "inf"
        else:
            out[key] = value
    return out


def file_rows() -> list[dict]:
    rows = []
    for i, (changes, _, _) in enumerate(BAD):
        rows.append({**GOOD, "event_id": f"bad{i}", **changes})
        rows.append({**GOOD, "event_id": f"ok{i}"})
    for i, changes in enumerate(ODD_BUT_VALID):
        rows.append({**GOOD, "event_id": f"odd{i}", **changes})
    rows += [{**GOOD, "event_id": "ok0"}, {**GOOD, "event_id": "seen"}]  # a repeat within the file; one stored before
    return rows


def quarantine(store) -> list[tuple]:
    return sorted((r["row"], r["reason"], r["field"]) for r in store.read("quarantine").to_pylist())


def ingest(tmp_path: Path, name: str, path: Path):
    store = DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / f"{name}.duckdb")
    store.ingest_file(write_csv(tmp_path / f"{name}-before.csv", [as_csv_row({**GOOD, "event_id": "seen"})]),
                      IngestConfig())
    report = store.ingest_file(path, IngestConfig())
    return store, report


def test_typed_parquet_quarantines_like_csv(tmp_path):
    rows = file_rows()
    pq.write_table(typed_table(rows), tmp_path / "a.parquet")
    parquet_store, parquet = ingest(tmp_path, "p", tmp_path / "a.parquet")
    csv_path = write_csv(tmp_path / "a.csv", [as_csv_row(r) for r in rows], list(GOOD))
    csv_store, csv = ingest(tmp_path, "c", csv_path)
    with parquet_store, csv_store:
        assert parquet.quarantined == len(BAD) and parquet.duplicates == 2
        assert parquet.stored == len(rows) - len(BAD) - 2
        assert (parquet.read, parquet.stored, parquet.duplicates, parquet.by_reason) == \
               (csv.read, csv.stored, csv.duplicates, csv.by_reason)
        # same reasons and fields; Parquet rows count from 1 (no header line), CSV lines from 2
        expected = sorted((2 * i + 1, reason, field) for i, (_, reason, field) in enumerate(BAD))
        assert [(r - 1, c, f) for r, c, f in quarantine(csv_store)] == quarantine(parquet_store) == expected
        stored = {r["event_id"]: r for r in parquet_store.read("events").to_pylist()}
        bad_rows = range(0, 2 * len(BAD), 2)
        assert sorted(stored) == sorted({r["event_id"] for i, r in enumerate(rows) if i not in bad_rows})
        assert stored["seen"]["batch_id"] == 1  # stored before, so this file's copy is a duplicate
        assert stored["odd1"]["user_id"] == "u9" and stored["odd2"]["type"] == "play"
        assert stored["odd0"]["row"] == "Top\tPicks"
        details = {r["reason"] + ":" + r["field"]: r["detail"] for r in parquet_store.read("quarantine").to_pylist()}
        assert "outside [0, 10000]" in details["out_of_range:position"]
        assert details["bad_id:event_id"] == "contains control characters"


def test_checks_the_parquet_types_rule_out_are_skipped():
    typed = {"event_id": "VARCHAR", "user_id": "VARCHAR", "item_id": "VARCHAR", "type": "VARCHAR",
             "ts": "TIMESTAMP WITH TIME ZONE", "position": "INTEGER", "fraction": "DOUBLE", "rating": "FLOAT"}
    rules = build_rules(IngestConfig(), typed, False, False)
    assert not [r for r in rules if r.code == "bad_type"]
    assert kept_raw_columns(typed) == []
    # a type that may not read (a BIGINT can overflow INTEGER, a DATE can lie outside TIMESTAMP) keeps its check
    loose = {**typed, "position": "BIGINT", "ts": "DATE"}
    assert {r.field for r in build_rules(IngestConfig(), loose, False, False) if r.code == "bad_type"} == {"position", "ts"}
    assert kept_raw_columns(loose) == ["ts", "position"]
    assert not always_reads(COLUMN_BY_NAME["position"], "VARCHAR")


def test_rows_with_unreadable_values_in_loose_parquet_types_are_quarantined(tmp_path):
    table = typed_table([{**GOOD, "event_id": "a", "type": "impression", "position": 1},
                         {**GOOD, "event_id": "b", "type": "impression", "position": 2}])
    table = table.set_column(6, "position", pa.array([3, 2**40], pa.int64()))
    pq.write_table(table, tmp_path / "a.parquet")
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "s.duckdb") as store:
        report = store.ingest_file(tmp_path / "a.parquet", IngestConfig())
        assert (report.stored, report.by_reason) == (1, {"bad_type": 1})
        assert quarantine(store) == [(2, "bad_type", "position")]


STAGINGS = {
    "text": {c: "VARCHAR" for c in GOOD},
    "typed": {**{c: "VARCHAR" for c in GOOD}, "ts": "TIMESTAMP WITH TIME ZONE", "position": "INTEGER",
              "fraction": "DOUBLE", "rating": "DOUBLE"},
}
texts = st.one_of(st.none(), st.sampled_from(["", " ", "x", "  a  ", "a\tb", "\x00", "\x7f", "é", "\u3000b", "b" * 200,
                                               "play", "Rating", "impression", "progress"]), st.text(max_size=5))
numbers = st.one_of(st.none(), st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 0.5, 1.0, 3.0, 1e4, 2e4]))


FIELDS = {"event_id": texts, "user_id": texts, "item_id": texts, "type": texts, "request_id": texts, "row": texts,
          "device": texts, "position": numbers, "fraction": numbers, "rating": numbers,
          "ts": st.sampled_from([None, TS, datetime(1990, 1, 1, tzinfo=timezone.utc),
                                 datetime(2999, 1, 1, tzinfo=timezone.utc)])}
# mostly valid rows with one or two odd fields, so that the fast-path tests decide (a random row fails many rules)
odd_rows = st.lists(st.dictionaries(st.sampled_from(sorted(FIELDS)), st.none(), min_size=1, max_size=2).flatmap(
    lambda keys: st.fixed_dictionaries({k: FIELDS[k] for k in keys})).map(lambda changes: {**GOOD, **changes}),
    min_size=1, max_size=30)


def source_table(rows: list[dict], staged_types: dict[str, str]) -> pa.Table:
    cols = []
    for name, sql_type in staged_types.items():
        values = [r[name] for r in rows]
        if sql_type == "INTEGER":
            values = [None if v is None or not math.isfinite(v) or abs(v) > 2**31 else int(v) for v in values]
            cols.append(pa.array(values, pa.int32()))
        elif sql_type == "DOUBLE":
            cols.append(pa.array(values, pa.float64()))
        elif sql_type.startswith("TIMESTAMP"):
            cols.append(pa.array(values, pa.timestamp("us", tz="UTC")))
        else:
            cols.append(pa.array([None if v is None else str(as_csv_row({"v": v})["v"]) for v in values], pa.string()))
    return pa.table(cols, names=[f"{RAW}{n}" for n in staged_types])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=odd_rows, staging=st.sampled_from(sorted(STAGINGS)))
def test_fast_path_never_passes_a_row_that_a_rule_fails(rows, staging):
    """The guarded reason equals the plain first-failing-rule reason on every row (the fast path is sound)."""
    staged_types = STAGINGS[staging]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("src", source_table(rows, staged_types))
    for check_titles in (False, True):
        rules = build_rules(IngestConfig(), staged_types, check_titles, False)
        known = ", \"t_item_id\" IN ('t1', 'x') AS known_title" if check_titles else ""
        got = con.execute(
            f"SELECT {reason_index_sql(rules)}, {first_failing_sql(rules)} FROM "
            f"(SELECT *{known} FROM (SELECT *, {', '.join(typed_columns(staged_types))} FROM src))"
        ).fetchall()
        assert [g for g, _ in got] == [w for _, w in got]


@pytest.mark.parametrize("value", ["impression", " Play", "RATING "])
def test_event_type_is_normalized_the_same_on_both_paths(value):
    con = duckdb.connect()
    expr = [t for t in typed_columns({"type": "VARCHAR"}) if t.endswith('"t_type"')][0]
    assert con.execute(f"SELECT {expr} FROM (SELECT ? AS {RAW}type)", [value]).fetchall()[0][0] == value.strip().lower()


# --- per-file look at the distinct values of dictionary-encoded text columns ------------------------------------
def clean_rows(n: int = 200) -> list[dict]:
    """A file's worth of valid rows whose text columns (other than the ids) take a few values each."""
    types = ["play", "complete", "add_to_list"]
    return [{**GOOD, "event_id": f"c{i}", "user_id": f"u{i % 7}", "item_id": f"t{i % 11}", "type": types[i % 3],
             "device": ["tv", "web"][i % 2], "row": "Top Picks"} for i in range(n)]


def checked_columns(path: Path) -> frozenset[str]:
    con = duckdb.connect()
    staged = stage_file(con, path, "parquet")
    return _clean_columns(con, staged)


def test_a_clean_file_skips_the_per_row_text_checks_and_stores_the_same(tmp_path):
    rows = clean_rows()
    pq.write_table(typed_table(rows), tmp_path / "a.parquet")
    assert {"user_id", "item_id", "type", "device", "row"} <= checked_columns(tmp_path / "a.parquet")
    parquet_store, parquet = ingest(tmp_path, "p", tmp_path / "a.parquet")
    csv_store, csv = ingest(tmp_path, "c", write_csv(tmp_path / "a.csv", [as_csv_row(r) for r in rows], list(GOOD)))
    with parquet_store, csv_store:
        assert (parquet.stored, parquet.quarantined) == (csv.stored, csv.quarantined) == (len(rows), 0)
        cols = ["event_id", "user_id", "item_id", "type", "ts", "device", "row"]
        assert sorted(parquet_store.read("events", cols).to_pylist(), key=str) == \
               sorted(csv_store.read("events", cols).to_pylist(), key=str)


# one dirty value among clean ones: the column must keep its per-row checks (or its normalization)
DIRTY = [
    ("user_id", "a\tb", ("bad_id", "user_id")),
    ("user_id", "   ", ("missing", "user_id")),
    ("item_id", "x" * 200, ("too_long", "item_id")),
    ("item_id", "t\x7f", ("bad_id", "item_id")),
    ("row", "Top\x00Picks", ("nul_byte", "row")),
    ("device", "d" * 40, ("too_long", "device")),
    ("type", "teleport", ("bad_enum", "type")),
    ("type", "Play\x00", ("nul_byte", "type")),
    ("user_id", "  u9  ", "u9"),  # valid once trimmed
    ("device", " tv", "tv"),
    ("type", " PLAY ", "play"),
    ("row", "Top\tPicks", "Top\tPicks"),  # a tab inside a row name is allowed: the column stays clean
]


@pytest.mark.parametrize("field,value,outcome", DIRTY)
def test_one_dirty_value_among_clean_ones_is_still_caught(tmp_path, field, value, outcome):
    rows = clean_rows()
    rows[137] = {**rows[137], field: value}
    pq.write_table(typed_table(rows), tmp_path / "a.parquet")
    clean = checked_columns(tmp_path / "a.parquet")
    assert (field in clean) == (outcome == value)  # a value stored as written leaves the column clean
    assert "device" in clean or field == "device"
    store, report = ingest(tmp_path, "p", tmp_path / "a.parquet")
    with store:
        if isinstance(outcome, tuple):
            assert (report.stored, report.quarantined) == (len(rows) - 1, 1)
            assert quarantine(store) == [(138, *outcome)]  # Parquet rows count from 1
        else:
            assert (report.stored, report.quarantined) == (len(rows), 0)
            stored = {r["event_id"]: r for r in store.read("events").to_pylist()}
            assert stored["c137"][field] == outcome


def test_clean_values_sql_judges_values_like_the_rules():
    con = duckdb.connect()

    def clean(name, values):
        con.register("v", pa.table({f"{RAW}{name}": pa.array(values, pa.string())}))
        return con.execute(clean_values_sql(name, "v")).fetchall()[0][0]

    assert clean("user_id", ["u1", "u2", None]) and clean("user_id", [])
    assert not clean("user_id", ["u1", " u2"]) and not clean("user_id", ["u1", ""]) and not clean("user_id", ["a\x01"])
    assert clean("type", ["play", "rating"]) and not clean("type", ["play", "Play"]) and not clean("type", ["x"])
    assert clean("row", ["Top\tPicks"]) and not clean("row", ["a\x00"]) and not clean("row", ["r" * 65])


def test_only_dictionary_encoded_columns_are_looked_at(tmp_path):
    n = 300_000
    table = pa.table({"event_id": pa.array([f"event-{i:09d}" for i in range(n)]),
                      "device": pa.array(["tv", "web", "mobile"] * (n // 3))})
    pq.write_table(table, tmp_path / "a.parquet")
    pq.write_table(table, tmp_path / "plain.parquet", use_dictionary=False)
    assert _dictionary_columns(tmp_path / "a.parquet", ["event_id", "device"]) == ["device"]
    assert _dictionary_columns(tmp_path / "plain.parquet", ["event_id", "device"]) == []


def test_the_ids_control_character_test_is_sound():
    """The ids' shared fast-path test (JSON length + DEL) never passes a text the control-character rule fails."""
    con = duckdb.connect()
    texts = [f"a{chr(c)}b" for c in range(0x3000) if not 0xD800 <= c <= 0xDFFF] + ["\x00", "\x1f", "\x7f", ""]
    rules = build_rules(IngestConfig(), {"event_id": "VARCHAR"}, False, False)
    fast = next(r.passes for r in rules if r.code == "bad_id")
    rule = next(r.condition for r in rules if r.code == "bad_id")
    con.register("v", pa.table({"t_event_id": pa.array(texts)}))
    got = con.execute(f"SELECT t_event_id, {fast}, {rule} FROM v").fetchall()
    assert not [t for t, passes, fails in got if passes and fails]
    assert sum(1 for _, passes, _ in got if not passes) >= 34  # the 33 control characters, a quote, a backslash


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=odd_rows, staging=st.sampled_from(sorted(STAGINGS)))
def test_clean_columns_change_neither_reasons_nor_values(rows, staging):
    """Columns found clean (over the rows' own distinct values) are typed as written and leave the fast path: every
    row still gets the reason and the typed values it gets with every per-row check."""
    staged_types = STAGINGS[staging]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("src", source_table(rows, staged_types))
    texts = [n for n, t in staged_types.items() if t == "VARCHAR" and COLUMN_BY_NAME[n].sql_type == "VARCHAR"]
    clean = frozenset(n for n in texts if con.execute(
        clean_values_sql(n, f'(SELECT DISTINCT "{RAW}{n}" FROM src)')).fetchall()[0][0])
    names = ", ".join(f'"t_{n}"' for n in staged_types)
    plain = build_rules(IngestConfig(), staged_types, False, False)
    fast = build_rules(IngestConfig(), staged_types, False, False, clean)
    want = con.execute(f"SELECT {first_failing_sql(plain)}, {names} FROM "
                       f"(SELECT *, {', '.join(typed_columns(staged_types))} FROM src)").fetchall()
    got = con.execute(f"SELECT {reason_index_sql(fast)}, {names} FROM "
                      f"(SELECT *, {', '.join(typed_columns(staged_types, clean))} FROM src)").fetchall()
    assert [w[0] for w in want] == [g[0] for g in got]  # same rule order, same first failure
    valid = [i for i, w in enumerate(want) if w[0] is None]
    assert [repr(want[i]) for i in valid] == [repr(got[i]) for i in valid]
