"""Top-k metrics over the full catalog, one small vectorised function each, returning one value per user.

Inputs: `recs`, an int array (n_users × k) of recommended item columns, best first (-1 pads a short list);
`relevant`, the relevant item columns per user, as a CSR matrix (n_users × n_items, nonzero = relevant) or a list
of int arrays. Relevance is binary. Definitions follow Microsoft Recommenders' python_evaluation (and Spark's
RankingMetrics): precision divides by k; recall by |rel|; NDCG's ideal DCG runs over min(k, |rel|) positions;
MAP@k divides by min(k, |rel|). A user with no relevant items scores 0 (the runner leaves such users out).
Take `.mean()` of a result for the usual aggregate, or bootstrap it (see `bootstrap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse
from scipy.stats import rankdata

Relevant = sparse.csr_matrix | Sequence[np.ndarray]


def hits(recs: np.ndarray, relevant: Relevant) -> np.ndarray:
    """Boolean n_users × k: is the j-th recommendation of user u relevant to u."""
    recs = _as_recs(recs)
    users, items = _relevant_pairs(relevant, len(recs))
    width = int(max(recs.max(initial=-1), items.max(initial=-1))) + 2
    keys = np.unique(users * width + items)
    query = np.arange(len(recs), dtype=np.int64)[:, None] * width + recs
    pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
    found = (keys[pos] == query) if len(keys) else np.zeros(recs.shape, dtype=bool)
    return found & (recs >= 0)


def n_relevant(relevant: Relevant) -> np.ndarray:
    """Number of distinct relevant items per user."""
    if sparse.issparse(relevant):
        csr = sparse.csr_matrix(relevant)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        return np.diff(csr.indptr).astype(np.int64)
    return np.fromiter((len(np.unique(np.asarray(r))) for r in relevant), dtype=np.int64, count=len(relevant))


def precision_at_k(recs: np.ndarray, relevant: Relevant, k: int | None = None) -> np.ndarray:
    """Hits in the top k divided by k (also when fewer than k items were recommended)."""
    k = _k(recs, k)
    return hits(recs[:, :k], relevant).sum(axis=1) / k


def recall_at_k(recs: np.ndarray, relevant: Relevant, k: int | None = None) -> np.ndarray:
    """Hits in the top k divided by the number of relevant items."""
    k = _k(recs, k)
    return _safe_div(hits(recs[:, :k], relevant).sum(axis=1), n_relevant(relevant))


def hit_rate_at_k(recs: np.ndarray, relevant: Relevant, k: int | None = None) -> np.ndarray:
    """1 when at least one of the top k is relevant, else 0."""
    k = _k(recs, k)
    return hits(recs[:, :k], relevant).any(axis=1).astype(np.float64)


def ndcg_at_k(recs: np.ndarray, relevant: Relevant, k: int | None = None) -> np.ndarray:
    """DCG of the top k (gain 1 / log2(rank + 1) per hit) over the ideal DCG of min(k, |rel|) hits."""
    k = _k(recs, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits(recs[:, :k], relevant) @ discount
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n_relevant(relevant), k)]
    return _safe_div(dcg, ideal)


def map_at_k(recs: np.ndarray, relevant: Relevant, k: int | None = None) -> np.ndarray:
    """Average precision at k: the sum of precision@rank over hit ranks, divided by min(k, |rel|)."""
    k = _k(recs, k)
    hit = hits(recs[:, :k], relevant)
    precision = np.cumsum(hit, axis=1) / np.arange(1, k + 1)
    return _safe_div((precision * hit).sum(axis=1), np.minimum(n_relevant(relevant), k))


def mrr_at_k(recs: np.ndarray, relevant: Relevant, k: int | None = None) -> np.ndarray:
    """Reciprocal rank of the first relevant item in the top k (0 when none is)."""
    k = _k(recs, k)
    hit = hits(recs[:, :k], relevant)
    first = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), 1.0 / (first + 1), 0.0)


ACCURACY_METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": mrr_at_k,
}


# --- beyond accuracy ------------------------------------------------------------------------------------------
def catalog_coverage(recs: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Share of the catalog's n_items that appear in at least one user's top k."""
    k = _k(recs, k)
    shown = recs[:, :k]
    return float(len(np.unique(shown[shown >= 0])) / n_items) if n_items else 0.0


def novelty(recs: np.ndarray, item_popularity: np.ndarray, n_users: int, k: int | None = None) -> np.ndarray:
    """Mean self-information -log2(p) of each user's top k, p = share of the n_users (training) who had the item.

    Items no training user had count as had by one (the least popularity that can be observed).
    """
    k = _k(recs, k)
    p = np.maximum(np.asarray(item_popularity, dtype=np.float64), 1.0) / max(n_users, 1)
    return _mean_over_recs(-np.log2(p), recs[:, :k])


def average_popularity(recs: np.ndarray, item_popularity: np.ndarray, k: int | None = None) -> np.ndarray:
    """ARP: mean popularity (training interaction count) of each user's top k."""
    k = _k(recs, k)
    return _mean_over_recs(np.asarray(item_popularity, dtype=np.float64), recs[:, :k])


def popularity_percentile(recs: np.ndarray, item_popularity: np.ndarray, k: int | None = None) -> np.ndarray:
    """Mean popularity percentile (0..1, ties averaged; 1 = the most popular item) of each user's top k."""
    k = _k(recs, k)
    pop = np.asarray(item_popularity, dtype=np.float64)
    percentile = rankdata(pop, method="average") / len(pop) if len(pop) else pop
    return _mean_over_recs(percentile, recs[:, :k])


def intra_list_diversity(recs: np.ndarray, item_genres: np.ndarray | sparse.spmatrix,
                         k: int | None = None, chunk: int = 4096) -> np.ndarray:
    """1 - mean pairwise Jaccard similarity of the genre sets within each user's top k.

    Args:
        item_genres: boolean n_items × n_genres (dense or sparse); see `genre_matrix`.
    Lists with fewer than two items score 0; a pair where neither item has a genre has similarity 0.
    """
    k = _k(recs, k)
    genres = np.asarray(item_genres.todense() if sparse.issparse(item_genres) else item_genres, dtype=np.float32)
    out = np.zeros(len(recs))
    for start in range(0, len(recs), chunk):
        block = recs[start:start + chunk, :k]
        valid = block >= 0
        g = genres[np.where(valid, block, 0)] * valid[..., None]  # users × k × genres
        inter = np.einsum("ukg,ulg->ukl", g, g)
        size = g.sum(axis=2)
        union = size[:, :, None] + size[:, None, :] - inter
        jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        pair = valid[:, :, None] & valid[:, None, :] & ~np.eye(k, dtype=bool)[None]
        n_pairs = pair.sum(axis=(1, 2))
        sim = np.divide((jaccard * pair).sum(axis=(1, 2)), n_pairs, out=np.zeros(len(block)), where=n_pairs > 0)
        out[start:start + chunk] = np.where(n_pairs > 0, 1.0 - sim, 0.0)
    return out


def genre_matrix(item_ids: Sequence[str] | np.ndarray,
                 genres: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    """Boolean n_items × n_genres matrix (rows in `item_ids` order) from item id → genres, and the genre names."""
    names = sorted({g for item in item_ids for g in genres.get(item, ())})
    col = {g: j for j, g in enumerate(names)}
    out = np.zeros((len(item_ids), len(names)), dtype=bool)
    for i, item in enumerate(item_ids):
        for g in genres.get(item, ()):
            out[i, col[g]] = True
    return out, names


# --- helpers ----------------------------------------------------------------------------------------------------
def _as_recs(recs: np.ndarray) -> np.ndarray:
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be a 2-d array (users × k), got shape {recs.shape}")
    return recs.astype(np.int64, copy=False)


def _k(recs: np.ndarray, k: int | None) -> int:
    width = np.asarray(recs).shape[1]
    if k is None:
        k = width
    if k < 1 or k > width:
        raise ValueError(f"k must be in 1..{width} (the recommendation lists' length), got {k}")
    return k


def _relevant_pairs(relevant: Relevant, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    if sparse.issparse(relevant):
        coo = sparse.coo_matrix(relevant)
        keep = coo.data != 0
        users, items = coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64)
        n_rows = coo.shape[0]
    else:
        arrays = [np.asarray(r, dtype=np.int64).ravel() for r in relevant]
        n_rows = len(arrays)
        users = np.repeat(np.arange(n_rows, dtype=np.int64), [len(a) for a in arrays])
        items = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    if n_rows != n_users:
        raise ValueError(f"relevant has {n_rows} users but recs has {n_users}")
    return users, items


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _mean_over_recs(values: np.ndarray, recs: np.ndarray) -> np.ndarray:
    valid = recs >= 0
    picked = np.where(valid, values[np.where(valid, recs, 0)], 0.0) if len(values) else np.zeros(recs.shape)
    return _safe_div(picked.sum(axis=1), valid.sum(axis=1))
