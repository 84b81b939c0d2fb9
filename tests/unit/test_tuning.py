"""Tuning: search spaces, the pruned validation objective, persistent studies, AutoML and `streamrec tune`."""

from __future__ import annotations

import csv
import re
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from streamrec.cli import tune_cmds
from streamrec.errors import ConfigError, DataError
from streamrec.models import MODELS, create_model
from streamrec.settings import FixedValue, SplitConfig, TuningConfig, load_settings
from streamrec.tuning import (
    DEFAULT_SPACES,
    automl,
    make_validation,
    make_validations,
    score_params,
    search_space,
    training_part,
    tune,
)

# EASE's BLAS threads cost more than they save on a 110-title catalog: pin one thread to keep the tests fast
ONE_THREAD = {"num_threads": {"type": "fixed", "value": 1}}
EASE = {"ease": ONE_THREAD}
PLAIN_EASE = {"session_weight": {"type": "fixed", "value": 0.0}, "session_seconds": {"type": "fixed", "value": 600.0}}
WIDE_EASE = {"ease": {"l2": {"type": "float", "low": 1e-3, "high": 1e6, "log": True}, **PLAIN_EASE, **ONE_THREAD}}


def planted(n_users: int = 200, n_groups: int = 5, group_size: int = 20, per_user: int = 15, n_hits: int = 10,
            seed: int = 0) -> pa.Table:
    """Users like most titles of their own group; `n_hits` blockbusters are watched by a random half of everyone.

    Blockbusters co-occur with everything, so a model that ranks by raw co-occurrence (EASE with a huge l2) or by
    popularity recommends them and does badly; the group structure rewards a well-regularised item model.
    """
    rng = np.random.default_rng(seed)
    n_items = n_groups * group_size
    users, items, times = [], [], []
    for u in range(n_users):
        own = rng.choice(group_size, size=per_user, replace=False) + (u % n_groups) * group_size
        hits = n_items + np.flatnonzero(rng.random(n_hits) < 0.5)
        picks = np.unique(np.concatenate([own, hits]))
        users += [f"u{u:04d}"] * len(picks)
        items += [f"i{i:04d}" for i in picks]
        times += rng.integers(1_700_000_000, 1_700_000_000 + 100 * 86_400, len(picks)).tolist()
    return pa.table({"user_id": users, "item_id": items, "weight": np.ones(len(users), np.float32),
                     "last_ts": pa.array(np.asarray(times, dtype="datetime64[s]").astype("datetime64[us]"))})


@pytest.fixture(scope="module")
def data() -> pa.Table:
    return planted()


def config(**kwargs) -> TuningConfig:
    return TuningConfig(**kwargs)


# --- spaces ------------------------------------------------------------------------------------------------------
def test_every_model_has_a_valid_default_space():
    assert set(DEFAULT_SPACES) == set(MODELS)
    for name in MODELS:
        space = search_space(name)
        assert space and all(param in MODELS[name].config_type.model_fields for param in space)


def test_unknown_model_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="unknown model 'nope'.*ease"):
        search_space("nope")


def test_a_parameter_the_model_lacks_is_refused_by_name():
    cfg = config(spaces={"ease": {"lambda_": {"type": "float", "low": 1, "high": 2}}})
    with pytest.raises(ConfigError, match="no parameter 'lambda_'.*l2"):
        search_space("ease", cfg)


def test_a_range_the_model_config_rejects_is_refused():
    cfg = config(spaces={"ease": {"l2": {"type": "float", "low": 0.0, "high": 10.0}}})  # ease needs l2 > 0
    with pytest.raises(ConfigError, match="'l2'.*value 0.0"):
        search_space("ease", cfg)
    cfg = config(spaces={"item_knn": {"weighting": {"type": "categorical", "choices": ["none", "bm25"]}}})
    with pytest.raises(ConfigError, match="'weighting'.*'bm25'"):
        search_space("item_knn", cfg)


@pytest.mark.parametrize("spec, message", [
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log-scale range needs low > 0"),
    ({"type": "int", "low": 5, "high": 1}, "must not exceed high"),
    ({"type": "uniform", "low": 0, "high": 1}, "tuning.spaces.ease.l2"),
    ({"type": "categorical", "choices": []}, "choices"),
])
def test_bad_distributions_are_refused_when_settings_load(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(tuning={"spaces": {"ease": {"l2": spec}}})


def test_toml_overrides_merge_over_the_default_space_per_parameter(tmp_path):
    path = tmp_path / "streamrec.toml"
    path.write_text('[tuning.spaces.als.factors]\ntype = "int"\nlow = 4\nhigh = 8\n'
                    '[tuning.spaces.als.iterations]\ntype = "fixed"\nvalue = 3\n')
    space = search_space("als", load_settings(path).tuning)
    assert (space["factors"].low, space["factors"].high) == (4, 8)
    assert space["iterations"] == FixedValue(value=3)
    assert space["alpha"] == DEFAULT_SPACES["als"]["alpha"]  # untouched parameters keep the built-in range


def test_a_space_with_only_fixed_values_is_refused():
    cfg = config(spaces={"ease": {"l2": {"type": "fixed", "value": 5.0}, **PLAIN_EASE}})
    with pytest.raises(ConfigError, match="nothing to search"):
        search_space("ease", cfg)


# --- objective ------------------------------------------------------------------------------------------------------
def test_validation_comes_from_the_train_part_only(data):
    part = training_part(data, SplitConfig(kind="temporal", quantile=0.7))
    assert 0 < part.num_rows < data.num_rows
    validation = make_validation(part, seed=3)
    assert validation.params["fit_rows"] + validation.params["validation_rows"] == part.num_rows
    latest_train = max(part.column("last_ts").to_pylist())
    assert validation.train.last_ts.data.max() <= latest_train.timestamp()
    result = tune(data, "rp3beta", config(), n_trials=2, holdout=SplitConfig(kind="temporal", quantile=0.7), seed=3)
    assert result.validation == validation.params


def test_score_params_separates_good_from_bad_regularisation(data):
    validation = make_validation(data)
    good = score_params("ease", {"l2": 100.0, "num_threads": 1}, validation)
    huge = score_params("ease", {"l2": 1e6, "num_threads": 1}, validation)
    assert good > huge + 0.1
    assert score_params("popularity", {}, validation) < huge


def test_an_unknown_metric_is_refused(data):
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        tune(data, "rp3beta", config(metric="auc"), n_trials=1)


def test_too_little_data_for_a_validation_split_is_a_data_error():
    one_row_each = pa.table({"user_id": ["a", "b"], "item_id": ["x", "y"], "weight": [1.0, 1.0]})
    with pytest.raises(DataError, match="tuning validation split"):
        make_validation(one_row_each)


# --- studies ---------------------------------------------------------------------------------------------------------
def test_a_study_finds_the_good_region_and_is_deterministic(data):
    cfg = config(spaces=WIDE_EASE)
    first = tune(data, "ease", cfg, n_trials=12, seed=7)
    again = tune(data, "ease", cfg, n_trials=12, seed=7)
    assert [(t.params, t.state, t.value) for t in first.trials] == [(t.params, t.state, t.value) for t in again.trials]
    assert first.best_value >= first.trials[0].value
    assert first.best_value == max(t.value for t in first.trials if t.state == "COMPLETE")
    assert 1.0 <= first.best_params["l2"] <= 3000.0  # the planted data punish tiny and huge penalties
    validation = make_validation(data, seed=7)
    assert score_params("ease", first.best_params, validation) == pytest.approx(first.best_value)
    assert first.best_value > score_params("ease", {"l2": 1e6, "num_threads": 1}, validation) + 0.1


def test_pruning_stops_bad_configurations_early(data):
    result = tune(data, "ease", config(spaces=WIDE_EASE, pruner_startup_trials=3), n_trials=20, seed=0)
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned, result.counts()
    assert all(t.value < result.best_value for t in pruned)  # a pruned trial's value is its last running mean
    validation = make_validation(data, seed=0)
    # run to the end, every pruned configuration would have lost: pruning never stopped the winner
    assert all(score_params("ease", t.params, validation) < result.best_value for t in pruned)


def test_a_second_run_continues_the_stored_study(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = tune(data, "rp3beta", config(), n_trials=3, storage=storage)
    second = tune(data, "rp3beta", config(), n_trials=2, storage=storage)
    assert (first.new_trials, len(first.trials)) == (3, 3)
    assert (second.new_trials, len(second.trials)) == (2, 5)
    assert [t.number for t in second.trials] == [0, 1, 2, 3, 4]
    assert second.trials[:3] == first.trials[:3]
    assert second.trials[3].params != first.trials[0].params  # the sampler does not redraw earlier trials
    assert second.best_value >= first.best_value and second.study_name == "rp3beta"
    assert (tmp_path / "optuna.db").is_file()


def test_continuing_a_study_with_another_meaning_is_refused(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tune(data, "ease", config(spaces=EASE), n_trials=1, storage=storage)
    with pytest.raises(ConfigError, match="different metric, k"):
        tune(data, "ease", config(spaces=EASE, metric="recall", k=5), n_trials=1, storage=storage)
    with pytest.raises(ConfigError, match="different spaces"):
        tune(data, "ease", config(spaces=WIDE_EASE), n_trials=1, storage=storage)
    assert len(tune(data, "ease", config(spaces=WIDE_EASE), n_trials=1, storage=storage,
                    study_name="ease-wide").trials) == 1


def test_timeout_and_progress_callback(data):
    seen: list[tuple[int, int | None]] = []
    result = tune(data, "rp3beta", config(), n_trials=3, on_trial=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)] and result.new_trials == 3
    timed = tune(data, "rp3beta", config(), timeout_s=0.5)
    assert timed.new_trials >= 1


def test_best_params_as_toml_load_into_the_model(data):
    cfg = config(spaces={"item_knn": {"binary": {"type": "fixed", "value": True}}})
    result = tune(data, "item_knn", cfg, n_trials=3)
    snippet = result.toml_snippet()
    params = tomllib.loads(snippet)["train"]["params"]["item_knn"]
    assert params == result.best_params and params["binary"] is True
    assert create_model("item_knn", params).config.n_neighbors == params["n_neighbors"]


def test_automl_ranks_families_and_picks_the_best(data):
    result = automl(data, ["popularity", "ease", "rp3beta"], config(spaces=EASE), n_trials=15, seed=1)
    ranking = [f.model for f in result.ranking]
    assert sorted(ranking) == ["ease", "popularity", "rp3beta"]
    assert ranking[-1] == "popularity" and result.model == ranking[0]
    assert result.best_value == result.ranking[0].best_value
    assert set(result.best_params) <= set(MODELS[result.model].config_type.model_fields)
    assert sum(f.n_trials for f in result.ranking) == 15
    values = [f.best_value for f in result.ranking if f.best_value is not None]
    assert values == sorted(values, reverse=True)
    assert result.study_name == "automl-ease-popularity-rp3beta"
    assert result.toml_snippet().startswith(f"[train.params.{result.model}]")


def test_automl_refuses_unknown_families(data):
    with pytest.raises(ConfigError, match="unknown model 'knn'"):
        automl(data, ["ease", "knn"], config(), n_trials=1)


# --- CLI -------------------------------------------------------------------------------------------------------------
runner = CliRunner()


def cli() -> typer.Typer:
    """The root callback of the real CLI (global options, settings) with only the tune verb."""
    from streamrec.cli.app import root

    app = typer.Typer()
    app.callback()(root)
    tune_cmds.register(app)
    return app


def write_csv(table: pa.Table, path: Path) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "movie", "stars", "when"])
        for row in table.to_pylist():
            writer.writerow([row["user_id"], row["item_id"], 4, int(row["last_ts"].timestamp())])
    return path


CSV_COLS = ["--user-col", "uid", "--item-col", "movie", "--rating-col", "stars", "--ts-col", "when"]


def test_cli_tunes_a_model_from_a_csv_and_continues_the_study(data, tmp_path):
    path = write_csv(data, tmp_path / "ratings.csv")
    settings = tmp_path / "streamrec.toml"
    settings.write_text('[tuning.spaces.ease.num_threads]\ntype = "fixed"\nvalue = 1\n')
    base = ["--config", str(settings), "--data-dir", str(tmp_path / "d"), "tune", "ease", "--csv", str(path),
            *CSV_COLS, "--k", "5"]
    result = runner.invoke(cli(), [*base, "--trials", "3"])
    assert result.exit_code == 0, result.output
    assert "best trials of study 'ease'" in result.output and "ndcg@5" in result.output
    assert str((tmp_path / "d" / "optuna.db").resolve()) in result.output.replace("\n", "")
    snippet = result.output[result.output.index("[train.params.ease]"):]
    assert tomllib.loads(snippet)["train"]["params"]["ease"].keys() == {"l2", "num_threads", "session_weight",
                                                                          "session_seconds"}
    again = runner.invoke(cli(), [*base, "--trials", "2"])
    assert again.exit_code == 0, again.output
    assert re.search(r"trials this run\W+2\W", again.output) and re.search(r"trials in study\W+5\W", again.output)


def test_cli_automl(data, tmp_path):
    path = write_csv(data, tmp_path / "ratings.csv")
    result = runner.invoke(cli(), ["--data-dir", str(tmp_path / "d"), "tune", "--automl", "--models",
                                   "popularity,rp3beta", "--trials", "6", "--csv", str(path), *CSV_COLS,
                                   "--split", "stratified", "--validation", "temporal"])
    assert result.exit_code == 0, result.output
    assert "model families by best ndcg@10" in result.output and "popularity" in result.output
    assert "[train.params.rp3beta]" in result.output


def test_cli_names_missing_csv_columns(data, tmp_path):
    path = write_csv(data, tmp_path / "ratings.csv")
    result = runner.invoke(cli(), ["--data-dir", str(tmp_path), "tune", "ease", "--csv", str(path)])
    assert isinstance(result.exception, DataError) and "'user'" in str(result.exception)
    result = runner.invoke(cli(), ["--data-dir", str(tmp_path), "tune", "ease", "--csv", str(path), *CSV_COLS[:4],
                                   "--rating-col", "rating"])
    assert isinstance(result.exception, DataError) and "['rating']" in str(result.exception)


def test_cli_needs_a_model_or_automl(tmp_path):
    result = runner.invoke(cli(), ["--data-dir", str(tmp_path), "tune"])
    assert isinstance(result.exception, ConfigError) and "--automl" in str(result.exception)
    result = runner.invoke(cli(), ["--data-dir", str(tmp_path), "tune", "ease", "--automl"])
    assert isinstance(result.exception, ConfigError)


# --- validation folds ------------------------------------------------------------------------------------------------
def test_folds_are_different_draws_and_a_trial_scores_their_mean(data):
    folds = make_validations(data, "stratified", seed=7, folds=3)
    assert [f.params["seed"] for f in folds] == [7, 8, 9]
    assert (folds[0].train.matrix != folds[1].train.matrix).nnz > 0  # the same counts per user, other rows
    params = {"l2": 100.0, "num_threads": 1, "session_weight": 0.0}
    each = [score_params("ease", params, fold) for fold in folds]
    users = [fold.n_users for fold in folds]
    assert score_params("ease", params, folds) == pytest.approx(np.average(each, weights=users))
    assert score_params("ease", params, folds[:1]) == pytest.approx(each[0])


def test_a_study_on_three_folds_records_them_and_its_values_are_the_mean(data):
    cfg = config(spaces=WIDE_EASE, folds=3)
    result = tune(data, "ease", cfg, n_trials=3, seed=7)
    assert result.validation["folds"] == 3
    best = next(t for t in result.trials if t.number == result.best_trial)
    folds = make_validations(data, "stratified", seed=7, folds=3)
    assert score_params("ease", best.params, folds) == pytest.approx(result.best_value)


def test_a_temporal_validation_has_one_fold(data):
    with pytest.raises(ConfigError, match="one fold"):
        tune(data, "ease", config(validation="temporal", folds=2), n_trials=1)
