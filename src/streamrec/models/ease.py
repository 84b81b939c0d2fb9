"""EASE (Steck 2019): closed-form item-item weights; memory n²·8 B (float64 gram, inverted in place) + n²·4 B (weights).

For n titles the fit holds one float64 n × n matrix (the gram, Cholesky-inverted in place by LAPACK, no second
copy) plus the float32 weights it produces: 12·n² bytes at the peak, e.g. 20k titles → 3.2 GB + 1.6 GB ≈ 4.8 GB,
40k titles ≈ 19 GB. `max_items` refuses catalogs that would not fit instead of dying in the middle.
"""

from __future__ import annotations

import os
from typing import Self

import numpy as np
from pydantic import BaseModel, Field
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError, DataError
from streamrec.logs import get_logger
from streamrec.models._neighbors import ItemItemModel, add_session_cooccurrence, dense_gram, row_blocks


class EASEConfig(BaseModel, extra="forbid"):
    l2: float = Field(300.0, gt=0, le=1e9, description="ridge penalty λ on the item-item weights")
    max_items: int = Field(
        40_000, ge=1, le=200_000,
        description="refuse larger catalogs (peak memory is 12·n² bytes: 40k titles ≈ 19 GB)")
    num_threads: int = Field(0, ge=0, le=1024, description="BLAS threads for the gram inversion (0: all cores)")
    session_weight: float = Field(
        0.0, ge=0, le=1e4,
        description="γ: extra co-occurrence for titles a user watched close together in time, "
                    "γ·exp(−Δt/τ) per pair (0: plain EASE; needs interaction times)")
    session_seconds: float = Field(1800.0, gt=0, le=1e8, description="τ: time scale of the session kernel, seconds")


log = get_logger(__name__)


class EASE(ItemItemModel):
    """Embarrassingly shallow autoencoder: B = I − P·diag(1/diag P), P = (XᵀX + γ·S + λI)⁻¹, diagonal forced to 0.

    S is the session co-occurrence (`session_weight` γ > 0 and interaction times known): pairs of titles a user
    watched within minutes of each other count extra, so "watched in the same sitting" weighs more than "both
    somewhere in the history". γ = 0 is Steck's EASE.
    """

    name = "ease"
    config_type = EASEConfig
    config: EASEConfig
    learned = ("weights_",)

    def fit(self, data: Interactions) -> Self:
        """Solve the closed form.

        Args:
            data: training interactions (weights used as given).
        Returns:
            self, with `weights_` (n_items × n_items float32, zero diagonal).
        Raises:
            ConfigError: the catalog is larger than `max_items`.
        """
        self._check_data(data)
        n = data.n_items
        if n > self.config.max_items:
            raise ConfigError(f"model 'ease': {n} titles exceed max_items={self.config.max_items} "
                              f"(would need ≈ {12 * n * n / 1e9:.1f} GB); raise max_items or use item_knn")
        gram = dense_gram(data.matrix)
        cfg = self.config
        if cfg.session_weight > 0:
            if data.last_ts is None:
                log.warning("ease.no_times", detail="session_weight > 0 but the data has no interaction times; "
                                                    "fitting plain EASE")
            else:
                add_session_cooccurrence(gram, data.last_ts, cfg.session_weight, cfg.session_seconds)
        gram[np.diag_indices(n)] += cfg.l2
        with threadpool_limits(limits=self.config.num_threads or os.cpu_count(), user_api="blas"):
            precision = _inverse_spd_inplace(gram)
        del gram  # same buffer as `precision`
        diag = precision.diagonal().copy()
        weights = np.empty((n, n), dtype=np.float32)
        for start, stop in row_blocks(n, n):
            np.divide(precision[start:stop], -diag[None, :], out=precision[start:stop])
            weights[start:stop] = precision[start:stop]
        del precision
        np.fill_diagonal(weights, 0.0)
        self.weights_ = weights
        self.item_ids_ = np.asarray(data.item_ids, dtype=object)
        return self


def _inverse_spd_inplace(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite C-ordered float64 matrix, computed in its own buffer."""
    n = matrix.shape[0]
    fortran = matrix.T  # the same symmetric matrix, viewed in LAPACK's column-major order: no copy
    factor, info = lapack.dpotrf(fortran, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise DataError("training data", f"gram matrix is not positive definite (LAPACK dpotrf info={info})")
    inverse, info = lapack.dpotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise DataError("training data", f"gram matrix could not be inverted (LAPACK dpotri info={info})")
    result = inverse.T  # C-ordered again; its lower triangle holds the inverse
    if not np.shares_memory(result, matrix):
        result = np.ascontiguousarray(result)
    for start, stop in row_blocks(n, n):  # mirror the lower triangle into the upper one, block by block
        block = result[start:stop, start:stop]
        block[...] = np.tril(block) + np.tril(block, -1).T
        result[start:stop, stop:] = result[stop:, start:stop].T
    return result
