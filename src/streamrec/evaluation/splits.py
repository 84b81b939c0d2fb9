"""Train/test splits of a long interactions table (user_id, item_id, weight[, ts, rating]).

Every split returns a `Split`: the train and test tables (same columns as the input, as Arrow tables), an optional
fold-in table (strong generalization), and the rows dropped with the reason for each count. No row is lost or
duplicated except the counted drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamrec.errors import ConfigError, DataError

Table = pa.Table | pd.DataFrame


@dataclass(frozen=True)
class Split:
    """One train/test split.

    `fold_in` (strong generalization only) holds the part of each held-out user's history a model may read at
    scoring time; `test` holds what is to be predicted. `dropped` counts removed rows by reason.
    """

    name: str
    train: pa.Table
    test: pa.Table
    fold_in: pa.Table | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts for reports: rows and distinct users/items per part, drops, parameters."""
        parts = {"train": self.train, "test": self.test}
        if self.fold_in is not None:
            parts["fold_in"] = self.fold_in
        out: dict[str, Any] = {"name": self.name, "params": dict(self.params), "dropped": dict(self.dropped)}
        for key, table in parts.items():
            out[key] = {
                "rows": table.num_rows,
                "users": _n_distinct(table, "user_id"),
                "items": _n_distinct(table, "item_id"),
            }
        return out


# --- global temporal ---------------------------------------------------------------------------------------
def temporal_split(
    data: Table,
    at: Any = None,
    quantile: float = 0.8,
    ts_col: str | None = None,
    drop_unseen: bool = True,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> Split:
    """Train on rows before a time T, test on rows at or after it.

    Args:
        at: the cut time T (same type as the time column: a timestamp, or a number for numeric columns);
            None: the `quantile` of the time column (the lower neighbour of that quantile, a real time).
        ts_col: the time column; default `ts`, else `last_ts`.
        drop_unseen: drop test rows whose user (reason `test_user_unseen`) or, failing that, item
            (`test_item_unseen`) does not appear in train.
    Returns:
        Split with params {"at": T as ISO text or number, "quantile": ...}.
    """
    table = _as_table(data)
    ts_col = _time_column(table, ts_col)
    seconds = _seconds(table.column(ts_col))
    if np.isnan(seconds).any():
        raise DataError("temporal split", f"column '{ts_col}' has missing times")
    if at is None:
        if not 0 < quantile < 1:
            raise ConfigError(f"temporal split: quantile must be in (0, 1), got {quantile}")
        if len(seconds) == 0:
            raise DataError("temporal split", "no rows to split")
        cut = float(np.quantile(seconds, quantile, method="lower"))
    else:
        cut = float(_seconds(pa.array([at]))[0])
    in_train = seconds < cut
    train, test = table.filter(pa.array(in_train)), table.filter(pa.array(~in_train))
    test, dropped = _drop_unseen(train, test, user_col, item_col) if drop_unseen else (test, {})
    ts_type = table.column(ts_col).type
    shown = pd.Timestamp(cut, unit="s", tz="UTC").isoformat() if pa.types.is_timestamp(ts_type) else cut
    params = {"at": shown, "quantile": None if at is not None else quantile, "ts_col": ts_col}
    return Split("temporal", train, test, dropped=dropped, params=params)


# --- leave last N per user ----------------------------------------------------------------------------------
def leave_last_n_split(
    data: Table,
    n: int = 1,
    ts_col: str | None = None,
    min_train: int = 1,
    drop_unseen: bool = True,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> Split:
    """Each user's last `n` rows by time go to test, the rest to train (ties in time: later input row is later).

    Users with fewer than `n + min_train` rows stay wholly in train (they have no test rows).
    `drop_unseen` drops test rows whose item never appears in train (`test_item_unseen`).
    """
    if n < 1 or min_train < 0:
        raise ConfigError(f"leave-last-n split: need n >= 1 and min_train >= 0, got n={n}, min_train={min_train}")
    table = _as_table(data)
    ts_col = _time_column(table, ts_col)
    seconds = _seconds(table.column(ts_col))
    codes, counts = _group_codes(table.column(user_col))
    order = np.lexsort((np.arange(len(codes)), seconds, codes))  # by user, then time, then input position
    rank_from_end = np.empty(len(codes), dtype=np.int64)
    sorted_codes = codes[order]
    starts = np.searchsorted(sorted_codes, sorted_codes, side="left")
    position = np.arange(len(codes)) - starts
    rank_from_end[order] = counts[sorted_codes] - 1 - position
    eligible = counts[codes] >= n + min_train
    in_test = eligible & (rank_from_end < n)
    train, test = table.filter(pa.array(~in_test)), table.filter(pa.array(in_test))
    dropped: dict[str, int] = {}
    if drop_unseen:
        test, dropped = _drop_unseen(train, test, user_col, item_col)
    params = {"n": n, "min_train": min_train, "ts_col": ts_col,
              "users_without_test": int((counts < n + min_train).sum())}
    return Split("leave_last_n", train, test, dropped=dropped, params=params)


# --- stratified random (Microsoft Recommenders compatible) --------------------------------------------------
def stratified_split(
    data: Table,
    ratio: float = 0.75,
    by: Literal["user", "item"] = "user",
    seed: int = 42,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> Split:
    """Per-user (or per-item) random split, row-for-row the same as Microsoft Recommenders' `python_stratified_split`.

    As there: one uniform draw per input row from `np.random.seed(seed); np.random.rand(n)` (a private
    RandomState here, same stream), rows sorted by (group, draw), rank r (1-based) within a group of c rows,
    and a row goes to train when r / c <= ratio (float64) — so a group of one row goes to test. Both tables come
    back in that sorted order. (Its min_rating filter is not offered: filter before splitting.)
    """
    if not 0 < ratio < 1:
        raise ConfigError(f"stratified split: ratio must be in (0, 1), got {ratio}")
    if by not in ("user", "item"):
        raise ConfigError(f"stratified split: by must be 'user' or 'item', got {by!r}")
    table = _as_table(data)
    column = user_col if by == "user" else item_col
    _require(table, [column])
    frame = table.to_pandas()
    draw = np.random.RandomState(seed).rand(len(frame))
    key = "__random__"
    while key in frame.columns:
        key += "_"
    frame[key] = draw
    frame = frame.sort_values([column, key])
    groups = frame.groupby(column, sort=False)
    rank = (groups.cumcount() + 1) / groups[column].transform("count")
    in_train = (rank <= ratio).to_numpy()
    frame = frame.drop(columns=key)
    train = pa.Table.from_pandas(frame[in_train], schema=table.schema, preserve_index=False)
    test = pa.Table.from_pandas(frame[~in_train], schema=table.schema, preserve_index=False)
    return Split(f"stratified_{by}", train, test, params={"ratio": ratio, "by": by, "seed": seed})


# --- strong generalization (held-out users) -----------------------------------------------------------------
def strong_generalization_split(
    data: Table,
    heldout_users: int | float = 0.2,
    test_ratio: float = 0.2,
    seed: int = 0,
    min_user_rows: int = 5,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> Split:
    """Held-out users (Liang et al. 2018, VAE-CF): train on the other users; for each held-out user a random
    `int(test_ratio × rows)` of their rows are test and the rest fold-in (read by the model at scoring time).

    Args:
        heldout_users: a count, or a fraction of the distinct users (rounded), drawn with `seed`.
        min_user_rows: held-out users with fewer rows get no test rows (everything is fold-in).
    Held-out rows on items absent from train are dropped (`heldout_item_unseen`): a model cannot know them.
    """
    if not 0 < test_ratio < 1:
        raise ConfigError(f"strong generalization split: test_ratio must be in (0, 1), got {test_ratio}")
    table = _as_table(data)
    _require(table, [user_col, item_col])
    users = table.column(user_col)
    distinct = pc.unique(users).sort()
    n_users = len(distinct)
    n_heldout = int(round(heldout_users * n_users)) if isinstance(heldout_users, float) else int(heldout_users)
    if not 0 < n_heldout < n_users:
        raise ConfigError(f"strong generalization split: {n_heldout} held-out users of {n_users} leaves nothing to "
                          "hold out or nothing to train on")
    rng = np.random.default_rng(seed)
    heldout = distinct.take(pa.array(np.sort(rng.permutation(n_users)[:n_heldout])))
    is_heldout = pc.is_in(users, value_set=heldout).to_numpy(zero_copy_only=False)
    train = table.filter(pa.array(~is_heldout))
    rest = table.filter(pa.array(is_heldout))
    known = pc.is_in(rest.column(item_col), value_set=pc.unique(train.column(item_col))).to_numpy(zero_copy_only=False)
    dropped = {"heldout_item_unseen": int((~known).sum())} if (~known).any() else {}
    rest = rest.filter(pa.array(known))
    codes, counts = _group_codes(rest.column(user_col))
    draw = rng.random(len(codes))
    order = np.lexsort((draw, codes))
    sorted_codes = codes[order]
    position = np.empty(len(codes), dtype=np.int64)
    position[order] = np.arange(len(codes)) - np.searchsorted(sorted_codes, sorted_codes, side="left")
    n_test = np.where(counts >= min_user_rows, (test_ratio * counts).astype(np.int64), 0)
    in_test = position < n_test[codes]
    params = {"heldout_users": n_heldout, "test_ratio": test_ratio, "seed": seed, "min_user_rows": min_user_rows}
    return Split("strong_generalization", train, rest.filter(pa.array(in_test)),
                 fold_in=rest.filter(pa.array(~in_test)), dropped=dropped, params=params)


# --- helpers -------------------------------------------------------------------------------------------------
def _as_table(data: Table) -> pa.Table:
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.Table):
        return data
    raise DataError("split", f"expected a pyarrow Table or pandas DataFrame, got {type(data).__name__}")


def _require(table: pa.Table, columns: list[str]) -> None:
    for col in columns:
        if col not in table.column_names:
            raise DataError("split", f"missing column '{col}'; columns are {table.column_names}")


def _time_column(table: pa.Table, ts_col: str | None) -> str:
    if ts_col is not None:
        _require(table, [ts_col])
        return ts_col
    for name in ("ts", "last_ts"):
        if name in table.column_names:
            return name
    raise DataError("split", f"needs a time column 'ts' or 'last_ts'; columns are {table.column_names}")


def _seconds(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Epoch seconds (float64) of a timestamp or numeric column; NaN for nulls."""
    if pa.types.is_timestamp(column.type):
        column = pc.divide(column.cast(pa.timestamp("us")).cast(pa.int64()).cast(pa.float64()), 1e6)
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _group_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes (0..g-1) of a column's values and the row count of each code."""
    encoded = pc.dictionary_encode(column).combine_chunks() if len(column) else None
    if encoded is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if encoded.null_count:
        raise DataError("split", "grouping column has missing values")
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, np.bincount(codes, minlength=len(encoded.dictionary))


def _drop_unseen(train: pa.Table, test: pa.Table, user_col: str, item_col: str) -> tuple[pa.Table, dict[str, int]]:
    """Remove test rows whose user, else item, is absent from train; count each reason."""
    _require(test, [user_col, item_col])
    user_ok = pc.is_in(test.column(user_col), value_set=pc.unique(train.column(user_col))).to_numpy(
        zero_copy_only=False)
    item_ok = pc.is_in(test.column(item_col), value_set=pc.unique(train.column(item_col))).to_numpy(
        zero_copy_only=False)
    dropped = {"test_user_unseen": int((~user_ok).sum()), "test_item_unseen": int((user_ok & ~item_ok).sum())}
    return test.filter(pa.array(user_ok & item_ok)), {k: v for k, v in dropped.items() if v}


def _n_distinct(table: pa.Table, col: str) -> int | None:
    return len(pc.unique(table.column(col))) if col in table.column_names else None
