"""Fill an online store from the event store: every user's and title's features as of a time (the same offline
definitions, point in time) and each user's latest engagements. The worker keeps them fresh afterwards; serving
only reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from streamrec.features.definitions import BUILTIN, Definition
from streamrec.features.offline import KEY, category_codes
from streamrec.features.snapshot import entity_features
from streamrec.storage.online.base import HistoryEntry, OnlineStore

ENGAGEMENTS = ("play", "progress", "complete", "rating", "add_to_list")


@dataclass
class MaterializeReport:
    at: datetime
    rows: dict[str, int] = field(default_factory=dict)  # entity → vectors written
    histories: int = 0
    history_entries: int = 0


def feature_columns(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """The feature columns of an entity_features table (after its key) as float32, categories as stable codes."""
    return feature_matrix(table.drop_columns(table.column_names[:1]))


def feature_matrix(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """Every column of `table` as float32 features (rows × columns), categories (strings) as stable codes."""
    names, columns = [], []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type):
            values = category_codes(column.to_pylist())
        else:
            values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        names.append(name)
        columns.append(values)
    matrix = np.column_stack(columns).astype(np.float32) if columns else np.zeros((table.num_rows, 0), np.float32)
    return names, matrix


def materialize(con: duckdb.DuckDBPyConnection, store: OnlineStore, at: datetime, events: str = "events",
                definitions: Sequence[Definition] = BUILTIN, history_length: int = 200,
                histories: bool = True) -> MaterializeReport:
    """Write the user and title features of everyone with events before `at`, and (unless `histories` is False:
    features only, e.g. for a newly loaded model's definitions) the latest `history_length` engagements of each
    user, into `store`."""
    report = MaterializeReport(at=at)
    for entity in ("user", "title"):
        key = KEY[entity]
        keys = [r[0] for r in con.execute(f"SELECT DISTINCT {key} FROM {events} WHERE ts < ? ORDER BY 1",
                                          [at]).fetchall()]
        table = entity_features(con, entity, keys, at, tuple(definitions), events)
        names, matrix = feature_columns(table)
        report.rows[entity] = store.put_features(entity, names, table.column(0).to_pylist(), matrix, at)
    if not histories:
        return report
    types = ", ".join(f"'{t}'" for t in ENGAGEMENTS)
    rows = con.execute(
        f"SELECT user_id, item_id, ts, type, fraction FROM (SELECT *, row_number() OVER (PARTITION BY user_id "
        f"ORDER BY ts DESC) AS n FROM {events} WHERE ts < ? AND type IN ({types})) WHERE n <= ? "
        "ORDER BY user_id, ts", [at, history_length]).fetchall()
    per_user: dict[str, list[HistoryEntry]] = {}
    for user, item, ts, kind, fraction in rows:
        per_user.setdefault(user, []).append(HistoryEntry(item, ts, kind, fraction))
    for user, entries in per_user.items():
        store.add_history(user, entries)
    report.histories, report.history_entries = len(per_user), len(rows)
    return report
