"""`streamrec candidates` (the candidate stage's recall per source and combined) and `streamrec pipeline` (each source
alone vs the ranked pipeline), both on the held-out period of the store's interactions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, summary_table


def run(settings, quotas: Optional[dict[str, int]] = None):
    """Candidate recall on the settings' train/test split of the store's interactions."""
    from streamrec.features import events_relation
    from streamrec.pipeline.recall import candidate_stage_recall
    from streamrec.storage.events import open_event_store
    from streamrec.training.sources import interactions_from_store

    table = interactions_from_store(settings)
    with open_event_store(settings) as store:
        return candidate_stage_recall(store.con, table, settings.train.split, quotas or settings.pipeline.quotas,
                                      events_relation(store.con), settings.pipeline.filters)


def print_report(report) -> None:
    rows = [("split", f"{report.split['name']}: {report.split['test']['users']:,} test users, "
                      f"{report.split['test']['rows']:,} test rows")]
    rows += [(f"recall: {name} (quota {report.quotas[name]})", f"{value:.3f}")
             for name, value in report.recall.items() if name != "all"]
    rows += [("recall: all sources", f"{report.recall['all']:.3f}"),
             ("candidates per user", f"{report.candidates_per_user:.0f}"),
             *((f"filtered out: {reason}", f"{n:,}") for reason, n in report.filtered.items() if n),
             ("seconds", f"{report.seconds:.2f}")]
    console.print(summary_table("candidate stage", rows))


def register(app: typer.Typer) -> None:
    @app.command()
    def candidates(
        ctx: typer.Context,
        quota: Optional[list[str]] = typer.Option(
            None, "--quota", help="SOURCE=N, repeatable: only these sources (ease, als, trending, continue_watching, "
                                  "new_releases; default: the settings' pipeline.quotas)"),
    ) -> None:
        """Measure the candidate stage: the share of held-out positives each source, and their union, proposes."""
        from streamrec.errors import ConfigError
        from streamrec.pipeline.sources import QUOTAS

        quotas = None
        if quota:
            quotas = {}
            for item in quota:
                name, _, value = item.partition("=")
                if name not in QUOTAS or not value.isdigit() or int(value) < 1:
                    raise ConfigError(f"--quota {item!r}: expected SOURCE=N with N ≥ 1 and SOURCE one of "
                                      f"{', '.join(QUOTAS)}")
                quotas[name] = int(value)
        print_report(run(settings_of(ctx), quotas))

    @app.command()
    def pipeline(
        ctx: typer.Context,
        diversity: Optional[float] = typer.Option(
            None, "--diversity", min=0.0, max=1.0,
            help="MMR weight of genre diversity in the re-ranked stage (0: off; default: pipeline.diversity)"),
        features: Optional[Path] = typer.Option(
            None, "--features", help="JSON of extra ranker features (from `streamrec features select`), used "
                                     "beside the built-in ones (default: pipeline.features_file, if set)"),
        no_register: bool = typer.Option(False, "--no-register",
                                         help="evaluate and report only: do not fit, log or register the bundle"),
    ) -> None:
        """Train the ranked pipeline and show what each stage adds: each candidate source alone vs their union
        ordered by the LightGBM ranker on point-in-time features, and re-ranked for genre diversity (MMR), on the
        temporal test period; candidates pass the catalog's filters (pipeline.filters) first. Writes an HTML report,
        then fits the whole pipeline on all data and registers it in MLflow like any model (promoted by
        train.promote), ready for `streamrec rank` and serving."""
        print_pipeline(run_pipeline(settings_of(ctx), diversity, features, register=not no_register))


def run_pipeline(settings, diversity: Optional[float] = None, features: Optional[Path] = None,
                 register: bool = True):
    """Evaluate the ranked pipeline stage by stage on the store's interactions and events, report it, and (with
    `register`) fit, log and register the bundle. The ranker uses the built-in features plus those in `features`
    (default: the settings' pipeline.features_file)."""
    from streamrec.features import BUILTIN, events_relation
    from streamrec.features.selection import load_selection
    from streamrec.pipeline.train import train_pipeline
    from streamrec.storage.events import open_event_store
    from streamrec.training.sources import interactions_from_store

    config = settings.pipeline
    file = features or config.features_file
    extra = load_selection(Path(file)) if file else ()
    if file:
        console.print(f"ranker features: built-in + {len(extra)} from {file}")
    table = interactions_from_store(settings)
    with open_event_store(settings) as store:
        return train_pipeline(store.con, table, settings, events_relation(store.con), diversity=diversity,
                              register=register, definitions=(*BUILTIN, *extra))


def print_pipeline(result) -> None:
    report = result.report
    best, value = report.best_single
    rows = [(f"{name}" + ("" if name.startswith("ranked") else " alone"),
             f"NDCG@10 {v:.4f}" + (f", genre diversity {report.diversity[name]:.3f}" if name in report.diversity else "")
             + f", coverage {report.coverage.get(name, 0):.3f}, novelty {report.novelty.get(name, 0):.2f}")
            for name, v in report.ndcg.items()]
    rows += [("ranked pipeline vs best single source", f"{report.ndcg['ranked pipeline'] / value - 1:+.1%} vs {best}"),
             ("candidate recall (all sources)", f"{report.recall['all']:.3f}"),
             *((f"ranker feature: {name}", f"gain {gain:,.0f}") for name, gain in list(report.importance.items())[:5]),
             *((key.replace("_", " "), value) for key, value in report.counts.items()),
             ("seconds", f"{report.seconds:.2f}")]
    console.print(summary_table("ranked pipeline, stage by stage (temporal test period)", rows))
    if report.example:
        user, explanations = report.example
        console.print(summary_table(f"why: the ranked list of test user {user}",
                                    [(e.item_id, e.text()) for e in explanations[:5]]))
    console.print(f"report: {result.html}")
    if result.version is not None:
        console.print(f"registered the pipeline as version {result.version} "
                      f"({'champion: ' if result.promoted else 'not promoted: '}{result.promote_reason}); "
                      f"bundle: {result.bundle_dir}")
