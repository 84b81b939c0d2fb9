"""Blocked item-item products shared by the neighbourhood models: dense gram for EASE, sparse top-N for kNN/RP3β."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.models.base import Recommender

BLOCK_ELEMENTS = 1 << 24  # dense elements per block: 64 MiB of float32, 128 MiB of float64


class ItemItemModel(Recommender):
    """Base of the models whose learned state is one titles × titles matrix (the first name in `learned`, dense or
    sparse) and whose scores are the history times that matrix: EASE, item-kNN, RP3β."""

    def score(self, history: sparse.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        """history @ item-item weights, in float32.

        Args:
            history: (n_users × n_items) sparse weights.
            users: ignored (the model keeps no per-user state).
        Returns:
            (n_users × n_items) float32.
        """
        history = self._check_history(history)
        product = history @ getattr(self, self.learned[0])
        return np.asarray(product.toarray() if sparse.issparse(product) else product, dtype=np.float32)


def training_matrix(data: Interactions, binary: bool) -> sparse.csr_matrix:
    """A float32 copy of the interaction weights; with `binary`, 1 for every watched title."""
    matrix = sparse.csr_matrix(data.matrix, dtype=np.float32, copy=True)
    if binary:
        matrix.data = (matrix.data != 0).astype(np.float32)
    return matrix


def row_blocks(n_rows: int, n_cols: int, max_elements: int | None = None) -> Iterator[tuple[int, int]]:
    """Consecutive [start, stop) row ranges whose dense (rows × n_cols) block stays under `max_elements`."""
    step = max(1, (max_elements or BLOCK_ELEMENTS) // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)


def dense_gram(matrix: sparse.csr_matrix, dtype: type = np.float64) -> np.ndarray:
    """`matrix.T @ matrix` as a dense C-ordered array of `dtype`, built block by block in float64 (no sparse n²
    temporary)."""
    x64 = sparse.csr_matrix(matrix, dtype=np.float64)
    xt = x64.T.tocsr()
    n = x64.shape[1]
    gram = np.empty((n, n), dtype=dtype)
    for start, stop in row_blocks(n, n):
        if gram.dtype == np.float64:
            (xt[start:stop] @ x64).toarray(out=gram[start:stop])
        else:
            gram[start:stop] = (xt[start:stop] @ x64).toarray()
    return gram


def add_session_cooccurrence(gram: np.ndarray, last_ts: sparse.csr_matrix, weight: float, tau: float,
                             horizon: float = 4.0, max_lag: int = 256) -> int:
    """Add weight·Σ_users exp(−|t_ui − t_uj| / τ) to `gram` in place, for titles a user watched close together in
    time (symmetric; each watched title adds weight·1 to its own diagonal entry).

    Why: titles watched in one sitting (a binge, one evening's choices, a rating spree) are far stronger evidence
    of relatedness than two titles somewhere in a long history; the kernel lets that evidence count more.
    Work and memory stay linear in the events: pairs are walked by lag along each user's time-sorted history and
    added straight into the dense gram, one lag at a time.

    Args:
        gram: dense C-ordered float64 (titles × titles), updated in place.
        last_ts: users × titles, each pair's time in epoch seconds (the sparsity pattern of the interactions).
        weight: γ, the kernel's weight relative to the plain co-occurrence counts.
        tau: kernel time scale in seconds.
        horizon: pairs further apart than horizon·τ are ignored (their kernel is below e^−horizon).
        max_lag: at most this many later titles per title and user are paired (bounds the work on heavy users).
    Returns:
        The number of title pairs added (each counted once).
    """
    n = gram.shape[0]
    flat = gram.reshape(-1)  # a view: gram is C-contiguous
    coo = last_ts.tocoo()
    order = np.lexsort((coo.data, coo.row))
    user, item, t = coo.row[order], coo.col[order].astype(np.int64), coo.data[order].astype(np.float64)
    np.add.at(flat, item * (n + 1), weight)
    pairs = 0
    for lag in range(1, max_lag + 1):
        gap = t[lag:] - t[:-lag]
        keep = (user[lag:] == user[:-lag]) & (gap <= horizon * tau)
        if not keep.any():
            break
        left, right = item[:-lag][keep], item[lag:][keep]
        kernel = weight * np.exp(-gap[keep] / tau)
        np.add.at(flat, left * n + right, kernel)
        np.add.at(flat, right * n + left, kernel)
        pairs += len(left)
    return pairs


def top_n_rows(
    left: sparse.csr_matrix,
    right: sparse.csr_matrix,
    n_neighbors: int,
    transform: Callable[[np.ndarray, int, int], np.ndarray] | None = None,
) -> sparse.csr_matrix:
    """Row-wise top-N of the dense product `left @ right` (square), diagonal excluded, as float32 CSR.

    Args:
        left, right: factors of the (n × n) item-item product, computed a block of rows at a time.
        n_neighbors: entries kept per row (the largest positive ones).
        transform: optional `f(block, start, stop) -> block` applied to each dense row block (e.g. normalisation).
    Returns:
        CSR (n × n) float32 with at most `n_neighbors` positive entries per row, indices sorted.
    """
    n = left.shape[0]
    keep = min(n_neighbors, max(n - 1, 1))
    rows_out, cols_out, vals_out = [], [], []
    for start, stop in row_blocks(n, right.shape[1]):
        block = np.asarray((left[start:stop] @ right).toarray(), dtype=np.float32)
        if transform is not None:
            block = transform(block, start, stop)
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if keep < block.shape[1]:
            cols = np.argpartition(-block, keep - 1, axis=1)[:, :keep]
        else:
            cols = np.broadcast_to(np.arange(block.shape[1]), block.shape)
        vals = np.take_along_axis(block, cols, axis=1)
        positive = vals > 0
        rows_out.append(np.broadcast_to(np.arange(start, stop)[:, None], cols.shape)[positive])
        cols_out.append(cols[positive])
        vals_out.append(vals[positive])
    rows = np.concatenate(rows_out) if rows_out else np.zeros(0, np.int64)
    cols = np.concatenate(cols_out) if cols_out else np.zeros(0, np.int64)
    vals = np.concatenate(vals_out) if vals_out else np.zeros(0, np.float32)
    out = sparse.csr_matrix((vals, (rows, cols)), shape=(n, right.shape[1]), dtype=np.float32)
    out.sort_indices()
    return out
