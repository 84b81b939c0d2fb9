"""Bayesian personalised ranking (Rendle et al. 2009) through the `implicit` library on CPU; ridge fold-in."""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, Field
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.models._factors import FactorModel, single_threaded_blas


class BPRConfig(BaseModel, extra="forbid"):
    factors: int = Field(64, ge=1, le=2048, description="latent dimensions (plus one item-bias column)")
    learning_rate: float = Field(0.05, gt=0, le=10, description="SGD step size")
    regularization: float = Field(0.01, ge=0, le=100, description="L2 penalty applied at every SGD step")
    iterations: int = Field(100, ge=1, le=10_000, description="epochs (each samples one pair per interaction)")
    verify_negative_samples: bool = Field(True, description="resample negatives the user has actually watched")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="random state of the factors and the samplers")
    num_threads: int = Field(
        1, ge=0, le=1024, description="OpenMP threads (0: all cores); more than 1 makes the fit non-deterministic")
    fold_in: Literal["mean", "least_squares"] = Field(
        "mean", description="factors of users unknown at training: mean of their titles' factors, or a "
                            "confidence-weighted least-squares fit of their watched titles on the item factors")
    fold_in_confidence: float = Field(
        20.0, ge=1, le=1e6, description="least_squares fold-in: weight of a watched title (unwatched weigh 1)")
    fold_in_l2: float = Field(10.0, gt=0, le=1e6, description="least_squares fold-in: ridge penalty")


class BPR(FactorModel):
    """Pairwise-ranking matrix factorisation; the last factor column is the item bias (user side fixed to 1)."""

    name = "bpr"
    config_type = BPRConfig
    config: BPRConfig

    def fit(self, data: Interactions) -> Self:
        """Learn factors by SGD on sampled (watched, not watched) pairs; weights are ignored (binary).

        Args:
            data: training interactions.
        Returns:
            self, with `user_factors_` and `item_factors_` (float32, factors + 1 columns).
        """
        self._check_data(data)
        from implicit.cpu.bpr import BayesianPersonalizedRanking  # heavy import, only when used

        cfg = self.config
        matrix = sparse.csr_matrix(data.matrix, dtype=np.float32, copy=True)
        matrix.data = (matrix.data > 0).astype(np.float32)
        matrix.eliminate_zeros()
        matrix.sort_indices()
        with single_threaded_blas():
            model = BayesianPersonalizedRanking(
                factors=cfg.factors, learning_rate=cfg.learning_rate, regularization=cfg.regularization,
                iterations=cfg.iterations, verify_negative_samples=cfg.verify_negative_samples,
                random_state=cfg.seed, num_threads=cfg.num_threads, dtype=np.float32)
            model.fit(matrix, show_progress=False)
        self._store(model.user_factors, model.item_factors, data.user_ids, data.item_ids)
        return self

    def _fold_in(self, history: sparse.csr_matrix) -> np.ndarray:
        """Approximate factors for users unknown at training (BPR has no closed form for them).

        "mean": the average factors of the watched titles (what one BPR step from zero points to).
        "least_squares": min_x Σ_i c_i (v_i·x − p_i)² + λ‖x‖², p_i = 1 on watched titles (c_i = confidence),
        0 elsewhere (c_i = 1) — implicit ALS's fold-in on BPR's item factors. The bias coordinate is 1 in both.
        """
        n_factors = self.item_factors_.shape[1] - 1
        items = self.item_factors_[:, :n_factors].astype(np.float64)
        watched = sparse.csr_matrix(history, dtype=np.float64, copy=True)
        watched.data = (watched.data > 0).astype(np.float64)
        watched.eliminate_zeros()
        out = np.ones((history.shape[0], n_factors + 1), dtype=np.float32)
        if self.config.fold_in == "mean":
            counts = np.maximum(np.diff(watched.indptr), 1)[:, None]
            out[:, :n_factors] = np.asarray(watched @ items) / counts
            return out
        confidence = self.config.fold_in_confidence
        base = items.T @ items + self.config.fold_in_l2 * np.eye(n_factors)
        with single_threaded_blas():
            for row in range(watched.shape[0]):
                seen = items[watched.indices[watched.indptr[row]:watched.indptr[row + 1]]]
                lhs = base + (confidence - 1.0) * (seen.T @ seen)
                out[row, :n_factors] = np.linalg.solve(lhs, confidence * seen.sum(axis=0))
        return out
