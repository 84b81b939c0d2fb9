"""`streamrec monitor`: data quality of the latest ingestion batches and feature drift; exit 2 when an alert fires."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console


def register(app: typer.Typer) -> None:
    """Add `monitor` to the root app."""

    @app.command()
    def monitor(
        ctx: typer.Context,
        batches: Optional[int] = typer.Option(None, "--batches", min=1,
                                              help="check the latest N ingestion batches (default 5)"),
        reference: Optional[Path] = typer.Option(None, "--reference",
                                                 help="feature snapshot at training time: a folder written by "
                                                      "`streamrec features build --out` or one Parquet file"),
        current: Optional[Path] = typer.Option(None, "--current",
                                               help="the recent feature snapshot to compare (folder or Parquet file; "
                                                    "default: DATA_DIR/features)"),
        thresholds: Optional[Path] = typer.Option(None, "--thresholds",
                                                  help="TOML file with \\[drift] and \\[quality] thresholds"),
        as_json: bool = typer.Option(False, "--json", help="print the alerts as JSON after the report"),
    ) -> None:
        """Check data quality and feature drift, print a report; exit code 2 when an alert fires, 0 otherwise."""
        from streamrec.errors import ConfigError
        from streamrec.monitoring.config import load_config
        from streamrec.monitoring.drift import drift_alerts, snapshot_drift
        from streamrec.monitoring.quality import check_batches, quality_alerts
        from streamrec.monitoring.report import MonitoringReport, render
        from streamrec.storage.events import open_event_store
        from streamrec.storage.events.duckdb import DuckDBEventStore

        settings = settings_of(ctx)
        config = load_config(thresholds)
        if batches is not None:
            config.quality.batches = batches
        if current is not None and reference is None:
            raise ConfigError("--current needs --reference (the snapshot to compare it with)")
        report = MonitoringReport()
        with open_event_store(settings, read_only=True) as store:
            if not isinstance(store, DuckDBEventStore):
                raise ConfigError(f"monitor reads the duckdb event store, not '{settings.event_store.type}'")
            report.batches = check_batches(store.con, config.quality)
        report.alerts.extend(quality_alerts(report.batches, config.quality))
        if reference is not None:
            report.drift = snapshot_drift(reference, current or settings.data_dir / "features", config.drift)
            report.drift_checked = True
            report.alerts.extend(drift_alerts(report.drift, config.drift))
        console.print(render(report))
        if as_json:
            console.print_json(json.dumps([asdict(a) for a in report.alerts]))
        raise typer.Exit(code=report.exit_code)
