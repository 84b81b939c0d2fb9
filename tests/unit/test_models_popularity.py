"""Popularity: all-time by weight or count; trending prefers recent titles and falls back without times."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.models import create_model

DAY = 86_400.0


def data(with_times: bool = True) -> Interactions:
    # title 0: 6 plays 60 days ago; title 1: 3 plays today; title 2: one heavy play today (weight 5)
    rows = list(range(6)) + [6, 7, 8] + [9]
    cols = [0] * 6 + [1] * 3 + [2]
    weights = [1.0] * 9 + [5.0]
    now = 1.7e9
    times = [now - 60 * DAY] * 6 + [now] * 4
    matrix = sparse.csr_matrix((weights, (rows, cols)), shape=(10, 3), dtype=np.float32)
    last_ts = sparse.csr_matrix((times, (rows, cols)), shape=(10, 3)) if with_times else None
    return Interactions(matrix, np.array([f"u{i}" for i in range(10)], dtype=object),
                        np.array(["old", "new", "heavy"], dtype=object), last_ts)


def ranking(model) -> list[int]:
    return np.argsort(-model.popularity_, kind="stable").tolist()


def test_all_time_by_weight_and_by_count():
    assert ranking(create_model("popularity").fit(data())) == [0, 2, 1]
    assert ranking(create_model("popularity", measure="count").fit(data())) == [0, 1, 2]


def test_trending_prefers_recent_titles():
    model = create_model("popularity", half_life_days=7.0).fit(data())
    assert bool(model.decayed_)
    assert ranking(model) == [2, 1, 0]
    np.testing.assert_allclose(model.popularity_[0], 6 * 0.5 ** (60 / 7) / 5, rtol=1e-5)


def test_trending_without_times_falls_back_to_all_time():
    model = create_model("popularity", half_life_days=7.0).fit(data(with_times=False))
    assert not bool(model.decayed_)
    assert ranking(model) == [0, 2, 1]


def test_same_scores_for_every_user_and_scores_are_a_copy():
    model = create_model("popularity").fit(data())
    scores = model.score(sparse.csr_matrix((4, 3), dtype=np.float32))
    assert (scores == model.popularity_).all()
    scores[:] = -1
    assert model.popularity_.max() == 1.0
