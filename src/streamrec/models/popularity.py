"""Most-popular titles, all-time or trending (exponentially time-decayed): the baseline every model must beat."""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, Field
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.models.base import Recommender

SECONDS_PER_DAY = 86_400.0


class PopularityConfig(BaseModel, extra="forbid"):
    measure: Literal["weight", "count"] = Field(
        "weight", description="what a (user, title) pair adds: its watch weight, or 1 (distinct users)")
    half_life_days: float | None = Field(
        None, gt=0, le=36_500,
        description="trending: a pair's contribution halves every this many days before the newest timestamp "
                    "in the data; None: all-time (also used when the data has no timestamps)")


class Popularity(Recommender):
    """The same ranking for everyone: titles by (optionally time-decayed) total weight or user count."""

    name = "popularity"
    config_type = PopularityConfig
    config: PopularityConfig
    learned = ("popularity_", "decayed_")

    def fit(self, data: Interactions) -> Self:
        """Count each title's weight (or users), decayed by age when `half_life_days` is set and times exist.

        Args:
            data: training interactions; `data.last_ts` is used for trending.
        Returns:
            self, with `popularity_` (float32 per item, max 1) and `decayed_` (whether decay was applied).
        """
        self._check_data(data)
        matrix = sparse.csr_matrix(data.matrix, dtype=np.float64)
        if self.config.measure == "count":
            matrix.data = (matrix.data != 0).astype(np.float64)
        decayed = self.config.half_life_days is not None and data.last_ts is not None and data.last_ts.nnz > 0
        if decayed:
            ts = sparse.csr_matrix(data.last_ts, dtype=np.float64)
            age_days = (ts.data.max() - ts.data) / SECONDS_PER_DAY
            decay = ts.copy()
            decay.data = np.exp2(-age_days / float(self.config.half_life_days))
            matrix = sparse.csr_matrix(matrix.multiply(decay))
        totals = np.asarray(matrix.sum(axis=0)).ravel()
        top = totals.max() if len(totals) else 0.0
        self.popularity_ = (totals / top if top > 0 else totals).astype(np.float32)
        self.decayed_ = np.asarray(decayed)
        self.item_ids_ = np.asarray(data.item_ids, dtype=object)
        return self

    def score(self, history: sparse.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        """Every row gets the item popularity (history only sets the number of rows).

        Args:
            history: (n_users × n_items) sparse.
            users: ignored.
        Returns:
            (n_users × n_items) float32 in [0, 1].
        """
        history = self._check_history(history)
        return np.tile(self.popularity_, (history.shape[0], 1))
