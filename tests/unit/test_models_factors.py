"""ALS and BPR: fold-in of users unknown at training, threads, and implicit's parameters reaching it."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from streamrec.models import create_model
from tests.contract.test_models import planted


def row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def test_als_fold_in_of_own_history_matches_learned_user():
    data, _ = planted()
    model = create_model("als", factors=16, iterations=20).fit(data)
    learned = model.score(data.matrix, users=np.arange(data.n_users))
    folded = model.score(data.matrix, users=None)
    assert np.median(row_correlation(learned, folded)) > 0.99
    assert row_correlation(learned, folded).min() > 0.9


def test_als_exact_solver_fold_in_is_the_last_half_step():
    # with the Cholesky solver, users refolded against the final item factors move only a little
    data, _ = planted()
    model = create_model("als", factors=8, iterations=30, use_cg=False).fit(data)
    folded = model._fold_in(data.matrix)
    np.testing.assert_allclose(folded, model.user_factors_, atol=0.05 * np.abs(model.user_factors_).max())


def test_als_threads_do_not_change_the_result():
    data, _ = planted()
    one = create_model("als", factors=8, num_threads=1).fit(data)
    two = create_model("als", factors=8, num_threads=2).fit(data)
    np.testing.assert_allclose(one.user_factors_, two.user_factors_, rtol=1e-5, atol=1e-6)


def test_empty_history_folds_in_to_zero_for_als():
    data, _ = planted()
    model = create_model("als", factors=8).fit(data)
    scores = model.score(sparse.csr_matrix((2, data.n_items), dtype=np.float32))
    np.testing.assert_array_equal(scores, 0.0)


def test_bpr_fold_in_recommends_like_the_learned_user():
    data, held = planted()
    model = create_model("bpr", factors=16).fit(data)
    known, _ = model.recommend(data.matrix, k=10, users=np.arange(data.n_users))
    folded, _ = model.recommend(data.matrix, k=10, users=None)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(known.tolist(), folded.tolist(), strict=True)])
    assert overlap > 0.5
    hit_rate = np.mean([held[u] in folded[u] for u in range(data.n_users)])
    assert hit_rate > 2 * 10 / (data.n_items - 10)


def test_bpr_factors_carry_the_item_bias_column():
    data, _ = planted()
    model = create_model("bpr", factors=6).fit(data)
    assert model.item_factors_.shape == (data.n_items, 7)
    np.testing.assert_array_equal(model.user_factors_[:, -1], 1.0)


def test_bpr_least_squares_fold_in_also_tracks_the_learned_user():
    data, held = planted()
    model = create_model("bpr", factors=16, fold_in="least_squares").fit(data)
    known, _ = model.recommend(data.matrix, k=10, users=np.arange(data.n_users))
    folded, _ = model.recommend(data.matrix, k=10, users=None)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(known.tolist(), folded.tolist(), strict=True)])
    assert overlap > 0.4
    hit_rate = np.mean([held[u] in folded[u] for u in range(data.n_users)])
    assert hit_rate > 2 * 10 / (data.n_items - 10)
