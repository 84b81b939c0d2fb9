"""Candidate generation: several sources each propose titles per user, up to a quota; the union keeps every
source's score and rank for the ranker, and the first proposing source as the title's provenance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import sparse

from streamrec.errors import ConfigError
from streamrec.models._factors import FactorModel
from streamrec.models._neighbors import row_blocks
from streamrec.models.base import Recommender, top_k
from streamrec.storage.vectors import VectorIndex


class CandidateSource(Protocol):
    """Proposes up to `n` titles per history row, best first (column indices of the training vocabulary)."""

    name: str

    def propose(self, history: sparse.csr_matrix, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(cols, scores), each (rows × n'), n' ≤ n; a col of -1 or a -inf score is an empty slot."""
        ...


@dataclass
class ModelSource:
    """Any fitted Recommender as a source: EASE or item-kNN from the history, ALS user vectors, trending."""

    name: str
    model: Recommender

    def propose(self, history: sparse.csr_matrix, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return by_row_blocks(history, lambda a, b: self.model.recommend(history[a:b], n, users=users[a:b],
                                                                        exclude_seen=True))


@dataclass
class VectorSource:
    """A factor model's user vectors searched in a vector index of its item vectors: ALS through faiss (approximate,
    fast on large catalogs) or the exact numpy index (the default, and the reference)."""

    name: str
    model: FactorModel
    index: VectorIndex  # built on model.item_factors_ with ids = columns

    def propose(self, history: sparse.csr_matrix, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(self.model.user_vectors(history, users), n, exclude=history)


def by_row_blocks(history: sparse.csr_matrix, propose) -> tuple[np.ndarray, np.ndarray]:
    """`propose(start, stop)` over consecutive blocks of history rows, stacked. Why: a model's scores are a dense
    rows × titles array; for every test user of a large world at once that is users × titles floats (122k × 22.5k
    ≈ 11 GB at 20M events), so each block stays under BLOCK_ELEMENTS (64 MiB of float32) instead."""
    n_rows, n_items = history.shape
    parts = [propose(a, b) for a, b in row_blocks(n_rows, n_items)]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return propose(0, 0)
    return np.concatenate([c for c, _ in parts]), np.concatenate([v for _, v in parts])


@dataclass
class FixedListSource:
    """The same ranked list for everyone (new releases, editorial rows), minus what each user has seen."""

    name: str
    cols: np.ndarray  # best first
    n_items: int

    def propose(self, history: sparse.csr_matrix, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        def block(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            scores = np.full((b - a, self.n_items), -np.inf, dtype=np.float32)
            scores[:, self.cols] = -np.arange(len(self.cols), dtype=np.float32)  # earlier in the list = better
            seen = history[a:b].tocoo()
            scores[seen.row, seen.col] = -np.inf
            return top_k(scores, n)

        return by_row_blocks(history, block)


@dataclass
class PerUserListSource:
    """A ranked list per history row (continue watching, a user's own list), minus what the row has seen."""

    name: str
    lists: dict[int, np.ndarray]  # history row → columns, best first
    n_items: int

    def propose(self, history: sparse.csr_matrix, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        cols = np.full((history.shape[0], n), -1, dtype=np.int64)
        scores = np.full((history.shape[0], n), -np.inf, dtype=np.float32)
        for row, mine in self.lists.items():
            seen = set(history.indices[history.indptr[row]:history.indptr[row + 1]].tolist())
            keep = [c for c in mine if c not in seen][:n]
            cols[row, :len(keep)] = keep
            scores[row, :len(keep)] = -np.arange(len(keep), dtype=np.float32)
        return cols, scores


@dataclass(frozen=True)
class CandidateSet:
    """The union of the sources' proposals, flattened: one entry per (row, title).

    `score[s]` / `rank[s]` hold source s's score and 0-based rank (NaN / -1 where s did not propose the title);
    `origin` is the index of the first source (in the order given) that proposed it.
    """

    sources: tuple[str, ...]
    row: np.ndarray
    col: np.ndarray
    origin: np.ndarray
    score: np.ndarray  # (n_sources, n_entries) float32
    rank: np.ndarray  # (n_sources, n_entries) int32

    def subset(self, keep: np.ndarray) -> CandidateSet:
        """The entries where the boolean `keep` is true (order kept)."""
        return CandidateSet(self.sources, self.row[keep], self.col[keep], self.origin[keep], self.score[:, keep],
                            self.rank[:, keep])

    def per_row(self, n_rows: int) -> list[np.ndarray]:
        """Each row's candidate columns."""
        order = np.argsort(self.row, kind="stable")
        bounds = np.searchsorted(self.row[order], np.arange(n_rows + 1))
        return [self.col[order[bounds[i]:bounds[i + 1]]] for i in range(n_rows)]


def gather(sources: Sequence[CandidateSource], quotas: Mapping[str, int], history: sparse.csr_matrix,
           users: np.ndarray | None = None) -> CandidateSet:
    """Ask every source for its quota of titles per row and merge them.

    Args:
        sources: in priority order (the first proposing one is a title's provenance).
        quotas: titles per row and source name; every source needs one (≥ 1).
        history: (rows × titles) what each row's user has watched (never proposed again).
        users: training row per history row (-1: unknown user), passed to model sources.
    Raises:
        ConfigError: a source without a positive quota, or two sources of one name.
    """
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"candidate sources need distinct names, got {names}")
    missing = [n for n in names if quotas.get(n, 0) < 1]
    if missing:
        raise ConfigError(f"candidate sources {missing} need a quota ≥ 1 (quotas: {dict(quotas)})")
    n_rows, n_items = history.shape
    users = np.full(n_rows, -1, dtype=np.int64) if users is None else np.asarray(users)
    keys, parts = [], []
    for s, source in enumerate(sources):
        cols, scores = source.propose(history, users, quotas[source.name])
        rank = np.broadcast_to(np.arange(cols.shape[1], dtype=np.int32), cols.shape)
        valid = (cols >= 0) & np.isfinite(scores)
        rows = np.broadcast_to(np.arange(n_rows)[:, None], cols.shape)
        keys.append(rows[valid].astype(np.int64) * n_items + cols[valid])
        parts.append((s, scores[valid].astype(np.float32), rank[valid]))
    union, first = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64), return_index=True)
    score = np.full((len(sources), len(union)), np.nan, dtype=np.float32)
    rank = np.full((len(sources), len(union)), -1, dtype=np.int32)
    origin = np.full(len(union), -1, dtype=np.int16)
    for key, (s, vals, ranks) in zip(keys, parts):
        pos = np.searchsorted(union, key)
        score[s, pos], rank[s, pos] = vals, ranks
        unset = origin[pos] < 0
        origin[pos[unset]] = s
    return CandidateSet(tuple(names), union // n_items, union % n_items, origin, score, rank)


def candidate_recall(candidates: CandidateSet, relevant: sparse.csr_matrix) -> dict[str, float]:
    """Share of the relevant (row, title) pairs inside the candidates, per source and for the union ("all").

    `relevant` may have more columns than the catalog (titles unknown to training): they count as missed.
    """
    n_items = relevant.shape[1]
    rel = relevant.tocoo()
    wanted = np.unique(rel.row.astype(np.int64) * n_items + rel.col)
    total = max(len(wanted), 1)
    keys = candidates.row.astype(np.int64) * n_items + candidates.col
    out = {name: float(np.isin(wanted, keys[candidates.rank[s] >= 0]).sum() / total)
           for s, name in enumerate(candidates.sources)}
    out["all"] = float(np.isin(wanted, keys).sum() / total)
    return out
