"""User × title feature "similarity to recent watches": the largest cosine similarity, in the ALS item space, between
a candidate and the user's last few watched titles. EASE's score looks at the whole history at once; this one asks
whether the candidate is like what the user is watching now. Offline and online both call `recent_similarity`, the
recent titles coming from the event store (offline) or the online store's history (online)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

NAME = "recent_watch_similarity"
RECENT = 5  # the last titles watched
ENGAGED = ("play", "progress", "complete")


def recent_titles(con: duckdb.DuckDBPyConnection, events: str, user_ids: Sequence[str], at: datetime,
                  n: int = RECENT) -> dict[str, list[str]]:
    """Each user's last `n` distinct titles engaged with before `at`, latest first (offline)."""
    types = ", ".join(f"'{t}'" for t in ENGAGED)
    con.register("__recent_users", pa.table({"user_id": pa.array([str(u) for u in user_ids], pa.string())}))
    try:
        rows = con.execute(
            f"SELECT user_id, item_id FROM (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY last DESC, "
            f"item_id) AS n FROM (SELECT e.user_id, e.item_id, max(e.ts) AS last FROM {events} e "
            f"JOIN __recent_users u ON u.user_id = e.user_id WHERE e.ts < ? AND e.type IN ({types}) GROUP BY ALL)) "
            "WHERE n <= ? ORDER BY user_id, last DESC, item_id", [at, n]).fetchall()
    finally:
        con.unregister("__recent_users")
    out: dict[str, list[str]] = {}
    for user, item in rows:
        out.setdefault(user, []).append(item)
    return out


def latest_distinct(entries: Sequence, at: datetime, n: int = RECENT) -> list[str]:
    """The same from an online history (entries with item_id, ts, type; any order): latest first."""
    last: dict[str, datetime] = {}
    for e in entries:
        if e.type in ENGAGED and e.ts < at and (e.item_id not in last or e.ts > last[e.item_id]):
            last[e.item_id] = e.ts
    return [item for item, _ in sorted(last.items(), key=lambda kv: (-kv[1].timestamp(), kv[0]))][:n]


def unit_vectors(item_factors: np.ndarray) -> np.ndarray:
    """The item factors scaled to length 1 (computed once per model: a request must not redo it)."""
    norms = np.linalg.norm(item_factors, axis=1, keepdims=True)
    return (item_factors / np.maximum(norms, 1e-12)).astype(np.float32)


def recent_similarity(unit: np.ndarray, index: Mapping[str, int], recent: Mapping[int, Sequence[str]],
                      rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Per (row, col) candidate: the max cosine between col's unit vector (`unit_vectors`) and those of row's
    recent titles (NaN when the row has none the model knows)."""
    out = np.full(len(rows), np.nan, dtype=np.float32)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    for row, titles in recent.items():
        known = [index[t] for t in titles if t in index]
        if not known:
            continue
        mine = order[np.searchsorted(sorted_rows, row):np.searchsorted(sorted_rows, row, side="right")]
        if len(mine):
            out[mine] = (unit[cols[mine]] @ unit[known].T).max(axis=1)
    return out
