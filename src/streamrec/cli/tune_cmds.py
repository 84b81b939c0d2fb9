"""`streamrec tune MODEL` / `streamrec tune --automl`: Optuna searches on a validation split of the training data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, progress_bar, summary_table
from streamrec.errors import ConfigError, DataError
from streamrec.settings import Settings

CSV_HELP = "tune on this user,item,rating[,timestamp] CSV instead of the event store's interactions"


def tuning_settings(settings: Settings, k: Optional[int], metric: Optional[str], validation: Optional[str],
                    split: Optional[str], folds: Optional[int] = None) -> Settings:
    """The settings with the command's flags applied (validated like the file)."""
    tuning = settings.tuning.model_dump()
    flags = {"k": k, "metric": metric, "validation": validation, "folds": folds}
    tuning.update({key: value for key, value in flags.items() if value is not None})
    train = settings.train.model_dump()
    if split:
        train["split"]["kind"] = split
    try:
        return settings.model_copy(update={"tuning": type(settings.tuning).model_validate(tuning),
                                           "train": type(settings.train).model_validate(train)})
    except ValueError as exc:  # pydantic's ValidationError
        raise ConfigError(f"invalid tune options: {exc}") from exc


def load_training_table(settings: Settings, csv: Optional[Path], user_col: str, item_col: str,
                        rating_col: Optional[str], ts_col: Optional[str]) -> Any:
    """The interactions to tune on: a CSV when given (a column named by a flag must exist), else the event store."""
    from streamrec.training import interactions_from_csv, interactions_from_store

    if csv is None:
        return interactions_from_store(settings)
    explicit = [c for c in (rating_col, ts_col) if c]
    if explicit and csv.is_file():
        import pyarrow as pa
        import pyarrow.csv as pacsv

        try:
            with pacsv.open_csv(csv) as reader:
                header = reader.schema.names
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise DataError(str(csv), f"cannot read as CSV: {exc}") from exc
        missing = [c for c in explicit if c not in header]
        if missing:
            raise DataError(str(csv), f"missing column(s) {missing}; the file has {header}")
    return interactions_from_csv(csv, user_col, item_col, rating_col if rating_col is not None else "rating",
                                 ts_col if ts_col is not None else "timestamp")


def trials_table(result: Any, top: int) -> Table:
    """The best finished trials, best first."""
    automl = bool(result.ranking)
    table = Table(title=f"best trials of study '{result.study_name}' ({result.metric} on "
                        f"{result.validation.get('users', 0):,} validation users)", title_justify="left")
    for name in ("#", "trial", *(("model",) if automl else ()), result.metric, "seconds", "parameters"):
        table.add_column(name, justify="left" if name in ("model", "parameters") else "right",
                         overflow="fold" if name == "parameters" else "ellipsis")
    for rank, row in enumerate(result.top(top), start=1):
        table.add_row(str(rank), str(row.number), *((row.model,) if automl else ()), f"{row.value:.4f}",
                      f"{row.duration_s:.2f}" if row.duration_s is not None else "-", escape(_params(row.params)))
    return table


def ranking_table(result: Any) -> Table:
    """AutoML: model families by their best value."""
    table = Table(title=f"model families by best {result.metric}", title_justify="left")
    for name in ("#", "model", result.metric, "trials", "finished", "pruned", "best parameters"):
        table.add_column(name, justify="left" if name in ("model", "best parameters") else "right",
                         overflow="fold" if name == "best parameters" else "ellipsis")
    for rank, family in enumerate(result.ranking, start=1):
        value = f"{family.best_value:.4f}" if family.best_value is not None else "-"
        table.add_row(str(rank), family.model, value, str(family.n_trials), str(family.n_complete),
                      str(family.n_pruned), escape(_params(family.best_params)))
    return table


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))


def print_result(result: Any, top: int) -> None:
    """Tables of the best trials (and families), where the study lives, and the TOML to paste."""
    if result.ranking:
        console.print(ranking_table(result))
    console.print(trials_table(result, top))
    counts = result.counts()
    rows: list[tuple[str, Any]] = [
        ("study", result.study_name), ("stored in", result.storage),
        ("trials this run", result.new_trials), ("trials in study", len(result.trials)),
        *((f"  {state.lower()}", n) for state, n in sorted(counts.items())),
        ("validation", f"{result.validation.get('kind')}, {result.validation.get('folds', 1)} fold(s), "
                       f"{result.validation.get('users', 0):,} users in {result.validation.get('chunks')} chunks"),
    ]
    if result.best_trial is None:
        rows.append(("best", "no finished trial yet"))
        console.print(summary_table("tune", rows))
        return
    rows += [("best model", result.model), (f"best {result.metric}", f"{result.best_value:.4f}"),
             ("best trial", result.best_trial)]
    console.print(summary_table("tune", rows))
    console.print("best parameters, to paste into streamrec.toml:", style="bold")
    console.print(result.toml_snippet(), markup=False, highlight=False, end="")


def register(app: typer.Typer) -> None:
    @app.command()
    def tune(
        ctx: typer.Context,
        model: Optional[str] = typer.Argument(None, help="model to tune (see `streamrec.models`), e.g. ease"),
        automl: bool = typer.Option(False, "--automl", help="search model families and their parameters at once"),
        models: Optional[str] = typer.Option(None, help="--automl: comma-separated families (default: settings "
                                                        "tuning.automl_models)"),
        trials: Optional[int] = typer.Option(None, "--trials", min=1, help="trials in this run (default: settings "
                                                                           "tuning.n_trials)"),
        timeout: Optional[float] = typer.Option(None, "--timeout", min=0.001, help="stop starting trials after S "
                                                                                  "seconds"),
        study: Optional[str] = typer.Option(None, "--study", help="study name (default: the model, or automl-...); "
                                                                  "an existing study is continued"),
        k: Optional[int] = typer.Option(None, "--k", min=1, help="cut-off of the validation metric (default 10)"),
        metric: Optional[str] = typer.Option(None, "--metric", help="ndcg, recall, precision, map, hit_rate or mrr"),
        validation: Optional[str] = typer.Option(None, "--validation", help="stratified or temporal"),
        folds: Optional[int] = typer.Option(None, "--folds", min=1, max=10,
                                            help="stratified validation folds; trials score their mean (default 1)"),
        split: Optional[str] = typer.Option(None, "--split", help="the train/test split whose test part tuning never "
                                                                  "sees: temporal, stratified, leave_last_n, strong"),
        top: int = typer.Option(10, "--top", min=1, help="best trials shown"),
        csv: Optional[Path] = typer.Option(None, "--csv", help=CSV_HELP),
        user_col: str = typer.Option("user", "--user-col", help="CSV: user column"),
        item_col: str = typer.Option("item", "--item-col", help="CSV: item column"),
        rating_col: Optional[str] = typer.Option(None, "--rating-col", help="CSV: rating column (default: 'rating' "
                                                                            "if present; '' for none)"),
        ts_col: Optional[str] = typer.Option(None, "--ts-col", help="CSV: timestamp column (default: 'timestamp' "
                                                                    "if present; '' for none)"),
    ) -> None:
        """Search hyperparameters with Optuna on a validation split carved from the training data.

        The study is stored (default DATA_DIR/optuna.db) and continues when run again under the same name.
        Prints the best trials and the best parameters as TOML for streamrec.toml.
        """
        import optuna

        from streamrec import tuning as T

        if automl == (model is not None):
            raise ConfigError("tune: give either a MODEL or --automl (not both)" if automl
                              else "tune: give a MODEL to tune, or --automl to compare model families")
        if models and not automl:
            raise ConfigError("tune: --models goes with --automl")
        settings = tuning_settings(settings_of(ctx), k, metric, validation, split, folds)
        if settings.logging.level != "debug":
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial otherwise
            logging.getLogger("alembic").setLevel(logging.WARNING)
        table = load_training_table(settings, csv, user_col, item_col, rating_col, ts_col)
        cfg = settings.tuning
        common: dict[str, Any] = dict(n_trials=trials, timeout_s=timeout, study_name=study,
                                      storage=T.default_storage(settings), seed=settings.seed,
                                      holdout=settings.train.split if cfg.holdout else None)
        if automl:
            families = [m.strip() for m in models.split(",") if m.strip()] if models else None
            with progress_bar("AutoML trials") as bar:
                result = T.automl(table, families, cfg, on_trial=bar, **common)
        else:
            with progress_bar(f"tuning {model}") as bar:
                result = T.tune(table, model, cfg, on_trial=bar, **common)
        print_result(result, top)
