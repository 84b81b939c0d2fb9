"""The tuning objective: fit on a validation split carved from the training data, score users in chunks, prune."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pyarrow as pa
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError, DataError
from streamrec.evaluation.metrics import ACCURACY_METRICS
from streamrec.evaluation.runner import prepare
from streamrec.evaluation.splits import stratified_split, temporal_split
from streamrec.settings import (
    CategoricalDistribution,
    Distribution,
    FixedValue,
    FloatDistribution,
    IntDistribution,
    SplitConfig,
)


@dataclass(frozen=True)
class ValidationData:
    """What every trial is measured on: the fitting part and the validation users (in a fixed random order).

    `history` / `rows` / `relevant` have one row per validation user (users the fitting part knows and who have
    validation rows); `chunks` are the row ranges scored between two pruning checks.
    """

    train: Interactions
    history: sparse.csr_matrix
    rows: np.ndarray
    relevant: sparse.csr_matrix
    chunks: tuple[tuple[int, int], ...]
    params: dict[str, Any]

    @property
    def n_users(self) -> int:
        return len(self.rows)


def training_part(table: pa.Table, split: SplitConfig) -> pa.Table:
    """The train part of the configured train/test split (what `train` and `evaluate` may fit on).

    Tuning carves its validation from this, so the test part those commands report on is never looked at.
    """
    from streamrec.training.train import make_split  # the same split `train` makes

    return make_split(table, split).train


def make_validation(
    table: pa.Table,
    kind: str = "stratified",
    ratio: float = 0.8,
    quantile: float = 0.8,
    seed: int = 42,
    chunks: int = 5,
    max_users: int | None = None,
) -> ValidationData:
    """Split training interactions into a fitting part and validation rows.

    Args:
        table: long interactions (user_id, item_id[, weight, last_ts]) — training data only.
        kind: "stratified" (each user's rows split at random, `ratio` kept for fitting) or "temporal"
            (rows before the `quantile` of time are for fitting).
        seed: the stratified split's and the user order's random state.
        chunks: number of user chunks (pruning steps).
        max_users: score at most this many validation users (a random subset).
    Returns:
        ValidationData.
    Raises:
        ConfigError: unknown kind. DataError: no validation user is left (too little data for the split).
    """
    if kind == "stratified":
        split = stratified_split(table, ratio=ratio, by="user", seed=seed)
    elif kind == "temporal":
        split = temporal_split(table, quantile=quantile)
    else:
        raise ConfigError(f"tuning: validation must be 'stratified' or 'temporal', got {kind!r}")
    try:
        data = prepare(split)
    except DataError as exc:
        raise DataError("tuning validation split", f"{exc.reason} (too little data to carve a validation part "
                                                   "from; use more data or another split)") from exc
    known = np.flatnonzero(data.rows >= 0)  # users without a fitting history tell nothing about the parameters
    order = known[np.random.default_rng(seed).permutation(len(known))]
    if max_users is not None:
        order = order[:max_users]
    if len(order) == 0:
        raise DataError("tuning validation split", "no user has both fitting and validation rows")
    n_chunks = max(1, min(chunks, len(order)))
    bounds = np.linspace(0, len(order), n_chunks + 1).astype(int)
    params = {"kind": kind, "ratio": ratio if kind == "stratified" else None,
              "quantile": quantile if kind == "temporal" else None, "seed": seed, "chunks": n_chunks,
              "max_users": max_users, "users": len(order), "fit_rows": split.train.num_rows,
              "validation_rows": split.test.num_rows}
    return ValidationData(data.train, data.history[order], data.rows[order], data.relevant[order],
                          tuple((int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])), params)


def make_validations(table: pa.Table, kind: str = "stratified", ratio: float = 0.8, quantile: float = 0.8,
                     seed: int = 42, chunks: int = 5, max_users: int | None = None,
                     folds: int = 1) -> list[ValidationData]:
    """`folds` validation splits of the training data (stratified: seeds seed, seed + 1, ...); trials are scored
    on all of them, because one fold's noise can outweigh the gap between two good configurations.

    Raises:
        ConfigError: several folds asked of a temporal validation (it has one: the end of the training period).
    """
    if folds > 1 and kind != "stratified":
        raise ConfigError(f"tuning: a {kind} validation has one fold (the end of the training period); "
                          "set tuning.folds = 1 or tuning.validation = 'stratified'")
    return [make_validation(table, kind, ratio, quantile, seed + fold, chunks, max_users) for fold in range(folds)]


def suggest(trial: optuna.Trial, space: Mapping[str, Distribution], prefix: str = "") -> dict[str, Any]:
    """Draw one value per parameter of `space` (Optuna names them `prefix + parameter`); fixed values pass through."""
    params: dict[str, Any] = {}
    for param, dist in space.items():
        name = prefix + param
        if isinstance(dist, FloatDistribution):
            params[param] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, IntDistribution):
            params[param] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, CategoricalDistribution):
            params[param] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, FixedValue):
            params[param] = dist.value
        else:  # the Distribution union is exhaustive
            raise AssertionError(f"unhandled distribution {dist!r}")
    return params


def score_params(
    model: str,
    params: Mapping[str, Any],
    data: ValidationData | Sequence[ValidationData],
    k: int = 10,
    metric: str = "ndcg",
    trial: optuna.Trial | None = None,
) -> float:
    """Fit `model` with `params` on each fold's fitting part and return the mean metric@k over the validation users
    of all folds.

    With a `trial`, the running mean is reported after each chunk of users and the trial is pruned
    (`optuna.TrialPruned`) when the study's pruner says so.
    """
    from streamrec.models import create_model

    folds = [data] if isinstance(data, ValidationData) else list(data)
    measure = metric_function(metric)
    total, n, step, fit_seconds = 0.0, 0, 0, 0.0
    n_all = sum(fold.n_users for fold in folds)
    for fold in folds:
        began = time.perf_counter()
        recommender = create_model(model, dict(params)).fit(fold.train)
        fit_seconds += time.perf_counter() - began
        if trial is not None:
            trial.set_user_attr("fit_seconds", round(fit_seconds, 4))
        for start, stop in fold.chunks:
            idx, scores = recommender.recommend(fold.history[start:stop], k, users=fold.rows[start:stop])
            recs = np.full((stop - start, k), -1, dtype=np.int64)
            recs[:, :idx.shape[1]] = np.where(np.isfinite(scores), idx, -1)
            total += float(measure(recs, fold.relevant[start:stop], k).sum())
            n += stop - start
            if trial is not None:
                trial.report(total / n, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{metric}@{k} {total / n:.4f} after {n} of {n_all} users")
            step += 1
    return total / max(n, 1)


def metric_function(metric: str) -> Callable[[np.ndarray, sparse.csr_matrix, int], np.ndarray]:
    """The per-user accuracy metric by name (ConfigError listing the names otherwise)."""
    if metric not in ACCURACY_METRICS:
        raise ConfigError(f"tuning: unknown metric '{metric}'; known: {', '.join(ACCURACY_METRICS)}")
    return ACCURACY_METRICS[metric]
