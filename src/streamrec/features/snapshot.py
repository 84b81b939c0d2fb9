"""Feature snapshots: every user's and every title's features as of one time, written as Parquet beside the store."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from streamrec.errors import DataError
from streamrec.features.definitions import BUILTIN, Feature, select
from streamrec.features.offline import KEY, has_table, point_in_time


@dataclass
class SnapshotReport:
    """What `build_snapshot` wrote: rows and features per entity, the time, the files."""

    at: datetime
    rows: dict[str, int] = field(default_factory=dict)
    features: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def events_relation(con: duckdb.DuckDBPyConnection) -> str:
    """The events features read: the store's events without those of users `streamrec preprocess` flagged as bots
    (a bot's plays would inflate every title it touched)."""
    if not has_table(con, "bots"):
        return "events"
    con.execute("CREATE OR REPLACE TEMP VIEW feature_events AS "
                "SELECT * FROM events WHERE user_id NOT IN (SELECT user_id FROM bots)")
    return "feature_events"


def default_time(con: duckdb.DuckDBPyConnection, events: str = "events") -> datetime:
    """Just after the newest stored event, so a snapshot sees all of them.

    Raises:
        DataError: no events stored yet.
    """
    newest = con.execute(f"SELECT max(ts) FROM {events}").fetchall()[0][0]
    if newest is None:
        raise DataError("event store", "no events yet (run `streamrec ingest` first)")
    return newest + timedelta(seconds=1)


def entity_features(con: duckdb.DuckDBPyConnection, entity: str, keys: list[str], at: datetime,
                    features: tuple[Feature, ...] = BUILTIN, events: str = "events") -> pa.Table:
    """The features of `entity` ("user" or "title") for each key as of `at`."""
    chosen = select(entity=entity, features=features)  # type: ignore[arg-type]
    spine = pa.table({KEY[entity]: pa.array(keys, pa.string()),
                      "ts": pa.array([at] * len(keys), pa.timestamp("us"))})
    return point_in_time(con, spine, chosen, events).drop_columns(["ts"])


def build_snapshot(con: duckdb.DuckDBPyConnection, out_dir: Path, at: datetime | None = None,
                   features: tuple[Feature, ...] = BUILTIN) -> SnapshotReport:
    """Compute the user and title features of everyone with events (bots left out) as of `at` (default:
    `default_time`) and write
    OUT_DIR/users.parquet and OUT_DIR/titles.parquet (each replaced atomically: a reader sees the old or new file).
    """
    began = time.perf_counter()
    events = events_relation(con)
    at = at or default_time(con, events)
    report = SnapshotReport(at=at)
    out_dir.mkdir(parents=True, exist_ok=True)
    for entity, file in (("user", "users.parquet"), ("title", "titles.parquet")):
        key = KEY[entity]
        keys = [r[0] for r in con.execute(f"SELECT DISTINCT {key} FROM {events} WHERE ts < ? ORDER BY 1",
                                          [at]).fetchall()]
        table = entity_features(con, entity, keys, at, features, events)
        table = table.replace_schema_metadata({b"as_of": at.isoformat().encode()})
        path = out_dir / file
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        report.rows[entity] = table.num_rows
        report.features[entity] = table.num_columns - 1
        report.files[entity] = path
    report.seconds = time.perf_counter() - began
    return report
