"""RP3β against the formula computed densely; β penalises popular titles."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.models import create_model


def interactions(dense: np.ndarray) -> Interactions:
    n_users, n_items = dense.shape
    return Interactions(sparse.csr_matrix(dense, dtype=np.float32),
                        np.array([f"u{i}" for i in range(n_users)], dtype=object),
                        np.array([f"t{i}" for i in range(n_items)], dtype=object))


def dense_rp3(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    binary = (x > 0).astype(float)
    p_ui = binary / binary.sum(axis=1, keepdims=True)
    p_iu = binary.T / binary.T.sum(axis=1, keepdims=True)
    w = (p_iu ** alpha) @ (p_ui ** alpha) / binary.sum(axis=0)[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    return w


def test_matches_the_formula():
    rng = np.random.default_rng(4)
    x = (rng.random((50, 14)) < 0.3).astype(float)
    x[0] = 1.0  # no empty rows or columns
    for alpha, beta in ((1.0, 0.0), (0.7, 0.5)):
        model = create_model("rp3beta", alpha=alpha, beta=beta, n_neighbors=100).fit(interactions(x))
        np.testing.assert_allclose(model.weights_.toarray(), dense_rp3(x, alpha, beta), rtol=1e-5, atol=1e-7)


def test_beta_moves_weight_away_from_popular_titles():
    rng = np.random.default_rng(5)
    x = (rng.random((200, 20)) < np.linspace(0.9, 0.05, 20)[None, :]).astype(float)
    popular_share = []
    for beta in (0.0, 1.0):
        w = create_model("rp3beta", beta=beta).fit(interactions(x)).weights_.toarray()
        popular_share.append(w[:, :5].sum() / w.sum())
    assert popular_share[1] < popular_share[0]


def test_row_normalisation():
    rng = np.random.default_rng(6)
    x = (rng.random((50, 10)) < 0.4).astype(float)
    w = create_model("rp3beta", normalize_rows=True).fit(interactions(x)).weights_
    sums = np.asarray(w.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums[sums > 0], 1.0, rtol=1e-5)
