"""Shared shape of the matrix-factorisation models (ALS, BPR): user/item factors, fold-in for unknown users."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from scipy import sparse
from threadpoolctl import ThreadpoolController

from streamrec.models.base import Recommender


_controller: ThreadpoolController | None = None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS limited to one thread, as implicit asks: its own OpenMP threads must not fight BLAS threads. The loaded
    libraries are found once (scanning them costs ~5 ms, more than a single user's fold-in)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield


class FactorModel(Recommender):
    """Base of the factor models: scores = user factors · item factors; unknown users are folded in from history."""

    learned = ("user_factors_", "item_factors_")

    def score(self, history: sparse.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        """Dot products of user and item factors.

        Args:
            history: (n_users × n_items) sparse weights; used to fold in rows whose user is unknown.
            users: training row of each history row (-1 or None: unknown, folded in from its history);
                known users use their learned factors.
        Returns:
            (n_users × n_items) float32.
        """
        return self.user_vectors(history, users) @ self.item_factors_.T

    def user_vectors(self, history: sparse.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        """Each history row's user factors (learned, or folded in from the history for users = -1 / None)."""
        history = self._check_history(history)
        rows = self._check_users(users, history.shape[0])
        factors = np.empty((len(rows), self.user_factors_.shape[1]), dtype=np.float32)
        known = rows >= 0
        factors[known] = self.user_factors_[rows[known]]
        if not known.all():
            factors[~known] = self._fold_in(history[~known])
        return factors

    @abstractmethod
    def _fold_in(self, history: sparse.csr_matrix) -> np.ndarray:
        """User factors (float32, one row per history row) for users unknown at training."""

    def _store(self, user_factors: np.ndarray, item_factors: np.ndarray, user_ids: np.ndarray,
               item_ids: np.ndarray) -> None:
        self.user_factors_ = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.user_ids_ = np.asarray(user_ids, dtype=object)
        self.item_ids_ = np.asarray(item_ids, dtype=object)
