"""EASE: the closed form, its zero diagonal, the in-place inverse and the memory guard."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError
from streamrec.models import _neighbors, create_model
from streamrec.models.ease import _inverse_spd_inplace


def tiny(seed: int = 3, n_users: int = 30, n_items: int = 12) -> Interactions:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.3) * rng.uniform(0.5, 2.0, (n_users, n_items))
    return Interactions(sparse.csr_matrix(dense, dtype=np.float32),
                        np.array([f"u{i}" for i in range(n_users)], dtype=object),
                        np.array([f"t{i}" for i in range(n_items)], dtype=object))


@pytest.fixture(params=[None, 40], ids=["one-block", "many-blocks"])
def block_size(request, monkeypatch):
    """Run with the real block size and with blocks of a few rows, so block edges are exercised."""
    if request.param:
        monkeypatch.setattr(_neighbors, "BLOCK_ELEMENTS", request.param)
    return request.param


def test_matches_closed_form_with_zero_diagonal(block_size):
    data, l2 = tiny(), 5.0
    model = create_model("ease", l2=l2).fit(data)
    x = data.matrix.toarray().astype(np.float64)
    inverse = np.linalg.inv(x.T @ x + l2 * np.eye(data.n_items))
    expected = np.eye(data.n_items) - inverse / np.diag(inverse)[None, :]
    assert model.weights_.dtype == np.float32
    np.testing.assert_array_equal(np.diag(model.weights_), 0.0)
    np.testing.assert_allclose(model.weights_, expected, atol=1e-5)
    scores = model.score(data.matrix)
    np.testing.assert_allclose(scores, x @ expected, rtol=1e-4, atol=1e-4)


def test_inplace_inverse_matches_numpy(block_size):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(17, 17))
    spd = a @ a.T + 17 * np.eye(17)
    expected = np.linalg.inv(spd)
    got = _inverse_spd_inplace(spd.copy())
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got, got.T)


def test_larger_penalty_shrinks_weights():
    data = tiny()
    small = np.abs(create_model("ease", l2=1.0).fit(data).weights_).sum()
    large = np.abs(create_model("ease", l2=1000.0).fit(data).weights_).sum()
    assert large < small


def test_catalog_over_max_items_is_refused_before_allocating():
    with pytest.raises(ConfigError, match="max_items"):
        create_model("ease", max_items=5).fit(tiny())


def timed(seed: int = 5, n_users: int = 25, n_items: int = 10) -> Interactions:
    """`tiny` with a watch time per pair: bursts of a few minutes inside a day, days apart."""
    data = tiny(seed, n_users, n_items)
    rng = np.random.default_rng(seed)
    coo = data.matrix.tocoo()
    times = rng.integers(0, 5, coo.nnz) * 86_400.0 + rng.uniform(0, 1_800, coo.nnz) + 1.7e9
    last_ts = sparse.csr_matrix((times, (coo.row, coo.col)), shape=data.matrix.shape)
    return Interactions(data.matrix, data.user_ids, data.item_ids, last_ts=last_ts)


def brute_force_session_gram(last_ts: sparse.csr_matrix, tau: float, horizon: float) -> np.ndarray:
    n = last_ts.shape[1]
    out = np.zeros((n, n))
    for u in range(last_ts.shape[0]):
        row = last_ts[u]
        items, t = row.indices, row.data
        for a in range(len(items)):
            for b in range(len(items)):
                gap = abs(t[a] - t[b])
                if gap <= horizon * tau:
                    out[items[a], items[b]] += np.exp(-gap / tau)
    return out


@pytest.mark.parametrize("tau", [60.0, 900.0, 86_400.0])
def test_session_cooccurrence_matches_brute_force(tau):
    data = timed()
    gram = np.zeros((data.n_items, data.n_items))
    pairs = _neighbors.add_session_cooccurrence(gram, data.last_ts, 2.0, tau, horizon=4.0)
    expected = 2.0 * brute_force_session_gram(data.last_ts, tau, horizon=4.0)
    np.testing.assert_allclose(gram, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gram, gram.T, rtol=1e-12)
    np.testing.assert_allclose(np.diag(gram), 2.0 * np.diff(data.matrix.tocsc().indptr))
    times = [np.sort(data.last_ts[u].data) for u in range(data.n_users)]
    assert pairs == sum(int((np.abs(t[:, None] - t[None, :]) <= 4.0 * tau).sum() - len(t)) // 2 for t in times)


def test_session_ease_is_the_closed_form_on_the_augmented_gram():
    data, l2, gamma, tau = timed(), 5.0, 3.0, 600.0
    model = create_model("ease", l2=l2, session_weight=gamma, session_seconds=tau).fit(data)
    x = data.matrix.toarray().astype(np.float64)
    gram = x.T @ x + gamma * brute_force_session_gram(data.last_ts, tau, horizon=4.0)
    inverse = np.linalg.inv(gram + l2 * np.eye(data.n_items))
    expected = np.eye(data.n_items) - inverse / np.diag(inverse)[None, :]
    np.testing.assert_allclose(model.weights_, expected, atol=1e-5)
    plain = create_model("ease", l2=l2).fit(data)
    assert not np.allclose(model.weights_, plain.weights_, atol=1e-4)


def test_session_weight_without_times_fits_plain_ease():
    data = tiny()
    with_weight = create_model("ease", l2=5.0, session_weight=3.0).fit(data)
    plain = create_model("ease", l2=5.0).fit(data)
    np.testing.assert_array_equal(with_weight.weights_, plain.weights_)
