"""Metrics: hand-computed values, agreement with Microsoft Recommenders' definitions, bounds, invariances,
bootstrap intervals and segments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from streamrec.errors import ConfigError
from streamrec.evaluation import metrics as M
from streamrec.evaluation.bootstrap import bootstrap_ci, bootstrap_means
from streamrec.evaluation.segments import Segments

RECS = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 0, -1, -1]])
RELEVANT = [np.array([2, 4, 9]), np.array([1]), np.array([9, 0])]


def test_hand_computed_values_at_4():
    # user 0: hits at ranks 2 and 4 of 3 relevant; user 1: no hit; user 2: hits at ranks 1, 2 (list of 2 items)
    assert M.hits(RECS, RELEVANT).tolist() == [[False, True, False, True], [False] * 4, [True, True, False, False]]
    np.testing.assert_allclose(M.precision_at_k(RECS, RELEVANT), [2 / 4, 0, 2 / 4])
    np.testing.assert_allclose(M.recall_at_k(RECS, RELEVANT), [2 / 3, 0, 1])
    np.testing.assert_allclose(M.hit_rate_at_k(RECS, RELEVANT), [1, 0, 1])
    np.testing.assert_allclose(M.mrr_at_k(RECS, RELEVANT), [1 / 2, 0, 1])
    dcg0 = 1 / math.log2(3) + 1 / math.log2(5)
    idcg0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    np.testing.assert_allclose(M.ndcg_at_k(RECS, RELEVANT), [dcg0 / idcg0, 0, 1])
    np.testing.assert_allclose(M.map_at_k(RECS, RELEVANT), [(1 / 2 + 2 / 4) / 3, 0, (1 + 1) / 2])


def test_hand_computed_values_at_2():
    np.testing.assert_allclose(M.precision_at_k(RECS, RELEVANT, 2), [1 / 2, 0, 1])
    np.testing.assert_allclose(M.recall_at_k(RECS, RELEVANT, 2), [1 / 3, 0, 1])
    np.testing.assert_allclose(M.ndcg_at_k(RECS, RELEVANT, 2), [(1 / math.log2(3)) / (1 + 1 / math.log2(3)), 0, 1])
    np.testing.assert_allclose(M.map_at_k(RECS, RELEVANT, 2), [(1 / 2) / 2, 0, 1])
    np.testing.assert_allclose(M.mrr_at_k(RECS, RELEVANT, 1), [0, 0, 1])


def test_csr_and_lists_agree_and_duplicates_count_once():
    csr = sparse.csr_matrix((np.ones(6), ([0, 0, 0, 1, 2, 2], [2, 4, 9, 1, 9, 0])), shape=(3, 12))
    dup = [np.array([2, 4, 9, 4]), np.array([1, 1]), np.array([9, 0])]
    for fn in M.ACCURACY_METRICS.values():
        np.testing.assert_allclose(fn(RECS, csr), fn(RECS, RELEVANT))
        np.testing.assert_allclose(fn(RECS, dup), fn(RECS, RELEVANT))


def test_users_without_relevant_items_score_zero_and_bad_input_is_rejected():
    recs = np.array([[0, 1]])
    for fn in M.ACCURACY_METRICS.values():
        assert fn(recs, [np.array([], dtype=np.int64)]).tolist() == [0.0]
    with pytest.raises(ValueError, match="k must be"):
        M.ndcg_at_k(recs, [np.array([0])], k=3)
    with pytest.raises(ValueError, match="users"):
        M.ndcg_at_k(recs, [np.array([0]), np.array([1])])


def _ms_reference(recs: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """Microsoft Recommenders' python_evaluation formulas (relevancy_method=None, binary), one user at a time:
    precision = hits / k, recall = hits / actual, ndcg = Σ 1/ln(1+rank) over hits / Σ_{i≤min(k, actual)} 1/ln(1+i),
    map_at_k = Σ_hits (hit number / rank) / min(actual, k), averaged over users."""
    out = {"precision": [], "recall": [], "ndcg": [], "map": []}
    for row, rel in zip(recs, relevant):
        rel = set(rel.tolist())
        ranks = [r + 1 for r, item in enumerate(row[:k]) if item >= 0 and item in rel]
        actual = len(rel)
        out["precision"].append(len(ranks) / k)
        out["recall"].append(len(ranks) / actual)
        dcg = sum(1 / math.log(1 + r) for r in ranks)
        idcg = sum(1 / math.log(1 + i) for i in range(1, min(k, actual) + 1))
        out["ndcg"].append(dcg / idcg)
        out["map"].append(sum((n + 1) / r for n, r in enumerate(ranks)) / min(actual, k))
    return {key: float(np.mean(v)) for key, v in out.items()}


@st.composite
def ranking_case(draw):
    n_items = draw(st.integers(2, 30))
    n_users = draw(st.integers(1, 8))
    k = draw(st.integers(1, n_items))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    recs = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    relevant = [rng.choice(n_items, size=rng.integers(1, n_items + 1), replace=False) for _ in range(n_users)]
    return recs, relevant, k


@settings(max_examples=150, deadline=None)
@given(ranking_case())
def test_agrees_with_microsoft_recommenders_definitions(case):
    recs, relevant, k = case
    ref = _ms_reference(recs, relevant, k)
    assert M.precision_at_k(recs, relevant, k).mean() == pytest.approx(ref["precision"])
    assert M.recall_at_k(recs, relevant, k).mean() == pytest.approx(ref["recall"])
    assert M.ndcg_at_k(recs, relevant, k).mean() == pytest.approx(ref["ndcg"])
    assert M.map_at_k(recs, relevant, k).mean() == pytest.approx(ref["map"])


@settings(max_examples=150, deadline=None)
@given(ranking_case())
def test_bounds_and_permutation_invariance(case):
    recs, relevant, k = case
    rng = np.random.default_rng(0)
    users = rng.permutation(len(recs))
    relabel = rng.permutation(int(max(recs.max(), max(r.max() for r in relevant))) + 1)
    for name, fn in M.ACCURACY_METRICS.items():
        values = fn(recs, relevant, k)
        assert ((values >= 0) & (values <= 1 + 1e-12)).all(), name
        # the order of users, the order within relevant sets and the items' ids do not matter
        np.testing.assert_allclose(fn(recs[users], [relevant[u] for u in users], k), values[users])
        np.testing.assert_allclose(fn(recs, [r[::-1] for r in relevant], k), values)
        np.testing.assert_allclose(fn(relabel[recs], [relabel[r] for r in relevant], k), values)
    # set metrics do not depend on the order within the top k
    shuffled = recs[:, ::-1]
    for fn in (M.precision_at_k, M.recall_at_k, M.hit_rate_at_k):
        np.testing.assert_allclose(fn(shuffled, relevant, k), fn(recs, relevant, k))


@settings(max_examples=100, deadline=None)
@given(ranking_case())
def test_perfect_ranking_scores_one(case):
    _, relevant, k = case
    n_items = int(max(r.max() for r in relevant)) + 1
    perfect = np.stack([np.concatenate([r, np.setdiff1d(np.arange(n_items + k), r)])[:k] for r in relevant])
    np.testing.assert_allclose(M.ndcg_at_k(perfect, relevant, k), 1.0)
    np.testing.assert_allclose(M.map_at_k(perfect, relevant, k), 1.0)
    np.testing.assert_allclose(M.mrr_at_k(perfect, relevant, k), 1.0)
    np.testing.assert_allclose(M.hit_rate_at_k(perfect, relevant, k), 1.0)
    sizes = np.array([len(r) for r in relevant])
    np.testing.assert_allclose(M.recall_at_k(perfect, relevant, k), np.minimum(sizes, k) / sizes)
    np.testing.assert_allclose(M.precision_at_k(perfect, relevant, k), np.minimum(sizes, k) / k)


# --- beyond accuracy ------------------------------------------------------------------------------------------------
def test_coverage_novelty_popularity():
    recs = np.array([[0, 1], [0, 2], [1, -1]])
    assert M.catalog_coverage(recs, n_items=6) == pytest.approx(3 / 6)
    assert M.catalog_coverage(recs, n_items=6, k=1) == pytest.approx(2 / 6)
    popularity = np.array([2, 1, 4, 0, 0, 0])  # users (of 4) who had each item
    np.testing.assert_allclose(M.novelty(recs, popularity, n_users=4), [(1 + 2) / 2, (1 + 0) / 2, 2])
    np.testing.assert_allclose(M.average_popularity(recs, popularity), [1.5, 3, 1])
    # percentiles of [2, 1, 4, 0, 0, 0]: ranks 5, 4, 6, 2, 2, 2 of 6
    np.testing.assert_allclose(M.popularity_percentile(recs, popularity), [(5 + 4) / 12, (5 + 6) / 12, 4 / 6])


def test_intra_list_diversity_by_hand():
    genres, names = M.genre_matrix(["a", "b", "c", "d"], {"a": ["Drama", "Comedy"], "b": ["Comedy"], "c": [],
                                                        "d": ["Drama", "Comedy"]})
    assert names == ["Comedy", "Drama"] and genres.shape == (4, 2)
    recs = np.array([[0, 1, 2], [0, 3, -1], [1, -1, -1]])
    # user 0: J(a,b) = 1/2, J(a,c) = 0, J(b,c) = 0 → 1 - 1/6; user 1: identical sets → 0; user 2: one item → 0
    np.testing.assert_allclose(M.intra_list_diversity(recs, genres), [5 / 6, 0, 0])
    np.testing.assert_allclose(M.intra_list_diversity(recs, sparse.csr_matrix(genres), chunk=1), [5 / 6, 0, 0])


# --- bootstrap ------------------------------------------------------------------------------------------------------
def test_bootstrap_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(1).random(500)
    a = bootstrap_ci(values, n_boot=400, seed=3)[0]
    b = bootstrap_ci(values, n_boot=400, seed=3)[0]
    c = bootstrap_ci(values, n_boot=400, seed=4)[0]
    assert a == b and a != c
    assert a.low < a.mean < a.high and a.n == 500
    width = 2 * 1.96 * values.std() / math.sqrt(len(values))  # normal approximation
    assert a.high - a.low == pytest.approx(width, rel=0.2)


def test_bootstrap_columns_share_resamples_and_edge_cases():
    values = np.random.default_rng(2).random((50, 2))
    together = bootstrap_means(values, n_boot=30, seed=5, max_cells=120)  # several blocks
    np.testing.assert_allclose(together[:, 0], bootstrap_means(values[:, 0], n_boot=30, seed=5))
    constant = bootstrap_ci(np.full(20, 0.25))[0]
    assert constant.mean == constant.low == constant.high == pytest.approx(0.25)
    assert bootstrap_ci(np.array([0.5]))[0].low is None
    assert bootstrap_ci(np.zeros(0))[0].n == 0
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(values, level=1.0)


# --- segments -------------------------------------------------------------------------------------------------------
def test_segments_assign_and_describe():
    seg = Segments()
    assert seg.assign(np.array([0, 9, 10, 99, 100, 5000])).tolist() == [0, 0, 1, 1, 2, 2]
    assert seg.describe() == ["new (0–9)", "regular (10–99)", "heavy (≥100)"]
    custom = Segments(thresholds=(5,), names=("cold", "warm"))
    assert custom.assign(np.array([4, 5])).tolist() == [0, 1]
    with pytest.raises(ConfigError, match="names"):
        Segments(thresholds=(5,), names=("one",))
    with pytest.raises(ConfigError, match="ascending"):
        Segments(thresholds=(5, 5), names=("a", "b", "c"))
