"""Explanations: the seed title is the history title that contributes most, drivers are the positive SHAP values."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from streamrec.pipeline.explain import explain, seed_titles
from streamrec.pipeline.ranker import Ranker
from tests.unit.test_pipeline_ranker import planted


def test_seed_is_the_history_title_contributing_most():
    similarity = np.zeros((5, 5))
    similarity[0, 3], similarity[1, 3], similarity[1, 4] = 0.2, 0.5, 0.1
    history = sparse.csr_matrix(np.array([[1.0, 1.0, 0, 0, 0]]))
    assert seed_titles(history, np.array([3, 4, 2]), similarity).tolist() == [1, 1, -1]
    heavier = sparse.csr_matrix(np.array([[5.0, 1.0, 0, 0, 0]]))  # watched much more: 5 × 0.2 > 1 × 0.5
    assert seed_titles(heavier, np.array([3]), similarity).tolist() == [0]


def test_explanations_name_source_seed_and_the_features_that_pushed_the_score():
    x, y, groups = planted()
    ranker = Ranker(n_estimators=30, num_threads=1).fit(x, y, groups, ["signal", "weak", "noise"])
    rows = x[:2].copy()
    rows[0, 0], rows[1, 0] = 3.0, -3.0  # one clearly relevant by the signal, one clearly not
    contrib = ranker.contributions(rows)
    np.testing.assert_allclose(contrib.sum(axis=1), ranker.score(rows), rtol=1e-4, atol=1e-4)
    similarity = np.zeros((4, 4))
    similarity[0, 2] = 1.0
    items = np.array(["a", "b", "c", "d"], dtype=object)
    out = explain(items, np.array([2, 3]), ranker.score(rows), ["ease", "trending"],
                  sparse.csr_matrix(np.array([[1.0, 0, 0, 0]])), similarity, contrib, ["signal", "weak", "noise"])
    assert (out[0].item_id, out[0].source, out[0].because_you_watched) == ("c", "ease", "a")
    assert out[0].top_features[0][0] == "signal" and out[0].top_features[0][1] > 0
    assert all(name != "signal" for name, _ in out[1].top_features)  # signal pushed d down, not up
    assert out[1].because_you_watched is None
    assert "because you watched a" in out[0].text() and "from trending" in out[1].text()
