"""MMR re-ranking: λ = 0 keeps the order, more λ more genre diversity, picks are distinct candidates."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.evaluation.metrics import intra_list_diversity
from streamrec.pipeline.rerank import genre_similarity, mmr


def test_zero_weight_is_the_score_order():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    genres = np.eye(4, dtype=bool)
    assert mmr(scores, genres, 3, 0.0).tolist() == [1, 3, 2]


def test_diversity_swaps_in_a_different_genre_and_grows_with_the_weight():
    # three dramas score highest, one comedy a little lower
    scores = np.array([1.0, 0.95, 0.9, 0.8])
    genres = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=bool)
    assert mmr(scores, genres, 2, 0.0).tolist() == [0, 1]
    assert mmr(scores, genres, 2, 0.5).tolist() == [0, 3]
    rng = np.random.default_rng(0)
    scores, genres = rng.random(60), rng.random((60, 6)) < 0.3
    ild = [intra_list_diversity(mmr(scores, genres, 10, w)[None, :], genres, 10)[0] for w in (0.0, 0.3, 0.7)]
    assert ild[0] < ild[1] <= ild[2]


def test_picks_are_distinct_and_at_most_the_candidates():
    rng = np.random.default_rng(1)
    picks = mmr(rng.random(7), rng.random((7, 3)) < 0.5, 10, 0.4)
    assert sorted(picks.tolist()) == list(range(7))
    assert mmr(np.zeros(0), np.zeros((0, 3), bool), 5, 0.4).tolist() == []
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        mmr(np.ones(2), np.ones((2, 1), bool), 1, 1.5)


def test_genre_similarity_is_jaccard():
    g = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool)
    np.testing.assert_allclose(genre_similarity(g), [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 0]])
