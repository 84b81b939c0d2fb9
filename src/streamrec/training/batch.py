"""Batch scoring: top-k for many users at once, in chunks, written to CSV or Parquet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError, DataError
from streamrec.models.base import Recommender, top_k


def recommend_batch(
    model: Recommender,
    data: Interactions,
    user_ids: np.ndarray,
    k: int,
    chunk_size: int = 2048,
    exclude_seen: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """Top-k per user as a long table (user_id, rank, item_id, score, source).

    Histories come from `data` mapped onto the model's item vocabulary. Users without any history get the
    documented fallback: the most popular titles of `data` (source 'popular'); others get source 'model'.
    """
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    model_items = np.asarray(model.item_ids_, dtype=object)
    aligned = Interactions.from_table(_long(data), user_ids=data.user_ids, item_ids=model_items)
    rows = aligned.users_to_rows(user_ids)
    model_rows = _model_rows(model, user_ids)
    popularity = np.asarray(aligned.matrix.sum(axis=0)).ravel()
    popular_idx, popular_scores = top_k(popularity[None, :].astype(np.float32), k)
    parts = []
    for start in range(0, len(user_ids), chunk_size):
        stop = min(start + chunk_size, len(user_ids))
        history = aligned.history(rows[start:stop])
        idx, scores = model.recommend(history, k=k, users=model_rows[start:stop], exclude_seen=exclude_seen)
        cold = (np.diff(history.indptr) == 0) & (model_rows[start:stop] < 0)  # nothing to go on: fallback
        idx[cold], scores[cold] = popular_idx[0], popular_scores[0]
        n, kk = idx.shape
        parts.append(pa.table({
            "user_id": pa.array(np.repeat(user_ids[start:stop], kk), pa.string()),
            "rank": pa.array(np.tile(np.arange(1, kk + 1, dtype=np.int32), n)),
            "item_id": pa.array(model_items[idx.ravel()], pa.string()),
            "score": pa.array(scores.ravel().astype(np.float32)),
            "source": pa.array(np.repeat(np.where(cold, "popular", "model"), kk), pa.string()),
        }))
        if on_progress:
            on_progress(stop, len(user_ids))
    if not parts:
        raise DataError("recommend", "no users to recommend for")
    return pa.concat_tables(parts)


def _model_rows(model: Recommender, user_ids: np.ndarray) -> np.ndarray:
    """Each user's row in the model's own training users (-1 if unknown, or if the model keeps no user state)."""
    known = getattr(model, "user_ids_", None)
    if known is None:
        return np.full(len(user_ids), -1, dtype=np.int64)
    index = {u: i for i, u in enumerate(np.asarray(known).tolist())}
    return np.fromiter((index.get(u, -1) for u in user_ids), dtype=np.int64, count=len(user_ids))


def _long(data: Interactions) -> pa.Table:
    coo = data.matrix.tocoo()
    return pa.table({"user_id": pa.array(data.user_ids[coo.row], pa.string()),
                     "item_id": pa.array(data.item_ids[coo.col], pa.string()),
                     "weight": pa.array(coo.data, pa.float32())})


def write_table(table: pa.Table, path: Path | str) -> Path:
    """CSV or Parquet by the file name's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        pq.write_table(table, path, compression="zstd")
    elif path.suffix.lower() in (".csv", ".gz"):
        pacsv.write_csv(table, path)
    else:
        raise ConfigError(f"{path}: write recommendations to a .csv or .parquet file")
    return path
