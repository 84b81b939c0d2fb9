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


def build(settings, at: Optional[datetime] = None, out: Optional[Path] = None):
    """Write the feature snapshot of every user and title; returns its SnapshotReport."""
    from streamrec.features import build_snapshot

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
def list_features() -> None:
    """The declared features: event aggregates (entity, aggregation, events, window) and attributes (SQL)."""
    from streamrec.features import BUILTIN, Feature
    from streamrec.features.definitions import GenreMatch

    table = Table(title="declared features", title_justify="left")
    for col in ("name", "entity", "definition", "events", "window", "description"):
        table.add_column(col)
    for f in BUILTIN:
        if isinstance(f, Feature):
            agg = f"{f.aggregation}({f.value})" if f.value else f.aggregation
            window = f"{f.window_days:g} d" if f.window_days else "all"
            table.add_row(f.name, f.entity, agg, ", ".join(f.events), window, f.description)
        elif isinstance(f, GenreMatch):
            window = f"{f.window_days:g} d" if f.window_days else "all"
            table.add_row(f.name, f.entity, "genre match", ", ".join(f.events), window, f.description)
        else:
            table.add_row(f.name, f.entity, f.sql, "–", "–", f.description)
    console.print(table)


@app.command("build")
def build_cmd(
    ctx: typer.Context,
    at: Optional[str] = typer.Option(None, "--at", help=AT_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for users.parquet / titles.parquet "
                                                           "(default DATA_DIR/features)"),
) -> None:
    """Compute every user's and every title's features as of one time and write them as Parquet."""
    print_build(build(settings_of(ctx), parse_time(at), out))


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
