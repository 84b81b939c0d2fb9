"""Re-ranking for diversity: maximal marginal relevance (Carbonell & Goldstein 1998) over title genres.

Each next pick maximises (1 − λ)·relevance − λ·(its largest genre similarity to the titles already picked), with
relevance min-max scaled within the user's candidates, so λ is comparable across users and rankers.
"""

from __future__ import annotations

import numpy as np


def genre_similarity(genres: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the genre sets of the given titles (rows of a boolean titles × genres matrix)."""
    g = np.asarray(genres, dtype=np.float32)
    inter = g @ g.T
    size = g.sum(axis=1)
    union = size[:, None] + size[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def mmr(scores: np.ndarray, genres: np.ndarray, k: int, weight: float) -> np.ndarray:
    """The positions (into `scores`) of k picks, in order.

    Args:
        scores: one user's candidate scores (higher is better).
        genres: boolean (candidates × genres) of the same candidates.
        k: picks (fewer when there are fewer candidates).
        weight: λ in [0, 1]; 0 keeps the score order exactly.
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"MMR weight must be in [0, 1], got {weight}")
    n = len(scores)
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    if weight == 0:
        return order[:k]
    low, high = float(scores.min()), float(scores.max())
    relevance = (scores - low) / (high - low) if high > low else np.ones(n)
    sim = genre_similarity(genres)
    picked = [int(order[0])]
    closest = sim[picked[0]].copy()  # each candidate's largest similarity to the picks so far
    free = np.ones(n, dtype=bool)
    free[picked[0]] = False
    for _ in range(1, k):
        value = (1 - weight) * relevance - weight * closest
        value[~free] = -np.inf
        best = int(np.argmax(value))  # ties: the earlier candidate
        picked.append(best)
        free[best] = False
        np.maximum(closest, sim[best], out=closest)
    return np.asarray(picked, dtype=np.int64)
