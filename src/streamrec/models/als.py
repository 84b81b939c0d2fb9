"""Implicit-feedback ALS (Hu, Koren, Volinsky 2008) through the `implicit` library on CPU; exact fold-in."""

from __future__ import annotations

import weakref
from typing import Any, Self

import numpy as np
from pydantic import BaseModel, Field
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.models._factors import FactorModel, single_threaded_blas

_SOLVERS: dict[int, tuple] = {}  # id(item factors) → (weak reference to them, fold-in solver)


class ALSConfig(BaseModel, extra="forbid"):
    factors: int = Field(64, ge=1, le=2048, description="latent dimensions")
    regularization: float = Field(0.05, gt=0, le=1e6, description="L2 penalty on user and item factors")
    alpha: float = Field(10.0, gt=0, le=1e5, description="confidence of a watched pair = alpha × its weight")
    iterations: int = Field(15, ge=1, le=1000, description="alternating sweeps over users and items")
    use_cg: bool = Field(True, description="conjugate-gradient solver (fast, approximate); False: exact Cholesky")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="random state of the initial factors")
    num_threads: int = Field(
        1, ge=0, le=1024, description="OpenMP threads for fitting (0: all cores); results do not depend on it")


class ALS(FactorModel):
    """Weighted matrix factorisation by alternating least squares on confidence alpha × weight."""

    name = "als"
    config_type = ALSConfig
    config: ALSConfig

    def fit(self, data: Interactions) -> Self:
        """Factorise the weights with implicit's CPU ALS (BLAS single-threaded during the fit).

        Args:
            data: training interactions; the weights become confidences alpha × weight.
        Returns:
            self, with `user_factors_` (n_users × factors) and `item_factors_` (n_items × factors), float32.
        """
        self._check_data(data)
        matrix = sparse.csr_matrix(data.matrix, dtype=np.float32)
        with single_threaded_blas():
            model = self._implicit_model()
            model.fit(matrix, show_progress=False)
        self._store(model.user_factors, model.item_factors, data.user_ids, data.item_ids)
        return self

    def _fold_in(self, history: sparse.csr_matrix) -> np.ndarray:
        """The exact least-squares user factors given the item factors (implicit's recalculate_user). The solver and
        its Gram matrix YᵀY are built once per fitted model: a single-user request must not redo them."""
        # kept beside the model, not on it (scoring never changes a model), keyed by its item factors' identity
        key = id(self.item_factors_)
        ref, solver = _SOLVERS.get(key, (None, None))
        if ref is None or ref() is not self.item_factors_:
            from implicit.cpu.als import AlternatingLeastSquares

            class FoldIn(AlternatingLeastSquares):
                @property
                def YtY(self):  # noqa: N802 (implicit's name); the item factors never change here
                    if self._yty is None:
                        self._yty = AlternatingLeastSquares.YtY.fget(self)
                    return self._yty

            solver = self._implicit_model(num_threads=1, cls=FoldIn)
            solver._yty = None
            solver.item_factors = self.item_factors_  # read only: recalculate_user never writes item factors
            _SOLVERS[key] = (weakref.ref(self.item_factors_), solver)
            weakref.finalize(self.item_factors_, _SOLVERS.pop, key, None)
        with single_threaded_blas():
            return solver.recalculate_user(np.arange(history.shape[0]), history)

    def _implicit_model(self, cls: type | None = None, **overrides: Any) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares  # heavy import, only when used

        cls = cls or AlternatingLeastSquares
        cfg = self.config
        params: dict[str, Any] = {
            "factors": cfg.factors, "regularization": cfg.regularization, "alpha": cfg.alpha,
            "iterations": cfg.iterations, "use_cg": cfg.use_cg, "random_state": cfg.seed,
            "num_threads": cfg.num_threads, "dtype": np.float32, **overrides,
        }
        return cls(**params)
