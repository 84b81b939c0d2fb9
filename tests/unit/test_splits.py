"""Splits: hand-checked examples, bit-for-bit parity with Microsoft Recommenders' python_stratified_split,
and properties (no row lost or duplicated, determinism by seed, ratio per group)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.errors import ConfigError, DataError
from streamrec.evaluation.splits import (
    leave_last_n_split,
    stratified_split,
    strong_generalization_split,
    temporal_split,
)


def ms_python_stratified_split(data: pd.DataFrame, ratio: float = 0.75, filter_by: str = "user",
                               col_user: str = "userID", col_item: str = "itemID", seed: int = 42) -> list:
    """Microsoft Recommenders' _do_stratification(is_random=True, min_rating=1), re-written literally."""
    ratio_list = [ratio, 1 - ratio]
    split_by_column = col_user if filter_by == "user" else col_item
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        data["random"] = np.random.rand(data.shape[0])
    finally:
        np.random.set_state(state)
    data = data.sort_values([split_by_column, "random"])
    groups = data.groupby(split_by_column)
    data["count"] = groups[split_by_column].transform("count")
    data["rank"] = groups.cumcount() + 1
    data["rank"] = data["rank"] / data["count"]
    data = data.drop("count", axis=1)
    data = data.drop("random", axis=1)
    splits = []
    prev_threshold = None
    for threshold in np.cumsum(ratio_list):
        condition = data["rank"] <= threshold
        if prev_threshold is not None:
            condition &= data["rank"] > prev_threshold
        splits.append(data[condition].drop("rank", axis=1))
        prev_threshold = threshold
    return splits


def _ratings(n_users: int = 6, n_items: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.5]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["weight"] = rng.integers(1, 6, len(frame)).astype(np.float64)
    frame["ts"] = rng.integers(0, 1000, len(frame))
    frame["row"] = np.arange(len(frame))
    return frame


# --- stratified ---------------------------------------------------------------------------------------------------
def test_stratified_matches_microsoft_recommenders_on_a_known_example():
    frame = pd.DataFrame({
        "user_id": [1, 1, 2, 2, 2, 2, 3, 1, 4, 4, 4, 4, 4, 2],
        "item_id": [10, 11, 10, 12, 13, 14, 10, 12, 10, 11, 12, 13, 14, 15],
        "weight": [5.0, 4.0, 3.0, 5.0, 1.0, 2.0, 4.0, 3.0, 2.0, 5.0, 4.0, 1.0, 3.0, 2.0],
    })
    ms_train, ms_test = ms_python_stratified_split(
        frame.rename(columns={"user_id": "userID", "item_id": "itemID"}), ratio=0.75, seed=42)
    split = stratified_split(frame, ratio=0.75, by="user", seed=42)
    ours_train = split.train.to_pandas().rename(columns={"user_id": "userID", "item_id": "itemID"})
    ours_test = split.test.to_pandas().rename(columns={"user_id": "userID", "item_id": "itemID"})
    pd.testing.assert_frame_equal(ours_train, ms_train.reset_index(drop=True))
    pd.testing.assert_frame_equal(ours_test, ms_test.reset_index(drop=True))
    # the rule, by hand: r / c <= 0.75 → user 1 (3 rows): 2 train; user 2 (5): 3; user 3 (1): 0; user 4 (5): 3
    assert ours_train.groupby("userID").size().to_dict() == {1: 2, 2: 3, 4: 3}
    assert ours_test.groupby("userID").size().to_dict() == {1: 1, 2: 2, 3: 1, 4: 2}


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(1, 80),
    n_groups=st.integers(1, 8),
    ratio=st.one_of(st.sampled_from([0.5, 0.6, 0.7, 0.75, 0.8, 0.9]), st.floats(0.5, 0.99)),
    by=st.sampled_from(["user", "item"]),
    seed=st.integers(0, 2**31 - 1),
    data_seed=st.integers(0, 1000),
)
def test_stratified_is_row_for_row_microsoft_recommenders(n_rows, n_groups, ratio, by, seed, data_seed):
    rng = np.random.default_rng(data_seed)
    frame = pd.DataFrame({
        "user_id": rng.integers(0, n_groups, n_rows),
        "item_id": rng.integers(0, n_groups + 3, n_rows),
        "rating": rng.integers(1, 11, n_rows) / 2,
        "timestamp": rng.integers(0, 10**9, n_rows),
    })
    ms = ms_python_stratified_split(frame.rename(columns={"user_id": "userID", "item_id": "itemID"}),
                                    ratio=ratio, filter_by=by, seed=seed)
    split = stratified_split(frame, ratio=ratio, by=by, seed=seed)
    names = {"user_id": "userID", "item_id": "itemID"}
    pd.testing.assert_frame_equal(split.train.to_pandas().rename(columns=names), ms[0].reset_index(drop=True))
    pd.testing.assert_frame_equal(split.test.to_pandas().rename(columns=names), ms[1].reset_index(drop=True))


def test_stratified_accepts_arrow_and_string_ids():
    frame = _ratings()
    frame["user_id"] = "u" + frame["user_id"].astype(str)
    from_pandas = stratified_split(frame, seed=7)
    from_arrow = stratified_split(pa.Table.from_pandas(frame, preserve_index=False), seed=7)
    assert from_pandas.train.column("row").to_pylist() == from_arrow.train.column("row").to_pylist()
    assert from_pandas.name == "stratified_user" and from_pandas.dropped == {}


@settings(max_examples=50, deadline=None)
@given(data_seed=st.integers(0, 10_000), ratio=st.floats(0.05, 0.95), by=st.sampled_from(["user", "item"]),
       seed=st.integers(0, 1000))
def test_stratified_properties(data_seed, ratio, by, seed):
    frame = _ratings(seed=data_seed)
    split = stratified_split(frame, ratio=ratio, by=by, seed=seed)
    train_rows = split.train.column("row").to_pylist()
    test_rows = split.test.column("row").to_pylist()
    assert sorted(train_rows + test_rows) == list(range(len(frame)))  # nothing lost, nothing twice
    again = stratified_split(frame, ratio=ratio, by=by, seed=seed)
    assert again.train.column("row").to_pylist() == train_rows  # deterministic by seed
    col = "user_id" if by == "user" else "item_id"
    per_group = frame.groupby(col).size()
    in_train = split.train.to_pandas().groupby(col).size().reindex(per_group.index, fill_value=0)
    for count, got in zip(per_group, in_train):
        assert got == sum(1 for r in range(1, count + 1) if r / count <= ratio)
        assert abs(got - ratio * count) < 1


def test_stratified_seed_changes_the_draw():
    frame = _ratings(n_users=3, n_items=40)
    a = stratified_split(frame, seed=1).train.column("row").to_pylist()
    b = stratified_split(frame, seed=2).train.column("row").to_pylist()
    assert sorted(a) != sorted(b)


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5])
def test_stratified_rejects_bad_ratio(ratio):
    with pytest.raises(ConfigError, match="ratio"):
        stratified_split(_ratings(), ratio=ratio)


# --- temporal -----------------------------------------------------------------------------------------------------
def test_temporal_split_at_a_time_drops_and_counts_unseen():
    frame = pd.DataFrame({
        "user_id": ["a", "a", "b", "b", "c", "a", "b"],
        "item_id": ["x", "y", "x", "z", "x", "w", "y"],
        "weight": [1.0] * 7,
        "ts": [1, 2, 3, 9, 10, 11, 12],
    })
    split = temporal_split(frame, at=10)
    assert split.train.column("ts").to_pylist() == [1, 2, 3, 9]
    # c is unseen (user), a–w has an unseen item, b–y is kept
    assert split.test.to_pydict()["item_id"] == ["y"]
    assert split.dropped == {"test_user_unseen": 1, "test_item_unseen": 1}
    assert split.params["at"] == 10.0


def test_temporal_split_by_quantile_on_timestamps():
    ts = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    frame = pd.DataFrame({"user_id": ["u"] * 10, "item_id": [f"i{j % 3}" for j in range(10)], "ts": ts})
    split = temporal_split(frame, quantile=0.8)
    assert split.train.num_rows == 7  # the 0.8 quantile (lower) is day 8: days 1..7 train
    assert split.test.num_rows == 3 and split.dropped == {}
    assert split.params["at"].startswith("2024-01-08")
    assert split.summary()["train"] == {"rows": 7, "users": 1, "items": 3}


def test_temporal_split_keep_unseen_and_errors():
    frame = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "ts": [1, 2]})
    split = temporal_split(frame, at=2, drop_unseen=False)
    assert split.test.num_rows == 1 and split.dropped == {}
    with pytest.raises(DataError, match="time column"):
        temporal_split(frame.drop(columns="ts"))
    with pytest.raises(ConfigError, match="quantile"):
        temporal_split(frame, quantile=1.0)


@settings(max_examples=40, deadline=None)
@given(data_seed=st.integers(0, 10_000), quantile=st.floats(0.05, 0.95))
def test_temporal_properties(data_seed, quantile):
    frame = _ratings(seed=data_seed)
    split = temporal_split(frame, quantile=quantile)
    rows = split.train.column("row").to_pylist() + split.test.column("row").to_pylist()
    assert len(rows) == len(set(rows))
    assert len(rows) + sum(split.dropped.values()) == len(frame)
    if split.train.num_rows and split.test.num_rows:
        assert max(split.train.column("ts").to_pylist()) < min(split.test.column("ts").to_pylist())
    assert set(split.test.column("user_id").to_pylist()) <= set(split.train.column("user_id").to_pylist())
    assert set(split.test.column("item_id").to_pylist()) <= set(split.train.column("item_id").to_pylist())


# --- leave last N ------------------------------------------------------------------------------------------------
def test_leave_last_n_by_time_with_ties_and_short_users():
    frame = pd.DataFrame({
        "user_id": ["a", "a", "a", "a", "b", "c", "c"],
        "item_id": ["1", "2", "2", "4", "1", "1", "2"],
        "ts": [5, 1, 5, 3, 1, 2, 1],
        "row": range(7),
    })
    split = leave_last_n_split(frame, n=2)
    # a, by time: rows 1 (t=1), 3 (t=3), 0 and 2 (t=5, tie: the later row counts as later) → test rows 0, 2
    # b (1 row) and c (2 rows) have fewer than n + min_train = 3 rows: wholly train
    assert sorted(split.test.column("row").to_pylist()) == [0, 2]
    assert split.params["users_without_test"] == 2
    split1 = leave_last_n_split(frame, n=1)
    # a → row 2; c: row 6 (t=1) then row 5 (t=2) → row 5; b still has too few rows
    assert sorted(split1.test.column("row").to_pylist()) == [2, 5]
    assert split1.params["users_without_test"] == 1


def test_leave_last_n_drops_unseen_items():
    frame = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["1", "2"], "ts": [1, 2]})
    split = leave_last_n_split(frame, n=1)
    assert split.test.num_rows == 0 and split.dropped == {"test_item_unseen": 1}


@settings(max_examples=40, deadline=None)
@given(data_seed=st.integers(0, 10_000), n=st.integers(1, 4))
def test_leave_last_n_properties(data_seed, n):
    frame = _ratings(seed=data_seed)
    split = leave_last_n_split(frame, n=n, drop_unseen=False)
    rows = split.train.column("row").to_pylist() + split.test.column("row").to_pylist()
    assert sorted(rows) == list(range(len(frame)))
    test = split.test.to_pandas()
    train = split.train.to_pandas()
    for user, group in test.groupby("user_id"):
        assert len(group) == n
        assert group["ts"].min() >= train.loc[train.user_id == user, "ts"].max()


# --- strong generalization ----------------------------------------------------------------------------------------
def test_strong_generalization_holds_out_whole_users():
    frame = _ratings(n_users=20, n_items=30, seed=3)
    split = strong_generalization_split(frame, heldout_users=0.25, test_ratio=0.2, seed=1)
    assert split.fold_in is not None
    train_users = set(split.train.column("user_id").to_pylist())
    held = set(split.test.column("user_id").to_pylist()) | set(split.fold_in.column("user_id").to_pylist())
    assert len(held) == 5 and not (train_users & held)
    test = split.test.to_pandas().groupby("user_id").size()
    fold = split.fold_in.to_pandas().groupby("user_id").size()
    for user, n_test in test.items():
        assert n_test == int(0.2 * (n_test + fold.get(user, 0)))
    assert split.summary()["fold_in"]["users"] == 5


def test_strong_generalization_drops_items_unknown_to_train():
    frame = pd.DataFrame({"user_id": ["a", "a", "b", "b", "b"], "item_id": ["x", "y", "x", "z", "y"],
                          "row": range(5)})
    split = strong_generalization_split(frame, heldout_users=1, seed=0, min_user_rows=1)
    held = split.fold_in.num_rows + split.test.num_rows
    assert split.train.num_rows + held + sum(split.dropped.values()) == 5
    with pytest.raises(ConfigError, match="held-out"):
        strong_generalization_split(frame, heldout_users=2)


@settings(max_examples=40, deadline=None)
@given(data_seed=st.integers(0, 10_000), seed=st.integers(0, 1000), frac=st.floats(0.1, 0.6))
def test_strong_generalization_properties(data_seed, seed, frac):
    frame = _ratings(n_users=12, n_items=15, seed=data_seed)
    split = strong_generalization_split(frame, heldout_users=frac, seed=seed, min_user_rows=2)
    rows = [r for t in (split.train, split.fold_in, split.test) for r in t.column("row").to_pylist()]
    assert len(rows) == len(set(rows))
    assert len(rows) + sum(split.dropped.values()) == len(frame)
    again = strong_generalization_split(frame, heldout_users=frac, seed=seed, min_user_rows=2)
    assert again.test.column("row").to_pylist() == split.test.column("row").to_pylist()
