"""`streamrec preprocess`: bots out, implicit-feedback weights, k-core, written beside the events."""

from __future__ import annotations

from typing import Optional

import typer

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, summary_table
from streamrec.errors import ConfigError


def run(settings, engine: Optional[str] = None) -> "PreprocessReport":  # noqa: F821 (imported lazily)
    """Run preprocessing on the configured event store (the Spark one with engine 'spark') and return its report."""
    from streamrec.engines import event_store_settings
    from streamrec.preprocess.pipeline import run_preprocess
    from streamrec.storage.events import open_event_store

    settings = event_store_settings(settings, engine)
    with open_event_store(settings) as store:
        if store.counts()["events"] == 0:
            raise ConfigError(f"{settings.event_store_path}: no events yet (run `streamrec ingest` first)")
        if settings.event_store.type == "spark":
            from streamrec.engines.spark.run import preprocess

            return preprocess(settings, store)
        return run_preprocess(store.con, settings.preprocess)  # type: ignore[attr-defined]


def print_report(report) -> None:
    rows = [
        ("events in", report.events_in), ("users in", report.users_in),
        ("bot users removed", report.bot_users), ("bot events removed", report.bot_events),
        *((f"  bots: {reason}", n) for reason, n in report.bot_reasons.items()),
        ("viewing sessions", report.sessions),
        ("median session (min)", f"{report.median_session_s / 60:.1f}"),
        ("events per session", f"{report.events_per_session:.1f}"),
        ("weighted (user, title) pairs", report.interactions_before_kcore),
        ("pairs with weight <= 0 left out", report.nonpositive_pairs),
        ("impression-only pairs (ranker negatives)", report.impressions_only),
        ("users before → after k-core", f"{report.users_before_kcore:,} → {report.users_after_kcore:,}"),
        ("titles before → after k-core", f"{report.titles_before_kcore:,} → {report.titles_after_kcore:,}"),
        ("interactions out", report.interactions_out),
        ("seconds", f"{report.seconds:.2f}"),
    ]
    console.print(summary_table("preprocess", rows))


def register(app: typer.Typer) -> None:
    @app.command()
    def preprocess(
        ctx: typer.Context,
        min_user: Optional[int] = typer.Option(None, "--min-user", min=1, help="k-core: positives per user"),
        min_item: Optional[int] = typer.Option(None, "--min-item", min=1, help="k-core: positives per title"),
        engine: Optional[str] = typer.Option(None, "--engine", help="spark: run on Spark, over and into the Spark "
                                             "event store (DATA_DIR/lake), as event_store.type = \"spark\" does; "
                                             "default: the event_store setting"),
    ) -> None:
        """Remove bots, weight each (user, title) by watch completion and ratings, apply k-core filtering.

        Writes the tables bots, sessions, interactions and impressions_only into the event store, replacing the
        previous ones together (DuckDB: one transaction; Spark: one new version of the derived tables).
        """
        settings = settings_of(ctx)
        updates = {k: v for k, v in {"min_user_interactions": min_user, "min_item_interactions": min_item}.items()
                   if v is not None}
        if updates:
            settings = settings.model_copy(update={"preprocess": settings.preprocess.model_copy(update=updates)})
        print_report(run(settings, engine))
