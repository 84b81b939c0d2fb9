"""`streamrec features list|build|show`: the declared features, snapshots of all users and titles, one user's."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, summary_table
from streamrec.errors import ConfigError

app = typer.Typer(help="Features declared once, computed point in time from the event store.", no_args_is_help=True)

AT_HELP = "as of this time (ISO 8601, UTC if no zone); default: just after the newest stored event"


def parse_time(text: Optional[str]) -> Optional[datetime]:
    """An ISO 8601 time as naive UTC (the event store's convention), or None."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--at: not an ISO 8601 time: {text!r}") from exc
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _store(settings):
    from streamrec.storage.events import open_event_store
    from streamrec.storage.events.duckdb import DuckDBEventStore

    store = open_event_store(settings)
    if not isinstance(store, DuckDBEventStore):
        store.close()
        raise ConfigError(f"features run on the duckdb event store, not '{settings.event_store.type}'")
    return store


def build(settings, at: Optional[datetime] = None, out: Optional[Path] = None, engine: Optional[str] = None):
    """Write the feature snapshot of every user and title; returns its SnapshotReport."""
    from streamrec.engines import engine_of
    from streamrec.features import build_snapshot

    if engine_of(settings, engine) == "spark":
        from streamrec.engines.spark.run import build_features

        return build_features(settings, at, out)
    with _store(settings) as store:
        return build_snapshot(store.con, out or settings.data_dir / "features", at)


def print_build(report) -> None:
    rows = [("as of", report.at.isoformat(sep=" ")),
            *((f"{entity}s", f"{report.rows[entity]:,} × {report.features[entity]} features")
              for entity in report.rows),
            *((f"file ({entity}s)", str(path)) for entity, path in report.files.items()),
            ("seconds", f"{report.seconds:.2f}")]
    console.print(summary_table("features build", rows))


@app.command("list")
def list_features(
    candidates: bool = typer.Option(False, "--candidates",
                                    help="list the candidates generated from the templates (what `features select` "
                                         "tries) instead of the built-in features"),
) -> None:
    """The declared features: event aggregates (entity, aggregation, events, window) and attributes (SQL)."""
    from streamrec.features import BUILTIN, Feature
    from streamrec.features.definitions import GenreMatch, Ratio
    from streamrec.features.templates import candidates as generated

    shown = generated() if candidates else BUILTIN
    table = Table(title="candidate features (templates)" if candidates else "declared features", title_justify="left")
    for col in ("name", "entity", "definition", "events", "window", "description"):
        table.add_column(col)
    for f in shown:
        if isinstance(f, Feature):
            agg = f"{f.aggregation}({f.value})" if f.value else f.aggregation
            window = f"{f.window_days:g} d" if f.window_days else "all"
            table.add_row(f.name, f.entity, agg, ", ".join(f.events), window, f.description)
        elif isinstance(f, GenreMatch):
            window = f"{f.window_days:g} d" if f.window_days else "all"
            table.add_row(f.name, f.entity, "genre match", ", ".join(f.events), window, f.description)
        elif isinstance(f, Ratio):
            table.add_row(f.name, f.entity, f"ratio: {f.numerator.aggregation} / {f.denominator.aggregation}",
                          ", ".join(dict.fromkeys((*f.numerator.events, *f.denominator.events))),
                          f"{f.numerator.window_days:g} d / {f.denominator.window_days:g} d", f.description)
        else:
            table.add_row(f.name, f.entity, f.sql, "–", "–", f.description)
    console.print(table)


@app.command("build")
def build_cmd(
    ctx: typer.Context,
    at: Optional[str] = typer.Option(None, "--at", help=AT_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for users.parquet / titles.parquet "
                                                           "(default DATA_DIR/features)"),
    engine: Optional[str] = typer.Option(None, "--engine", help="embedded (DuckDB) or spark (Spark SQL over the "
                                                                "event store); default: settings engine.type"),
) -> None:
    """Compute every user's and every title's features as of one time and write them as Parquet."""
    print_build(build(settings_of(ctx), parse_time(at), out, engine))


@app.command("show")
def show(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="user id"),
    at: Optional[str] = typer.Option(None, "--at", help=AT_HELP),
) -> None:
    """One user's features as of a time (a user without events before it gets zero counts)."""
    from streamrec.features import BUILTIN, default_time, entity_features, events_relation

    with _store(settings_of(ctx)) as store:
        events = events_relation(store.con)
        when = parse_time(at) or default_time(store.con, events)
        row = entity_features(store.con, "user", [user], when, BUILTIN, events).to_pylist()[0]
    rows = [("as of", when.isoformat(sep=" "))]
    rows += [(name, "–" if value is None else (f"{value:.4g}" if isinstance(value, float) else value))
             for name, value in row.items() if name != "user_id"]
    console.print(summary_table(f"features of user {user}", rows))


def select(settings, config=None, out: Optional[Path] = None):
    """Feature selection on the store's interactions and events; writes the selected set. Returns (report, path)."""
    from streamrec.features import events_relation
    from streamrec.features.selection import save_selection, select_features
    from streamrec.training.sources import interactions_from_store

    table = interactions_from_store(settings)
    with _store(settings) as store:
        pipeline = settings.pipeline
        report = select_features(store.con, table, split=settings.train.split, config=config,
                                 events=events_relation(store.con), quotas=pipeline.quotas, policy=pipeline.filters)
    path = save_selection(out or settings.data_dir / "features" / "selected.json", report)
    return report, path


def print_selection(report, path: Path) -> None:
    table = Table(title="feature selection: candidates tried, best LightGBM gain first", title_justify="left")
    for col, justify in (("feature", "left"), ("definition", "left"), ("gain", "right"),
                         ("Δ validation NDCG@10", "right"), ("kept", "center")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    definitions = {f.name: f for f in report.candidates}
    for step in report.steps:
        f = definitions.get(step.name)
        text = (f"{f.aggregation}{f'({f.value})' if f.value else ''} of {', '.join(f.events)}, "
                f"{f'{f.window_days:g} d' if f.window_days else 'all history'}") if f else ""
        table.add_row(step.name, text, f"{step.gain:,.0f}", f"{step.delta:+.4f} ± {step.stderr:.4f}",
                      "✓" if step.kept else "–")
    console.print(table)
    kept = ", ".join(f.name for f in report.selected) or "none: no candidate beat the built-in features on validation"
    p = report.periods
    rows = [("candidates generated", len(report.candidates)), ("tried", len(report.steps)), ("selected", kept),
            ("validation NDCG@10, built-in features", f"{report.base_ndcg:.4f}"),
            ("validation NDCG@10, built-in + selected", f"{report.selected_ndcg:.4f} ({report.gain:+.1%})"),
            ("fit / validation cut", f"{p['fit_cut']:%Y-%m-%d %H:%M} / {p['validation_cut']:%Y-%m-%d %H:%M}"),
            ("test period (not read) from", f"{p['test_cut']:%Y-%m-%d %H:%M}"),
            *((key.replace("_", " "), f"{value:,}") for key, value in report.counts.items()),
            ("written to", str(path)), ("seconds", f"{report.seconds:.1f}")]
    console.print(summary_table("features select", rows))


@app.command("select")
def select_cmd(
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(None, "--out", help="JSON of the selected definitions "
                                                           "(default DATA_DIR/features/selected.json)"),
    max_tries: int = typer.Option(20, "--max-tries", min=1, help="candidates tried, best LightGBM gain first"),
    max_selected: int = typer.Option(8, "--max-selected", min=1, help="most candidates kept"),
    tolerance: float = typer.Option(0.001, "--tolerance", min=0.0,
                                    help="validation NDCG@10 gain a candidate must exceed to be kept"),
) -> None:
    """Generate candidate features from the templates (event types × windows × aggregations) and keep those that
    raise the ranker's NDCG@10 on a validation period inside its training period (the test period is never read).
    `streamrec pipeline --features FILE` then evaluates the ranker with the built-in features plus these."""
    from streamrec.features.selection import SelectionConfig

    config = SelectionConfig(max_tries=max_tries, max_selected=max_selected, tolerance=tolerance)
    print_selection(*select(settings_of(ctx), config, out))
