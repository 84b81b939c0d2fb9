"""The LightGBM ranker: learns a planted order, scores without changing, saves without pickle, refuses bad input."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.errors import ChecksumError, DataError, NotFound
from streamrec.pipeline.ranker import Ranker


def planted(seed: int = 0, groups: int = 60, size: int = 20):
    """Relevance is driven by feature 0 (and a little by 1); feature 2 is noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(groups * size, 3)).astype(np.float32)
    signal = x[:, 0] + 0.3 * x[:, 1]
    labels = np.digitize(signal, [1.0, 2.0]).astype(np.int32)  # 0, 1, 2
    return x, labels, np.full(groups, size)


def ndcg_of(scores, labels, groups, k=5):
    out, start = [], 0
    for g in groups:
        s, l = scores[start:start + g], labels[start:start + g]
        gains = (2.0 ** l[np.argsort(-s)][:k] - 1) / np.log2(np.arange(2, k + 2))
        ideal = (2.0 ** np.sort(l)[::-1][:k] - 1) / np.log2(np.arange(2, k + 2))
        out.append(gains.sum() / ideal.sum() if ideal.sum() else 1.0)
        start += g
    return float(np.mean(out))


def test_learns_the_planted_order_and_names_the_feature_that_matters():
    x, y, groups = planted()
    ranker = Ranker(n_estimators=50, num_threads=1).fit(x, y, groups, ["signal", "weak", "noise"])
    xt, yt, gt = planted(seed=1)
    scores = ranker.score(xt)
    assert ndcg_of(scores, yt, gt) > ndcg_of(np.random.default_rng(0).random(len(yt)), yt, gt) + 0.3
    importance = ranker.importance()
    assert next(iter(importance)) == "signal" and importance["signal"] > importance["noise"]
    before = xt.copy()
    np.testing.assert_array_equal(ranker.score(xt), scores)  # deterministic, input untouched
    np.testing.assert_array_equal(xt, before)


def test_save_load_round_trip_and_a_tampered_file_is_refused(tmp_path):
    x, y, groups = planted()
    ranker = Ranker(n_estimators=20, num_threads=1).fit(x, y, groups, ["a", "b", "c"])
    ranker.save(tmp_path / "r")
    loaded = Ranker.load(tmp_path / "r")
    np.testing.assert_allclose(loaded.score(x), ranker.score(x), rtol=1e-6)
    text = (tmp_path / "r" / "ranker.txt").read_text()
    (tmp_path / "r" / "ranker.txt").write_text(text.replace("feature_names=a b c", "feature_names=a b d"))
    with pytest.raises(ChecksumError):
        Ranker.load(tmp_path / "r")
    with pytest.raises(NotFound):
        Ranker.load(tmp_path / "nothing")


def test_bad_training_input_and_wrong_width_are_clear_errors():
    x, y, groups = planted()
    with pytest.raises(DataError, match="do not agree"):
        Ranker().fit(x, y[:-1], groups, ["a", "b", "c"])
    with pytest.raises(DataError, match="no positive label"):
        Ranker().fit(x, np.zeros_like(y), groups, ["a", "b", "c"])
    with pytest.raises(DataError, match="not fitted"):
        Ranker().score(x)
    fitted = Ranker(n_estimators=5, num_threads=1).fit(x, y, groups, ["a", "b", "c"])
    with pytest.raises(DataError, match="trained on 3"):
        fitted.score(x[:, :2])


def test_groups_without_a_positive_are_left_out_of_training_and_the_rest_kept_in_order():
    from streamrec.pipeline.ranker import _groups_with_positives

    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    labels = np.array([0, 0, 1, 0, 0, 2, 0], dtype=np.int32)
    groups = np.array([2, 2, 0, 2, 1])  # zeros | one positive | empty | one positive | zero
    kept_x, kept_y, kept_groups = _groups_with_positives(x, labels, groups)
    np.testing.assert_array_equal(kept_groups, [2, 2])
    np.testing.assert_array_equal(kept_y, [1, 0, 0, 2])
    np.testing.assert_array_equal(kept_x, x[2:6])
    every = _groups_with_positives(x[2:6], labels[2:6], np.array([2, 2]))
    np.testing.assert_array_equal(every[2], [2, 2])


def test_all_zero_groups_do_not_change_what_the_ranker_learns_from():
    x, labels, groups = planted()
    rng = np.random.default_rng(5)
    padding = rng.normal(size=(200, 3)).astype(np.float32)  # ten users who watched none of their candidates
    padded = Ranker(early_stopping_rounds=0, n_estimators=20).fit(
        np.vstack([x, padding]), np.concatenate([labels, np.zeros(200, np.int32)]),
        np.concatenate([groups, np.full(10, 20)]), ["a", "b", "c"])
    plain = Ranker(early_stopping_rounds=0, n_estimators=20).fit(x, labels, groups, ["a", "b", "c"])
    np.testing.assert_array_equal(padded.score(x), plain.score(x))
