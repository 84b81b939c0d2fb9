"""The evaluation runner, driven by tiny Recommenders defined here."""

from __future__ import annotations

import json
from typing import Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import BaseModel
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError, DataError
from streamrec.evaluation import EvaluationResult, Segments, Split, evaluate, prepare
from streamrec.evaluation.splits import stratified_split, strong_generalization_split
from streamrec.models.base import Recommender


class StubConfig(BaseModel, extra="forbid"):
    seen_boost: float = 0.0


class CountStub(Recommender):
    """Items by training count; `seen_boost` lifts the user's own history to the top."""

    name = "count_stub"
    config_type = StubConfig
    learned = ("counts_",)

    def fit(self, data: Interactions) -> Self:
        self.counts_ = np.asarray((data.matrix != 0).sum(axis=0), dtype=np.float32).ravel()
        self.item_ids_ = data.item_ids
        return self

    def score(self, history: sparse.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        scores = np.tile(self.counts_, (history.shape[0], 1))
        return scores + self.config.seen_boost * 1000 * (history.toarray() != 0)


class OracleStub(CountStub):
    """Knows each training user's test items (`truth`: user id → item ids); seen items above everything."""

    name = "oracle_stub"
    truth: dict[str, set[str]] = {}

    def fit(self, data: Interactions) -> Self:
        super().fit(data)
        self.user_ids_ = data.user_ids
        self.index_ = data.item_index
        return self

    def score(self, history: sparse.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        scores = np.zeros(history.shape, dtype=np.float32)
        for r, u in enumerate(users if users is not None else []):
            if u >= 0:
                cols = [self.index_[i] for i in self.truth.get(self.user_ids_[u], ()) if i in self.index_]
                scores[r, cols] = 1.0
        return scores + 2.0 * (history.toarray() != 0)


def _table(n_users: int = 30, n_items: int = 40, density: float = 0.5, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(mask)
    return pa.table({
        "user_id": [f"u{u:02d}" for u in users],
        "item_id": [f"i{i:02d}" for i in items],
        "weight": rng.integers(1, 5, len(users)).astype(np.float32),
        "ts": rng.integers(0, 10_000, len(users)),
    })


def _truth(split: Split) -> dict[str, set[str]]:
    test = split.test.to_pandas()
    return {u: set(g["item_id"]) for u, g in test.groupby("user_id")}


def test_oracle_scores_one_and_seen_items_are_excluded():
    split = stratified_split(_table(), ratio=0.7, seed=1)
    OracleStub.truth = _truth(split)
    result = evaluate({"oracle": OracleStub()}, split, k=5, ks=(5,), n_boot=50, latency_users=0)
    assert result.counts["test_rows_unknown_item"] == 0
    ndcg = result.models["oracle"].metrics["ndcg@5"]
    assert ndcg.mean == pytest.approx(1.0) and ndcg.low == pytest.approx(1.0)
    assert result.models["oracle"].metrics["map@5"].mean == pytest.approx(1.0)
    # the same model without the exclusion recommends what the users already had: no hit at all
    leaky = evaluate({"oracle": OracleStub()}, split, k=5, ks=(5,), n_boot=50, latency_users=0, exclude_seen=False)
    assert leaky.models["oracle"].metrics["hit_rate@5"].mean == 0.0


def test_metrics_bounds_segments_latency_and_json_round_trip(tmp_path):
    split = stratified_split(_table(n_users=40), ratio=0.75, seed=3)
    genres = {f"i{i:02d}": ["Drama"] if i % 2 else ["Comedy", "Drama"] for i in range(40)}
    result = evaluate(
        {"pop": CountStub(), "pop_leaky": CountStub(seen_boost=1.0)}, split, k=10, ks=(5, 20),
        item_genres=genres, segments=Segments(thresholds=(15,), names=("light", "heavy")), n_boot=100,
        latency_users=5, chunk_size=7, exclude_seen=True,
    )
    assert result.ks == (5, 10, 20) and result.n_users == 40 and result.n_items == 40
    pop = result.models["pop"]
    for k in (5, 10, 20):
        for metric in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "popularity_percentile",
                       "diversity", "coverage"):
            est = pop.metrics[f"{metric}@{k}"]
            assert 0 <= est.mean <= 1, (metric, k)
            if est.low is not None:
                assert est.low <= est.mean <= est.high
        assert pop.metrics[f"novelty@{k}"].mean > 0 and pop.metrics[f"arp@{k}"].mean > 0
    assert pop.metrics["coverage@10"].low is None
    # with seen items excluded, boosting them changes nothing
    assert result.models["pop_leaky"].metrics["ndcg@10"].mean == pytest.approx(pop.metrics["ndcg@10"].mean)
    assert sum(s["ndcg@10"].n for s in pop.segments.values()) == 40
    assert set(pop.segments) == {"light", "heavy"}
    assert {"batch_ms_per_user_p50", "batch_ms_per_user_p99", "throughput_users_per_s", "single_ms_p50",
            "single_ms_p99"} <= set(pop.latency)
    assert pop.fit_seconds >= 0 and pop.model == "count_stub" and pop.config == {"seen_boost": 0.0}
    assert pop.vs_best is not None
    text = result.to_json(tmp_path / "r.json")
    json.loads(text)  # strict JSON
    loaded = EvaluationResult.load(tmp_path / "r.json")
    assert loaded.to_dict() == json.loads(text)
    assert loaded.models["pop"].metrics["ndcg@10"] == pop.metrics["ndcg@10"]


def test_same_seed_same_numbers_and_best_model_gap_is_zero():
    split = stratified_split(_table(), seed=5)
    OracleStub.truth = _truth(split)
    runs = [evaluate({"pop": CountStub(), "oracle": OracleStub()}, split, n_boot=200, seed=9, latency_users=0)
            for _ in range(2)]
    assert runs[0].models["pop"].metrics == runs[1].models["pop"].metrics
    assert runs[0].best() == "oracle"
    assert runs[0].models["oracle"].vs_best.mean == 0.0
    gap = runs[0].models["pop"].vs_best
    assert gap.high < 0  # the paired interval of (pop − oracle) excludes zero


def test_progress_reaches_total_in_order():
    split = stratified_split(_table(), seed=2)
    calls: list[tuple[int, int]] = []
    result = evaluate({"a": CountStub(), "b": CountStub()}, split, chunk_size=8, n_boot=10, latency_users=0,
                      on_progress=lambda done, total: calls.append((done, total)))
    total = 2 * result.n_users
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and all(t == total for _, t in calls)


def test_items_unknown_to_training_stay_relevant_and_are_counted():
    train = pa.table({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"], "weight": [1.0, 1.0, 1.0]})
    test = pa.table({"user_id": ["b", "b", "c"], "item_id": ["y", "new", "x"], "weight": [1.0, 1.0, 1.0]})
    split = Split("manual", train, test)
    data = prepare(split)
    assert data.counts["test_rows_unknown_item"] == 1 and data.counts["test_users_unknown_to_training"] == 1
    assert data.user_ids.tolist() == ["b", "c"] and data.rows.tolist() == [1, -1]
    assert data.relevant.shape == (2, 3) and np.diff(data.relevant.indptr).tolist() == [2, 1]
    result = evaluate({"pop": CountStub()}, split, k=1, ks=(1,), n_boot=10, latency_users=0)
    # b: top-1 unseen is y (a hit) of 2 relevant; c (cold): top-1 is x (a hit) of 1
    assert result.models["pop"].metrics["recall@1"].mean == pytest.approx((1 / 2 + 1) / 2)
    dropped = evaluate({"pop": CountStub()}, split, k=1, ks=(1,), n_boot=10, latency_users=0,
                       drop_unknown_items=True)
    assert dropped.models["pop"].metrics["recall@1"].mean == pytest.approx(1.0)


def test_strong_generalization_reads_fold_in_as_history():
    split = strong_generalization_split(_table(n_users=30), heldout_users=6, seed=4)
    data = prepare(split)
    assert (data.rows == -1).all()
    fold = split.fold_in.to_pandas()
    for r, user in enumerate(data.user_ids):
        cols = set(data.history[r].indices.tolist())
        assert cols == {data.train.item_index[i] for i in fold.loc[fold.user_id == user, "item_id"]}
    result = evaluate({"pop": CountStub()}, split, n_boot=10, latency_users=3)
    assert result.split["name"] == "strong_generalization" and result.n_users == len(data.user_ids)


def test_models_by_registry_name_and_bad_specs():
    split = stratified_split(_table(), seed=1)
    result = evaluate({"popular": ("popularity", None)}, split, n_boot=10, latency_users=0)
    assert result.models["popular"].model == "popularity"
    with pytest.raises(ConfigError, match="Recommender"):
        evaluate({"x": 42}, split)
    with pytest.raises(ConfigError, match="no models"):
        evaluate({}, split)
    empty = Split("empty", split.train, split.test.slice(0, 0))
    with pytest.raises(DataError, match="no rows"):
        evaluate({"pop": CountStub()}, empty)


def test_pandas_split_tables_and_weight_column():
    frame = _table().to_pandas()
    split = stratified_split(pd.DataFrame(frame), seed=1)
    a = evaluate({"pop": CountStub()}, split, n_boot=10, latency_users=0, weight_col=None)
    b = evaluate({"pop": CountStub()}, split, n_boot=10, latency_users=0, weight_col="weight")
    assert a.models["pop"].metrics["ndcg@10"] == b.models["pop"].metrics["ndcg@10"]  # counts ignore weights
    assert a.settings["weight_col"] is None and b.settings["weight_col"] == "weight"
