"""`streamrec train | evaluate | recommend`: compare models honestly, register the winner, score in batch."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, progress_bar, summary_table
from streamrec.errors import ConfigError, NotFound
from streamrec.settings import Settings

CSV_HELP = "train on this user,item,rating[,timestamp] CSV instead of the event store"
ENGINE_HELP = "embedded or spark (default: settings engine.type)"


def _settings(ctx: typer.Context, models: Optional[str], split: Optional[str], k: Optional[int]) -> Settings:
    settings = settings_of(ctx)
    train = settings.train.model_dump()
    if models:
        train["models"] = [m.strip() for m in models.split(",") if m.strip()]
    if split:
        train["split"]["kind"] = split
    if k:
        train["k"] = k
    try:
        return settings.model_copy(update={"train": type(settings.train).model_validate(train)})
    except ValueError as exc:
        raise ConfigError(f"invalid train options: {exc}") from exc


def load_table(settings: Settings, csv: Optional[Path], user_col: str, item_col: str, rating_col: str, ts_col: str):
    from streamrec.training import interactions_from_csv, interactions_from_store

    if csv is not None:
        return interactions_from_csv(csv, user_col, item_col, rating_col or None, ts_col or None)
    return interactions_from_store(settings)


def item_genres(settings: Settings) -> dict[str, list[str]] | None:
    """Genres per title from the store's catalog, for the diversity metric (None when there is no catalog)."""
    from streamrec.storage.events import open_event_store

    if not settings.event_store_path.exists():
        return None
    with open_event_store(settings, read_only=True) as store:
        titles = store.read("titles", ["item_id", "genres"]).to_pylist()
    return {t["item_id"]: t["genres"] or [] for t in titles} or None


def comparison_table(result, metric: str) -> Table:
    """Models ranked by `metric`, with its 95% interval, other accuracy and beyond-accuracy metrics, and speed."""
    table = Table(title=f"model comparison ({result.split.get('name')} split, {result.n_users:,} test users, "
                        f"{result.n_items:,} titles)", title_justify="left")
    k = result.k
    cols = [f"recall@{k}", f"map@{k}", f"mrr@{k}", f"coverage@{k}", f"novelty@{k}"]
    for name in ("model", metric, "95% CI", *cols, "fit s", "ms/user"):
        table.add_column(name, justify="left" if name == "model" else "right", style="bold" if name == "model" else "")
    ranked = sorted(result.models.values(), key=lambda m: -(m.metrics[metric].mean or 0))
    for m in ranked:
        main = m.metrics[metric]
        ci = f"{main.low:.4f}–{main.high:.4f}" if main.low is not None else "-"
        cells = [f"{m.metrics[c].mean:.4f}" if c in m.metrics and m.metrics[c].mean is not None else "-" for c in cols]
        latency = m.latency.get("batch_ms_per_user_p50")
        table.add_row(m.name, f"{main.mean:.4f}", ci, *cells, f"{m.fit_seconds:.2f}",
                      f"{latency:.3f}" if latency is not None else "-")
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        ctx: typer.Context,
        models: Optional[str] = typer.Option(None, help="comma-separated model names (default: settings train.models)"),
        split: Optional[str] = typer.Option(None, help="temporal, stratified, leave_last_n or strong"),
        k: Optional[int] = typer.Option(None, min=1, help="cut-off of the comparison metric"),
        csv: Optional[Path] = typer.Option(None, help=CSV_HELP),
        user_col: str = typer.Option("user", help="CSV: user column"),
        item_col: str = typer.Option("item", help="CSV: item column"),
        rating_col: str = typer.Option("rating", help="CSV: rating column ('' for none)"),
        ts_col: str = typer.Option("timestamp", help="CSV: timestamp column ('' for none)"),
        no_register: bool = typer.Option(False, "--no-register", help="do not log to MLflow or register"),
        engine: Optional[str] = typer.Option(None, "--engine", help=ENGINE_HELP + "; spark fits ALS with Spark MLlib "
                                             "(saved as the same `als` model), other models stay embedded"),
    ) -> None:
        """Compare models on a held-out split, refit the best on all data, save, log and register it."""
        from streamrec.engines import engine_of
        from streamrec.training import train_and_register

        settings = _settings(ctx, models, split, k)
        factory = None
        if engine_of(settings, engine) == "spark":
            from streamrec.engines.spark.run import model_factory

            factory = model_factory(settings)
        table = load_table(settings, csv, user_col, item_col, rating_col, ts_col)
        genres = None if csv else item_genres(settings)
        with progress_bar("evaluating models") as bar:
            out = train_and_register(table, settings, register=not no_register, item_genres=genres, on_progress=bar,
                                     factory=factory)
        console.print(comparison_table(out.evaluation, out.metric))
        rows = [("best model", out.best), (out.metric, f"{out.evaluation.models[out.best].metrics[out.metric].mean:.4f}"),
                ("refit on all data (s)", f"{out.fit_seconds:.2f}"), ("saved to", str(out.model_dir))]
        if out.version is not None:
            rows += [("registered version", out.version), ("MLflow run", out.run_id),
                     ("champion", "yes" if out.promoted else "no"), ("why", out.promote_reason)]
        console.print(summary_table("train", rows))

    @app.command()
    def evaluate(
        ctx: typer.Context,
        models: Optional[str] = typer.Option(None, help="comma-separated model names (default: settings train.models)"),
        split: Optional[str] = typer.Option(None, help="temporal, stratified, leave_last_n or strong"),
        k: Optional[int] = typer.Option(None, min=1, help="main cut-off"),
        report: Optional[Path] = typer.Option(None, help="HTML report path (default DATA_DIR/reports/evaluation.html)"),
        csv: Optional[Path] = typer.Option(None, help=CSV_HELP),
        user_col: str = typer.Option("user", help="CSV: user column"),
        item_col: str = typer.Option("item", help="CSV: item column"),
        rating_col: str = typer.Option("rating", help="CSV: rating column ('' for none)"),
        ts_col: str = typer.Option("timestamp", help="CSV: timestamp column ('' for none)"),
    ) -> None:
        """Evaluate models on the full catalog: accuracy with confidence intervals, beyond-accuracy, latency."""
        from streamrec.evaluation import evaluate as run_evaluation
        from streamrec.evaluation import write_report
        from streamrec.training import make_split

        settings = _settings(ctx, models, split, k)
        table = load_table(settings, csv, user_col, item_col, rating_col, ts_col)
        cfg = settings.train
        specs = {name: (name, cfg.params.get(name, {})) for name in cfg.models}
        started = time.perf_counter()
        with progress_bar("evaluating models") as bar:
            result = run_evaluation(specs, make_split(table, cfg.split), k=cfg.k, ks=sorted({cfg.k, 10, 20}),
                                    item_genres=None if csv else item_genres(settings), seed=cfg.split.seed,
                                    on_progress=bar)
        metric = f"{cfg.metric}@{cfg.k}"
        console.print(comparison_table(result, metric))
        path = write_report(result, report or settings.data_dir / "reports" / "evaluation.html")
        result.to_json(Path(path).with_suffix(".json"))
        console.print(summary_table("evaluate", [("best", result.best(metric)), ("report", str(path)),
                                                 ("seconds", f"{time.perf_counter() - started:.1f}")]))

    @app.command()
    def recommend(
        ctx: typer.Context,
        out: Path = typer.Option(..., "--out", help="output .csv or .parquet"),
        users: str = typer.Option("all", help="'all', or a file with one user id per line"),
        k: int = typer.Option(10, min=1, max=1000, help="titles per user"),
        model: str = typer.Option("champion", help="registry alias or version, or a saved model folder"),
        csv: Optional[Path] = typer.Option(None, help="histories from this CSV instead of the event store"),
        user_col: str = typer.Option("user", help="CSV: user column"),
        item_col: str = typer.Option("item", help="CSV: item column"),
        rating_col: str = typer.Option("rating", help="CSV: rating column ('' for none)"),
        ts_col: str = typer.Option("timestamp", help="CSV: timestamp column ('' for none)"),
        engine: Optional[str] = typer.Option(None, "--engine", help=ENGINE_HELP + "; spark scores blocks of users "
                                             "on Spark tasks"),
    ) -> None:
        """Batch top-k for all or listed users; users with no history get the most popular titles."""
        from streamrec.data.interactions import Interactions
        from streamrec.engines import engine_of
        from streamrec.models import load_model
        from streamrec.pipeline.bundle import PipelineBundle, is_bundle
        from streamrec.registry import model_folder
        from streamrec.training.batch import recommend_batch, write_table

        settings = settings_of(ctx)
        data = Interactions.from_table(load_table(settings, csv, user_col, item_col, rating_col, ts_col))
        if users == "all":
            user_ids = data.user_ids
        else:
            path = Path(users)
            if not path.is_file():
                raise NotFound("users file", users)
            user_ids = np.asarray([line.strip() for line in path.read_text().splitlines() if line.strip()],
                                  dtype=object)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            folder = model_folder(settings, model, Path(tmp))[0]
            if is_bundle(folder):  # a ranked pipeline: each user answered as serving answers them
                from streamrec.cli.rank_cmds import rank_users

                name = "pipeline"
                with progress_bar("ranking users") as bar:
                    table = write_table(rank_users(settings, PipelineBundle.load(folder), user_ids, k, data, bar), out)
            elif engine_of(settings, engine) == "spark":
                from streamrec.engines.spark.run import recommend as spark_recommend

                fitted = load_model(folder)
                name = fitted.name
                table = write_table(spark_recommend(settings, fitted, data, user_ids, k), out)
            else:
                fitted = load_model(folder)
                name = fitted.name
                with progress_bar("scoring users") as bar:
                    table = write_table(recommend_batch(fitted, data, user_ids, k, on_progress=bar), out)
        seconds = time.perf_counter() - started
        console.print(summary_table("recommend", [("model", f"{name} ({model})"), ("users", len(user_ids)),
                                                  ("k", k), ("users/s", f"{len(user_ids) / seconds:,.0f}"),
                                                  ("written to", str(table))]))
