"""Batch data-quality summary: exact counts on a hand-built table."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from streamrec.errors import DataError, NotFound
from streamrec.events.schema import EVENT_ARROW_SCHEMA, EVENT_COLUMN_NAMES, EVENT_TYPES, events_table_ddl
from streamrec.preprocess import QualitySummary, batch_quality

T0 = datetime(2024, 3, 1, 12, 0)


def ev(event_id: str, user: str, item: str, type_: str, hours: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "item_id": item,
        "type": type_,
        "ts": T0 + timedelta(hours=hours),
        **fields,
    }


ROWS = [
    ev("e1", "u1", "a", "impression", -30, position=0, request_id="r1", row="top"),  # late (30h before newest)
    ev("e2", "u1", "a", "play", -25, device="tv"),  # late
    ev("e3", "u1", "a", "progress", -23, fraction=0.5, watched_s=600.0),  # not late (23h)
    ev("e4", "u2", "b", "complete", -1, fraction=1.0, watched_s=1200.0),
    ev("e4", "u2", "b", "complete", -1, fraction=1.0, watched_s=1200.0),  # duplicate id
    ev("e5", "u2", "c", "rating", 0, rating=4.5),
    ev("e6", "u3", "c", "rating", 0, rating=4.4),  # histogram bucket 4.5
    ev("e7", "u3", "d", "rating", 0, rating=1.0),
    ev("e8", "u3", "d", "add_to_list", 0),
    ev("e8", "u3", "new1", "play", 0),  # duplicate id again
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(events_table_ddl("events"))
    batch = pa.Table.from_pylist(ROWS, schema=EVENT_ARROW_SCHEMA)  # noqa: F841 - read by DuckDB by name
    con.execute("INSERT INTO events BY NAME SELECT * FROM batch")
    con.execute("CREATE TABLE titles (item_id VARCHAR, title VARCHAR)")
    con.execute("INSERT INTO titles VALUES ('a', 'A'), ('b', 'B'), ('c', 'C'), ('d', 'D'), ('d', 'D again')")
    return con


def test_counts_are_exact(con):
    q = batch_quality(con, "events")
    assert (q.rows, q.users, q.titles) == (10, 3, 5)
    assert q.events_per_type == {
        "impression": 1,
        "play": 2,
        "progress": 1,
        "complete": 2,
        "rating": 3,
        "add_to_list": 1,
    }
    assert set(q.null_rate) == set(EVENT_COLUMN_NAMES)
    assert q.null_rate["event_id"] == 0.0
    assert q.null_rate["position"] == pytest.approx(0.9)
    assert q.null_rate["watched_s"] == pytest.approx(0.7)
    assert q.null_rate["rating"] == pytest.approx(0.7)
    assert q.null_rate["device"] == pytest.approx(0.9)
    assert (q.ts_min, q.ts_max) == (T0 - timedelta(hours=30), T0)
    assert q.late_events == 2 and q.late_after_h == 24.0
    assert q.duplicate_event_ids == 2
    assert q.rating.count == 3
    assert (q.rating.min, q.rating.max) == (1.0, 4.5)
    assert q.rating.mean == pytest.approx((4.5 + 4.4 + 1.0) / 3)
    assert q.rating.median == pytest.approx(4.4)
    assert q.rating.histogram == {1.0: 1, 4.5: 2}
    assert q.new_title_events is None and q.future_events is None and q.freshness_s is None


def test_late_window_is_configurable(con):
    assert batch_quality(con, "events", late_after_h=0.5).late_events == 5
    assert batch_quality(con, "events", late_after_h=48).late_events == 0


def test_new_titles_and_now(con):
    now = datetime(2024, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=1)))  # = 11:30 UTC
    q = batch_quality(con, "events", now=now, known_items="titles")
    assert (q.new_title_events, q.new_titles) == (1, 1)
    assert q.new_title_share == pytest.approx(0.1)
    assert q.future_events == 5  # the five events at 12:00 UTC
    assert q.freshness_s == -1800.0
    d = q.as_dict()
    json.dumps(d)  # JSON-ready
    assert d["ts_max"] == "2024-03-01T12:00:00" and d["rating"]["histogram"] == {"1": 1, "4.5": 2}


def test_unknown_types_and_empty_batches(con):
    con.execute("INSERT INTO events (event_id, user_id, item_id, type, ts) VALUES ('x', 'u9', 'a', 'weird', ?)", [T0])
    q = batch_quality(con, "events")
    assert q.events_per_type["other"] == 1 and q.rows == 11
    con.execute("CREATE TEMP VIEW nothing AS SELECT * FROM events WHERE false")
    empty = batch_quality(con, "nothing", known_items="titles")
    assert isinstance(empty, QualitySummary)
    assert (empty.rows, empty.users, empty.late_events, empty.duplicate_event_ids) == (0, 0, 0, 0)
    assert empty.events_per_type == dict.fromkeys(EVENT_TYPES, 0)
    assert all(rate == 0.0 for rate in empty.null_rate.values())
    assert empty.ts_max is None and empty.rating.count == 0 and empty.rating.histogram == {}
    assert empty.new_title_share == 0.0


def test_bad_relations_are_named(con):
    with pytest.raises(NotFound, match="nope"):
        batch_quality(con, "nope")
    con.execute("CREATE TABLE half AS SELECT event_id, user_id FROM events")
    with pytest.raises(DataError, match="half: missing column"):
        batch_quality(con, "half")
