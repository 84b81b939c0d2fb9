"""EASE (Steck 2019): closed-form item-item weights, fitted in one float32 n × n buffer: memory 4·n² bytes.

The gram is built in float32, Cholesky-inverted in place by LAPACK (spotrf/spotri, no second copy), and turned into
the weights in the same buffer: 4·n² bytes at the peak, e.g. 22.5k titles → 2.0 GB, 40k titles ≈ 6.4 GB. Why float32:
the ridge λ keeps the gram well conditioned, so single precision changes the weights by about 1e-6, while halving
memory and time; and scipy's bundled OpenBLAS crashed (SIGSEGV in dpotrf) on a 22.5k-title float64 gram (4.1 GB) on
the 2-core benchmark machine (bench/scale.py at 20M events). `max_items` refuses catalogs that would not fit instead
of dying in the middle.
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
        description="refuse larger catalogs (peak memory is 4·n² bytes: 40k titles ≈ 6.4 GB)")
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
                              f"(would need ≈ {4 * n * n / 1e9:.1f} GB); raise max_items or use item_knn")
        gram = dense_gram(data.matrix, np.float32)
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
        for start, stop in row_blocks(n, n):  # B = −P·diag(1/diag P), in the same buffer
            np.divide(precision[start:stop], -diag[None, :], out=precision[start:stop])
        weights = precision
        np.fill_diagonal(weights, 0.0)
        self.weights_ = weights
        self.item_ids_ = np.asarray(data.item_ids, dtype=object)
        return self


def _inverse_spd_inplace(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite C-ordered float32 or float64 matrix, computed in its own buffer."""
    n = matrix.shape[0]
    potrf, potri = (lapack.spotrf, lapack.spotri) if matrix.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    fortran = matrix.T  # the same symmetric matrix, viewed in LAPACK's column-major order: no copy
    factor, info = potrf(fortran, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise DataError("training data", f"gram matrix is not positive definite (LAPACK potrf info={info})")
    inverse, info = potri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise DataError("training data", f"gram matrix could not be inverted (LAPACK potri info={info})")
    result = inverse.T  # C-ordered again; its lower triangle holds the inverse
    if not np.shares_memory(result, matrix):
        result = np.ascontiguousarray(result)
    for start, stop in row_blocks(n, n):  # mirror the lower triangle into the upper one, block by block
        block = result[start:stop, start:stop]
        block[...] = np.tril(block) + np.tril(block, -1).T
        result[start:stop, stop:] = result[stop:, start:stop].T
    return result
