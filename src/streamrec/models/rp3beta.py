"""RP3β (Paudel et al. 2017): 3-step random-walk item-item weights with a popularity penalty, top-N per title."""

from __future__ import annotations

from typing import Self

import numpy as np
from pydantic import BaseModel, Field
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.models._neighbors import ItemItemModel, training_matrix, top_n_rows


class RP3BetaConfig(BaseModel, extra="forbid"):
    alpha: float = Field(1.0, gt=0, le=5, description="exponent on the transition probabilities P_ui and P_iu")
    beta: float = Field(0.5, ge=0, le=2, description="popularity penalty: weights to title j divided by pop_j^β")
    n_neighbors: int = Field(100, ge=1, le=10_000, description="item-item weights kept per title")
    binary: bool = Field(True, description="walk on watched / not watched instead of the watch weights")
    normalize_rows: bool = Field(False, description="rescale each title's kept weights to sum to 1")


class RP3Beta(ItemItemModel):
    """W_ij = Σ_u P_iu^α · P_uj^α / pop_j^β, with P the row-normalised item→user and user→item walks."""

    name = "rp3beta"
    config_type = RP3BetaConfig
    config: RP3BetaConfig
    learned = ("weights_",)

    def fit(self, data: Interactions) -> Self:
        """Compute the top-N random-walk weights of every title.

        Args:
            data: training interactions.
        Returns:
            self, with `weights_` (n_items × n_items float32 CSR; row i holds the titles reached from i).
        """
        self._check_data(data)
        cfg = self.config
        matrix = training_matrix(data, cfg.binary)
        matrix.data = np.maximum(matrix.data, 0)  # a walk needs non-negative weights
        matrix.eliminate_zeros()
        user_to_item = _row_normalise(matrix)
        item_to_user = _row_normalise(matrix.T.tocsr())
        user_to_item.data **= np.float32(cfg.alpha)
        item_to_user.data **= np.float32(cfg.alpha)
        degree = np.diff(matrix.tocsc().indptr).astype(np.float64)
        penalty = np.zeros_like(degree)
        np.power(degree, -cfg.beta, out=penalty, where=degree > 0)
        penalty = penalty.astype(np.float32)

        def discount(block: np.ndarray, start: int, stop: int) -> np.ndarray:
            block *= penalty[None, :]
            return block

        weights = top_n_rows(item_to_user, user_to_item, cfg.n_neighbors, discount)
        if cfg.normalize_rows:
            weights = _row_normalise(weights)
        self.weights_ = weights
        self.item_ids_ = np.asarray(data.item_ids, dtype=object)
        return self


def _row_normalise(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Rows scaled to sum to 1 (empty rows stay empty)."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.zeros_like(sums)
    np.divide(1.0, sums, out=scale, where=sums > 0)
    return sparse.csr_matrix(sparse.diags(scale.astype(np.float32)) @ matrix, dtype=np.float32)
