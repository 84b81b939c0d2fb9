"""`train`: split, compare the configured models honestly, refit the winner, log it and register it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError, DataError, NotFound
from streamrec.evaluation import EvaluationResult, Split, evaluate
from streamrec.evaluation import splits as S
from streamrec.logs import get_logger
from streamrec.models import MODELS, Recommender, create_model
from streamrec.settings import Settings, SplitConfig, TrainConfig

log = get_logger(__name__)
METRICS = ("ndcg", "recall", "precision", "map", "hit_rate", "mrr")


@dataclass
class TrainResult:
    """What `train_and_register` did: the comparison, the winner, where it was saved and registered."""

    evaluation: EvaluationResult
    best: str
    metric: str
    model_dir: Path
    fit_seconds: float
    run_id: str | None = None
    version: int | None = None
    promoted: bool = False
    promote_reason: str = ""
    reference: Any = None  # the monitoring reference saved beside the model (streamrec.monitoring.reference)


def make_split(table: pa.Table, config: SplitConfig) -> Split:
    """The configured split of a long interactions table."""
    if config.kind == "temporal":
        if "last_ts" not in table.column_names and "ts" not in table.column_names:
            raise DataError("interactions", "a temporal split needs a time column (last_ts or ts); "
                                            "use --split stratified for data without times")
        return S.temporal_split(table, quantile=config.quantile)
    if config.kind == "stratified":
        return S.stratified_split(table, ratio=config.ratio, by=config.by, seed=config.seed)
    if config.kind == "leave_last_n":
        return S.leave_last_n_split(table, n=config.n)
    heldout = config.heldout_users if config.heldout_users < 1 else int(config.heldout_users)
    return S.strong_generalization_split(table, heldout_users=heldout, seed=config.seed)


def _check(config: TrainConfig, table: pa.Table) -> None:
    unknown = [m for m in config.models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; known models: {', '.join(MODELS)}")
    if not config.models:
        raise ConfigError("train: no models to train")
    if config.metric not in METRICS:
        raise ConfigError(f"train: unknown metric '{config.metric}'; use one of {', '.join(METRICS)}")
    if table.num_rows == 0:
        raise DataError("training data", "has no interactions")
    users = pa.compute.count_distinct(table.column("user_id")).as_py()
    if users < 2:
        raise DataError("training data", f"has {users} user(s); comparing models needs at least 2")


def train_and_register(
    table: pa.Table,
    settings: Settings,
    register: bool = True,
    item_genres: dict[str, list[str]] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    factory: Callable[[str, dict], Recommender] | None = None,
) -> TrainResult:
    """Compare `settings.train.models` on a held-out split, refit the best, save it, log and register it.

    Args:
        table: long interactions (user_id, item_id, weight[, last_ts, rating]).
        register: log the run to MLflow and register a version (promoted per `train.promote`).
        item_genres: enables the diversity metric.
        factory: makes an unfitted model from its name and hyperparameters (default `create_model`); the Spark
            engine's makes MLlib's ALS for "als".
    Returns:
        The comparison and where the winner went.
    Raises:
        ConfigError: unknown models or metric. DataError: data too small to split or train on.
    """
    config = settings.train
    _check(config, table)
    split = make_split(table, config.split)
    make = factory or create_model
    specs = {name: make(name, config.params.get(name, {})) for name in config.models}
    result = evaluate(specs, split, k=config.k, ks=sorted({config.k, 10, 20}), item_genres=item_genres,
                      seed=config.split.seed, on_progress=on_progress)
    metric = f"{config.metric}@{config.k}"
    best = result.best(metric)
    began = time.perf_counter()
    data = Interactions.from_table(table if config.refit_on_all else split.train)
    model = make(best, config.params.get(best, {})).fit(data)
    fit_seconds = time.perf_counter() - began
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    model_dir = model.save(settings.data_dir / "models" / f"{best}-{stamp}")
    out = TrainResult(result, best, metric, model_dir, fit_seconds)
    (model_dir.parent / f"{best}-{stamp}.evaluation.json").write_text(result.to_json())
    if register:
        _register(out, settings, data)
    from streamrec.monitoring.reference import model_scores, save_training_reference

    out.reference = save_training_reference(  # what `streamrec monitor` compares serving against
        settings, model_dir, best, out.version, data.user_ids, lambda: model_scores(model, data, seed=settings.seed))
    log.info("train.done", best=best, metric=metric, value=result.models[best].metrics[metric].mean,
             model_dir=str(model_dir), version=out.version, promoted=out.promoted)
    return out


def _register(out: TrainResult, settings: Settings, data: Interactions) -> None:
    from streamrec.registry import open_registry, snapshot_of_interactions

    registry = open_registry(settings)
    metrics = {name: est.mean for name, est in out.evaluation.models[out.best].metrics.items()
               if est.mean is not None}
    snapshot = snapshot_of_interactions(data)
    logged = registry.log_training_run(
        out.model_dir, data_snapshot=snapshot, metrics=metrics,
        counts={"users": data.n_users, "items": data.n_items, "interactions": data.nnz},
        tags={"streamrec.split": out.evaluation.split.get("name", ""), "streamrec.metric": out.metric},
    )
    out.run_id = logged.run_id
    out.version = registry.register(logged.run_id, description=f"{out.best}, {out.metric}="
                                    f"{metrics.get(out.metric, float('nan')):.4f}")
    out.promoted, out.promote_reason = should_promote(registry, settings.train.promote, out.metric, metrics, snapshot)
    if out.promoted:
        registry.promote(out.version)


def should_promote(registry, policy: str, metric: str, metrics: dict[str, float],
                   snapshot: str) -> tuple[bool, str]:
    """Whether a new version (its `metrics`, trained on `snapshot`) becomes champion under `policy`, and why."""
    if policy == "never":
        return False, "promotion disabled (train.promote = never)"
    if policy == "always":
        return True, "train.promote = always"
    try:
        champion = registry.show("champion")
    except NotFound:
        return True, "first champion"
    if champion.data_snapshot != snapshot:
        return True, "trained on newer data than the champion"
    key = metric.replace("@", "_at_")
    previous = champion.metrics.get(key)
    new = metrics.get(metric)
    if previous is None or (new is not None and new > previous):
        return True, f"{metric} {new:.4f} beats the champion's {previous if previous is not None else 'none'}"
    return False, f"{metric} {new:.4f} does not beat the champion's {previous:.4f}"
