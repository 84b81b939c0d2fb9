"""Optuna studies: one model's hyperparameters (`tune`) or the best family and its parameters (`automl`).

Studies persist in an Optuna storage (sqlite:///DATA_DIR/optuna.db by default) and continue where they stopped
when run again under the same name. A study remembers what its values mean (model(s), space, metric, validation,
data); continuing it with any of those changed is refused, because old and new values would not be comparable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pyarrow as pa
import pyarrow.compute as pc

from streamrec.errors import ConfigError
from streamrec.logs import get_logger
from streamrec.settings import FixedValue, Settings, SplitConfig, TuningConfig
from streamrec.tuning.objective import (
    ValidationData,
    make_validations,
    metric_function,
    score_params,
    suggest,
    training_part,
)
from streamrec.tuning.spaces import Space, search_space, space_to_json

log = get_logger(__name__)

OnTrial = Callable[[int, int | None], None]  # (trials finished in this run, trials planned or None)
_META = "streamrec"  # study user attribute holding what the values mean


@dataclass(frozen=True)
class TrialRow:
    """One trial: its number, state (COMPLETE, PRUNED, FAIL, RUNNING ...), value, parameters and duration."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    duration_s: float | None
    model: str


@dataclass(frozen=True)
class FamilyResult:
    """AutoML: the best a model family reached, and how its trials went."""

    model: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    n_trials: int
    n_complete: int
    n_pruned: int


@dataclass
class TuneResult:
    """What a `tune` or `automl` run leaves: the best model and parameters so far (over every run of the study).

    `ranking` (AutoML only) lists the families best first; families without a finished trial come last.
    """

    study_name: str
    storage: str
    model: str | None
    metric: str
    best_params: dict[str, Any]
    best_value: float | None
    best_trial: int | None
    trials: list[TrialRow]
    new_trials: int
    validation: dict[str, Any] = field(default_factory=dict)
    ranking: list[FamilyResult] = field(default_factory=list)

    def top(self, n: int = 10) -> list[TrialRow]:
        """The n best finished trials, best first (ties: the earlier trial)."""
        done = [t for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        return sorted(done, key=lambda t: (-t.value, t.number))[:n]

    def counts(self) -> dict[str, int]:
        """Trials per state."""
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def toml_snippet(self) -> str:
        """The best parameters as a `[train.params.MODEL]` table to paste into streamrec.toml."""
        if self.model is None or self.best_trial is None:
            return ""
        lines = [f"[train.params.{self.model}]"]
        for key, value in sorted(self.best_params.items()):
            lines.append(f"{key} = {_toml_value(value)}" if value is not None else f"# {key}: unset (default)")
        return "\n".join(lines) + "\n"


def default_storage(settings: Settings) -> str:
    """The configured Optuna storage URL, else a sqlite file DATA_DIR/optuna.db (the folder is created)."""
    if settings.tuning.storage:
        return settings.tuning.storage
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(settings.data_dir / 'optuna.db').resolve()}"


def tune(
    table: pa.Table,
    model: str,
    config: TuningConfig | None = None,
    *,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    seed: int = 42,
    holdout: SplitConfig | None = None,
    on_trial: OnTrial | None = None,
) -> TuneResult:
    """Search one model's hyperparameters for the best validation metric@k.

    Args:
        table: long interactions (user_id, item_id[, weight, last_ts]).
        model: a key of `streamrec.models.MODELS`.
        config: tuning settings (space overrides, validation, k, metric, pruning); default TuningConfig().
        n_trials / timeout_s: this run's budget; when both are None, `config.n_trials` / `config.timeout_s`.
        study_name: default: the model name. An existing study of that name is continued.
        storage: Optuna storage URL (see `default_storage`); None: in memory, gone after the call.
        seed: seeds the validation split, the user order and the sampler (config.seed wins when set).
        holdout: the train/test split of `train` / `evaluate`; its test part is dropped first, so tuning never
            sees it. None: `table` is already training data.
        on_trial: called after each finished trial of this run as (finished, planned).
    Returns:
        TuneResult over all the study's trials.
    Raises:
        ConfigError: unknown model or metric, a bad space, or a stored study whose meaning differs.
        DataError: too little data for the validation split.
    """
    config = config or TuningConfig()
    space = search_space(model, config)
    data, seed = _validation(table, config, seed, holdout)
    meta = _meta(config, data, table, {model: space}, holdout)

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        return score_params(model, params, data, config.k, config.metric, trial)

    study = _study(study_name or model, storage, meta, config, seed)
    new = _optimize(study, objective, n_trials, timeout_s, config, on_trial)
    return _result(study, storage, meta, {model: space}, new, single=model)


def automl(
    table: pa.Table,
    models: Sequence[str] | None = None,
    config: TuningConfig | None = None,
    *,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    seed: int = 42,
    holdout: SplitConfig | None = None,
    on_trial: OnTrial | None = None,
) -> TuneResult:
    """Search model families and their hyperparameters in one study (a categorical "model", then that family's
    parameters, named "family:param"), sharing one trial budget and one pruner across families.

    Args:
        models: families to compare; default `config.automl_models`. Other arguments as in `tune`;
            the default study name is "automl-" + the sorted families joined by "-".
    Returns:
        TuneResult whose `model` / `best_params` are the best family's, and `ranking` the families best first.
    """
    config = config or TuningConfig()
    families = list(dict.fromkeys(models or config.automl_models))
    if not families:
        raise ConfigError("tuning: no model families to compare")
    spaces = {family: search_space(family, config) for family in families}
    data, seed = _validation(table, config, seed, holdout)
    meta = _meta(config, data, table, spaces, holdout)

    def objective(trial: optuna.Trial) -> float:
        family = trial.suggest_categorical("model", families)
        params = suggest(trial, spaces[family], prefix=f"{family}:")
        return score_params(family, params, data, config.k, config.metric, trial)

    study = _study(study_name or "automl-" + "-".join(sorted(families)), storage, meta, config, seed)
    new = _optimize(study, objective, n_trials, timeout_s, config, on_trial)
    return _result(study, storage, meta, spaces, new, single=None)


# --- steps ------------------------------------------------------------------------------------------------------
def _validation(table: pa.Table, config: TuningConfig, seed: int,
                holdout: SplitConfig | None) -> tuple[list[ValidationData], int]:
    metric_function(config.metric)  # fail on a bad metric before any work
    seed = config.seed if config.seed is not None else seed
    if holdout is not None:
        table = training_part(table, holdout)
    folds = make_validations(table, config.validation, config.ratio, config.quantile, seed, config.chunks,
                             config.max_val_users, config.folds)
    return folds, seed


def _meta(config: TuningConfig, folds: list[ValidationData], table: pa.Table, spaces: Mapping[str, Space],
          holdout: SplitConfig | None) -> dict[str, Any]:
    fingerprint = {"rows": table.num_rows}
    for col in ("user_id", "item_id"):
        if col in table.column_names:
            fingerprint[col.removesuffix("_id") + "s"] = pc.count_distinct(table.column(col)).as_py()
    if "weight" in table.column_names:
        fingerprint["weight_sum"] = round(float(pc.sum(table.column("weight").cast(pa.float64())).as_py() or 0), 3)
    return {
        "spaces": {m: space_to_json(s) for m, s in spaces.items()},
        "metric": config.metric,
        "k": config.k,
        # one fold keeps the meaning studies stored before folds existed had, so they can still be continued
        "validation": folds[0].params if len(folds) == 1 else {**folds[0].params, "folds": len(folds)},
        "holdout": holdout.model_dump(mode="json") if holdout is not None else None,
        "data": fingerprint,
    }


def _study(name: str, storage: str | None, meta: dict[str, Any], config: TuningConfig, seed: int) -> optuna.Study:
    pruner = optuna.pruners.MedianPruner(n_startup_trials=config.pruner_startup_trials,
                                         n_warmup_steps=config.pruner_warmup_steps)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", pruner=pruner,
                                load_if_exists=True)
    stored = study.user_attrs.get(_META)
    if stored is None:
        if study.trials:
            raise ConfigError(f"tuning: study '{name}' in {storage} was not made by streamrec; choose another "
                              "--study name")
        study.set_user_attr(_META, json.loads(json.dumps(meta)))
    else:
        fresh = json.loads(json.dumps(meta))
        changed = [key for key in fresh if stored.get(key) != fresh[key]]
        if changed:
            raise ConfigError(f"tuning: study '{name}' in {storage} was run with a different {', '.join(changed)} "
                              f"(stored: {_short(stored, changed)}; now: {_short(fresh, changed)}); its values "
                              "would not be comparable: choose a new --study name")
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ConfigError(f"tuning: study '{name}' in {storage} minimizes; choose another --study name")
    # A fresh sampler per run, seeded past the trials already made: a continued study does not redraw them.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    return study


def _short(meta: Mapping[str, Any], keys: Sequence[str]) -> str:
    text = json.dumps({k: meta.get(k) for k in keys}, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."


def _optimize(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int | None,
              timeout_s: float | None, config: TuningConfig, on_trial: OnTrial | None) -> int:
    if n_trials is None and timeout_s is None:
        n_trials, timeout_s = config.n_trials, config.timeout_s
    done = 0

    def callback(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal done
        done += 1
        log.debug("tuning.trial", study=study.study_name, number=trial.number, state=trial.state.name,
                  value=trial.value, params=trial.params)
        if on_trial is not None:
            on_trial(done, n_trials)

    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=[callback])
    return done


def _result(study: optuna.Study, storage: str | None, meta: dict[str, Any], spaces: Mapping[str, Space],
            new_trials: int, single: str | None) -> TuneResult:
    rows = [_row(t, single, spaces) for t in study.trials]
    done = [r for r in rows if r.state == "COMPLETE" and r.value is not None and math.isfinite(r.value)]
    best = max(done, key=lambda r: (r.value, -r.number), default=None)
    ranking = _ranking(rows, spaces) if single is None else []
    metric = f"{meta['metric']}@{meta['k']}"
    if best is not None:
        log.info("tuning.best", study=study.study_name, model=best.model, metric=metric, value=round(best.value, 5),
                 trial=best.number, trials=len(rows))
    return TuneResult(
        study_name=study.study_name,
        storage=storage or "memory",
        model=best.model if best else single,
        metric=metric,
        best_params=dict(best.params) if best else {},
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        trials=rows,
        new_trials=new_trials,
        validation=dict(meta["validation"]),
        ranking=ranking,
    )


def _row(trial: optuna.trial.FrozenTrial, single: str | None, spaces: Mapping[str, Space]) -> TrialRow:
    model = single or str(trial.params.get("model", ""))
    prefix = "" if single else f"{model}:"
    params = {name.removeprefix(prefix): v for name, v in trial.params.items() if name != "model"}
    for param, dist in spaces.get(model, {}).items():  # pinned values are part of the configuration
        if isinstance(dist, FixedValue):
            params.setdefault(param, dist.value)
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialRow(trial.number, trial.state.name, trial.value, params, duration, model)


def _ranking(rows: list[TrialRow], spaces: Mapping[str, Space]) -> list[FamilyResult]:
    out = []
    for family in spaces:
        mine = [r for r in rows if r.model == family]
        done = [r for r in mine if r.state == "COMPLETE" and r.value is not None and math.isfinite(r.value)]
        best = max(done, key=lambda r: (r.value, -r.number), default=None)
        out.append(FamilyResult(family, best.value if best else None, dict(best.params) if best else {},
                                best.number if best else None, len(mine), len(done),
                                sum(r.state == "PRUNED" for r in mine)))
    return sorted(out, key=lambda f: (f.best_value is None, -(f.best_value or 0.0), f.model))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    return json.dumps(str(value))  # a TOML basic string (JSON escapes are valid TOML escapes)
