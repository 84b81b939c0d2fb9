"""`streamrec ingest` and `streamrec store`: validated, deduplicated, crash-safe ingestion, and a look inside."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, progress_bar, summary_table
from streamrec.events.report import IngestSummary


def print_ingest_summary(summary: IngestSummary, seconds: float, store_path: Path) -> None:
    rows: list[tuple[str, object]] = [(f"catalog: {k}", v) for k, v in summary.catalog.items()]
    rows += [
        ("files", len(summary.batches)),
        ("files skipped (already ingested)", sum(b.skipped for b in summary.batches)),
        ("events read", summary.total("read")),
        ("events stored", summary.total("stored")),
        ("duplicates dropped", summary.total("duplicates")),
        ("quarantined", summary.total("quarantined")),
    ]
    rows += [(f"  quarantined: {reason}", n) for reason, n in summary.by_reason().items()]
    rows += [("seconds", f"{seconds:.2f}"), ("event store", str(store_path))]
    console.print(summary_table("ingest", rows))


def quality_of(settings):
    """The per-batch data-quality summary ingestion stores with each batch report."""
    from streamrec.preprocess.quality import batch_quality

    late = settings.preprocess.quality_late_after_h
    return lambda con, relation: batch_quality(con, relation, late_after_h=late).as_dict()


def register(app: typer.Typer) -> None:
    """Add `ingest` and the `store` group to the root app."""

    @app.command()
    def ingest(
        ctx: typer.Context,
        paths: list[Path] = typer.Argument(..., help="data set folders, folders of event files, or files"),
        fmt: Optional[str] = typer.Option(None, "--format", help="csv, parquet or jsonl (default: from the name)"),
        unknown_titles: Optional[str] = typer.Option(None, help="quarantine or accept events for unknown titles"),
        unknown_users: Optional[str] = typer.Option(None, help="accept or quarantine events for unknown users"),
        as_json: bool = typer.Option(False, "--json", help="print every batch report as JSON"),
        engine: Optional[str] = typer.Option(None, "--engine", help="spark: check and store on Spark, into the Spark "
                                             "event store (Parquet under DATA_DIR/lake), as event_store.type = "
                                             "\"spark\" does; default: the event_store setting"),
    ) -> None:
        """Validate and store events exactly once; invalid rows go to quarantine with their reason."""
        from streamrec.engines import event_store_settings
        from streamrec.events.runner import ingest_paths
        from streamrec.storage.events import open_event_store

        settings = event_store_settings(settings_of(ctx), engine)
        config = settings.ingest.model_copy(
            update={k: v for k, v in {"unknown_titles": unknown_titles, "unknown_users": unknown_users}.items() if v}
        )
        config = type(config).model_validate(config.model_dump())  # re-validate the overridden values
        started = time.perf_counter()
        with open_event_store(settings) as store, progress_bar("ingesting files") as bar:
            summary = ingest_paths(store, paths, config, fmt=fmt, quality=quality_of(settings), on_progress=bar)
        if as_json:
            console.print_json(json.dumps([b.as_dict() for b in summary.batches], default=str))
        print_ingest_summary(summary, time.perf_counter() - started, settings.event_store_path)

    store_app = typer.Typer(help="Look inside the event store: counts, quarantine, export.", no_args_is_help=True)
    app.add_typer(store_app, name="store")

    @store_app.command("stats")
    def stats(ctx: typer.Context) -> None:
        """Rows per table and the last ingested batches."""
        from streamrec.storage.events import open_event_store

        settings = settings_of(ctx)
        with open_event_store(settings, read_only=True) as store:
            console.print(summary_table(f"event store {settings.event_store_path}", store.counts()))
            batches = store.read("batches").to_pylist()[-10:]
        table = Table("batch", "source", "read", "stored", "duplicates", "quarantined", title="last batches")
        for b in batches:
            table.add_row(str(b["batch_id"]), b["source"], *(f"{b[k]:,}" for k in ("read", "stored", "duplicates",
                                                                                    "quarantined")))
        console.print(table)

    @store_app.command("quarantine")
    def quarantine(ctx: typer.Context, limit: int = typer.Option(20, min=1, help="rows to show")) -> None:
        """The quarantined rows: file, row, field, reason and detail."""
        from streamrec.storage.events import open_event_store

        with open_event_store(settings_of(ctx), read_only=True) as store:
            rows = store.read("quarantine").to_pylist()
        table = Table("source", "row", "field", "reason", "detail", title=f"quarantine ({len(rows):,} rows)")
        for r in rows[:limit]:
            table.add_row(r["source"], str(r["row"]), r["field"], r["reason"], r["detail"])
        console.print(table)

    @store_app.command("export")
    def export(ctx: typer.Context, out: Path = typer.Option(..., "--out", help="folder for the Parquet files")) -> None:
        """Write the events as Parquet partitioned by date (for Spark and other engines)."""
        from streamrec.storage.events import open_event_store

        with open_event_store(settings_of(ctx), read_only=True) as store:
            path = store.export_parquet(out)
            n = store.counts()["events"]
        console.print(summary_table("export", {"events": n, "written to": str(path)}))
