"""Item kNN: shrunk cosine against a brute-force computation, shrinkage, top-N, IDF."""

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


def brute_force(x: np.ndarray, shrinkage: float) -> np.ndarray:
    norms = np.linalg.norm(x, axis=0)
    sim = (x.T @ x) / (norms[:, None] * norms[None, :] + shrinkage)
    np.fill_diagonal(sim, 0.0)
    return sim


def test_full_neighbourhood_equals_brute_force():
    rng = np.random.default_rng(1)
    x = (rng.random((40, 15)) < 0.3) * rng.uniform(0.5, 2, (40, 15))
    for shrinkage in (0.0, 5.0):
        model = create_model("item_knn", n_neighbors=100, shrinkage=shrinkage).fit(interactions(x))
        np.testing.assert_allclose(model.similarity_.toarray(), brute_force(x, shrinkage), rtol=1e-5, atol=1e-6)


def test_shrinkage_penalises_similarities_with_few_co_viewers():
    # items 0 and 1 share one viewer (cosine 1.0); items 2 and 3 share ten (cosine 1.0 as well)
    x = np.zeros((11, 4))
    x[0, [0, 1]] = 1
    x[1:, [2, 3]] = 1
    plain = create_model("item_knn", shrinkage=0.0).fit(interactions(x)).similarity_.toarray()
    shrunk = create_model("item_knn", shrinkage=2.0).fit(interactions(x)).similarity_.toarray()
    assert plain[0, 1] == plain[2, 3] > 0.99
    assert shrunk[0, 1] < shrunk[2, 3]
    assert shrunk[0, 1] == np.float32(1 / 3)


def test_keeps_at_most_n_neighbours_per_item():
    rng = np.random.default_rng(2)
    x = (rng.random((60, 30)) < 0.4).astype(float)
    model = create_model("item_knn", n_neighbors=4).fit(interactions(x))
    assert np.diff(model.similarity_.indptr).max() <= 4
    full = brute_force(x, 10.0)
    for item in range(30):
        kept = model.similarity_[item].data
        assert np.isclose(kept.min(), np.sort(full[item])[-4], rtol=1e-5)


def test_idf_weighting_discounts_heavy_users():
    x = np.zeros((3, 3))
    x[0] = 1  # a heavy user who watched everything
    x[1, [0, 1]] = 1
    x[2, [0, 2]] = 1
    plain = create_model("item_knn", shrinkage=0.0).fit(interactions(x)).similarity_.toarray()
    idf = create_model("item_knn", shrinkage=0.0, weighting="idf").fit(interactions(x)).similarity_.toarray()
    assert idf[1, 2] < plain[1, 2]  # 1 and 2 co-occur only in the heavy user's history
