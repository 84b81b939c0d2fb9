"""The training view of the data: a users × titles matrix of implicit-feedback weights with id vocabularies.

Built from a long table (user_id, item_id, weight[, ts, rating]) — the `interactions` table that
`streamrec preprocess` writes, a split of it, or a user's own CSV. Rows and columns are in sorted id
order, so the same table always gives the same matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from streamrec.errors import DataError


@dataclass(frozen=True)
class Interactions:
    """Weights of users (rows) on titles (columns), float32 CSR; `user_ids[i]` / `item_ids[j]` name them.

    `last_ts` (optional) holds the time of each pair's last interaction in epoch seconds, in the same
    sparsity pattern as `matrix` (for time-decayed models); `item_meta` is optional per-title data.
    """

    matrix: sparse.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    last_ts: sparse.csr_matrix | None = None
    item_meta: pa.Table | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        n_users, n_items = self.matrix.shape
        if len(self.user_ids) != n_users or len(self.item_ids) != n_items:
            raise DataError("interactions", f"matrix {self.matrix.shape} does not match "
                                            f"{len(self.user_ids)} user ids × {len(self.item_ids)} item ids")

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    @cached_property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids.tolist())}

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.item_ids.tolist())}

    def users_to_rows(self, user_ids: np.ndarray | list[str]) -> np.ndarray:
        """Row of each user id, -1 for users not in the data (never an exception: cold start is normal)."""
        index = self.user_index
        return np.fromiter((index.get(u, -1) for u in user_ids), dtype=np.int64, count=len(user_ids))

    def items_to_cols(self, item_ids: np.ndarray | list[str]) -> np.ndarray:
        """Column of each item id, -1 for titles not in the data."""
        index = self.item_index
        return np.fromiter((index.get(t, -1) for t in item_ids), dtype=np.int64, count=len(item_ids))

    def history(self, rows: np.ndarray) -> sparse.csr_matrix:
        """The weight rows of the given users (row -1 gives an empty history)."""
        rows = np.asarray(rows, dtype=np.int64)
        if (rows >= 0).all():
            return self.matrix[rows]
        out = sparse.lil_matrix((len(rows), self.n_items), dtype=np.float32)
        known = np.flatnonzero(rows >= 0)
        if len(known):
            out[known] = self.matrix[rows[known]]
        return out.tocsr()

    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        user_col: str = "user_id",
        item_col: str = "item_id",
        weight_col: str | None = "weight",
        ts_col: str | None = "last_ts",
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
    ) -> "Interactions":
        """Build from a long table. Repeated (user, item) pairs are summed (their last time kept).

        Args:
            weight_col: None (or absent) gives every pair weight 1.
            ts_col: time column (timestamp or epoch seconds); None or absent: no `last_ts`.
            user_ids / item_ids: fixed vocabularies (e.g. the training data's); rows whose ids are not in them
                are dropped. Default: the sorted distinct ids of the table.
        Raises:
            DataError: a named column is missing, or a weight is not finite.
        """
        for col in (user_col, item_col):
            if col not in table.column_names:
                raise DataError("interactions", f"missing column '{col}'; columns are {table.column_names}")
        users = table.column(user_col).cast(pa.string())
        items = table.column(item_col).cast(pa.string())
        if user_ids is None:
            user_ids = np.asarray(pc.unique(users).drop_null().sort().to_pylist() if len(users) else [], dtype=object)
        if item_ids is None:
            item_ids = np.asarray(pc.unique(items).drop_null().sort().to_pylist() if len(items) else [], dtype=object)
        rows = pc.index_in(users, value_set=pa.array(user_ids, pa.string())).to_numpy(zero_copy_only=False)
        cols = pc.index_in(items, value_set=pa.array(item_ids, pa.string())).to_numpy(zero_copy_only=False)
        keep = ~(np.isnan(rows.astype(float)) | np.isnan(cols.astype(float)))
        rows, cols = rows[keep].astype(np.int64), cols[keep].astype(np.int64)
        if weight_col and weight_col in table.column_names:
            weights = table.column(weight_col).cast(pa.float32()).to_numpy(zero_copy_only=False)[keep]
            if not np.isfinite(weights).all():
                raise DataError("interactions", f"column '{weight_col}' has missing or non-finite values")
        else:
            weights = np.ones(len(rows), dtype=np.float32)
        shape = (len(user_ids), len(item_ids))
        matrix = sparse.csr_matrix((weights, (rows, cols)), shape=shape, dtype=np.float32)
        matrix.sum_duplicates()
        last_ts = None
        if ts_col and ts_col in table.column_names:
            ts = table.column(ts_col)
            if pa.types.is_timestamp(ts.type):
                ts = pc.divide(ts.cast(pa.timestamp("us")).cast(pa.int64()), 1_000_000)
            seconds = ts.cast(pa.float64()).to_numpy(zero_copy_only=False)[keep]
            coo = sparse.coo_matrix((seconds, (rows, cols)), shape=shape)
            last_ts = _max_duplicates(coo).tocsr()
        return cls(matrix, np.asarray(user_ids, dtype=object), np.asarray(item_ids, dtype=object), last_ts)


def _max_duplicates(coo: sparse.coo_matrix) -> sparse.coo_matrix:
    """Collapse repeated (row, col) entries to their maximum (scipy sums them by default)."""
    order = np.lexsort((-coo.data, coo.col, coo.row))
    row, col, data = coo.row[order], coo.col[order], coo.data[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
    return sparse.coo_matrix((data[first], (row[first], col[first])), shape=coo.shape)
