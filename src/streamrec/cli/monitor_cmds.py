"""`streamrec monitor`: data quality of the latest ingestion batches, feature and score drift against the training-time
reference, online quality (play rate per variant, concentration, coverage per day). Exit codes: 0 no alert, 1 an alert
fired, 2 an error (as every streamrec command)."""

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
                                                 help="feature snapshot to compare against: a folder written by "
                                                      "`streamrec features build --out` or one Parquet file "
                                                      "(default: the reference the served model saved when it "
                                                      "was trained, under DATA_DIR/monitoring/references)"),
        current: Optional[Path] = typer.Option(None, "--current",
                                               help="the recent feature snapshot to compare (folder or Parquet file; "
                                                    "default: DATA_DIR/features)"),
        days: Optional[float] = typer.Option(None, "--days", min=0.01,
                                             help="recent serving: served lists and exposures of the last N days "
                                                  "(default 7)"),
        thresholds: Optional[Path] = typer.Option(None, "--thresholds",
                                                  help="TOML file with \\[drift], \\[quality] and \\[online] "
                                                       "thresholds"),
        as_json: bool = typer.Option(False, "--json", help="print the alerts as JSON after the report"),
    ) -> None:
        """Check data quality, drift and online quality, print a report; exit 1 when an alert fires, 0 otherwise
        (2: an error)."""
        from streamrec.errors import ConfigError
        from streamrec.monitoring.config import load_config
        from streamrec.monitoring.report import render
        from streamrec.monitoring.run import monitoring_report

        settings = settings_of(ctx)
        config = load_config(thresholds)
        if batches is not None:
            config.quality.batches = batches
        if days is not None:
            config.recent_days = days
        if current is not None and reference is None:
            raise ConfigError("--current needs --reference (the snapshot to compare it with)")
        report = monitoring_report(settings, config, reference, current)
        console.print(render(report))
        if as_json:
            console.print_json(json.dumps([asdict(a) for a in report.alerts]))
        raise typer.Exit(code=report.exit_code)
