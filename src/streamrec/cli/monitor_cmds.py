"""`streamrec monitor`: data quality of the latest ingestion batches, feature and score drift against the training-time
reference, online quality (play rate per variant, concentration, coverage per day). Exit codes: 0 no alert, 1 an alert
fired, 2 an error (as every streamrec command)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import timedelta
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

        settings = settings_of(ctx)
        config = load_config(thresholds)
        if batches is not None:
            config.quality.batches = batches
        if days is not None:
            config.recent_days = days
        if current is not None and reference is None:
            raise ConfigError("--current needs --reference (the snapshot to compare it with)")
        report = run(settings, config, reference, current)
        console.print(render(report))
        if as_json:
            console.print_json(json.dumps([asdict(a) for a in report.alerts]))
        raise typer.Exit(code=report.exit_code)


def run(settings, config=None, reference: Path | None = None, current: Path | None = None):
    """Every check of `streamrec monitor` over the settings' event store and logs: a MonitoringReport.

    Raises:
        ConfigError: no event store, or not a duckdb one. DataError: it holds no ingestion batches.
    """
    from streamrec.errors import ConfigError
    from streamrec.monitoring.config import MonitoringConfig
    from streamrec.monitoring.report import MonitoringReport
    from streamrec.storage.events import open_event_store
    from streamrec.storage.events.duckdb import DuckDBEventStore

    report = MonitoringReport()
    with open_event_store(settings, read_only=True) as store:
        if not isinstance(store, DuckDBEventStore):
            raise ConfigError(f"monitor reads the duckdb event store, not '{settings.event_store.type}'")
        collect(report, settings, config or MonitoringConfig(), store.con, reference, current)
    return report


def collect(report, settings, config, con, reference: Path | None = None, current: Path | None = None) -> None:
    """Fill `report` with every check over the store on `con` and the logs under the settings' data folder."""
    from streamrec.experiments.exposure import read_log
    from streamrec.features.offline import has_table
    from streamrec.monitoring.drift import drift_alerts, score_drift, served_scores, snapshot_drift
    from streamrec.monitoring.online import concentration_over_time, online_alerts, play_rate_by_variant
    from streamrec.monitoring.quality import check_batches, quality_alerts
    from streamrec.monitoring.reference import find_reference, read_scores
    from streamrec.monitoring.served import read_served, served_folder

    report.batches = check_batches(con, config.quality)
    report.alerts.extend(quality_alerts(report.batches, config.quality))

    served = read_served(served_folder(settings.data_dir), days=config.recent_days)
    scored = [v for v, fb in zip(served["model_version"].to_pylist(), served["fallback"].to_pylist()) if fb is None]
    version = Counter(scored).most_common(1)[0][0] if scored else None  # the model that answered most lately
    current = current or settings.data_dir / "features"
    if reference is not None:  # a snapshot given by hand
        report.reference = str(reference)
        report.drift = snapshot_drift(reference, current, config.drift)
        report.drift_checked = True
        ref_scores = read_scores(reference) if reference.is_dir() else None
        compare_version = None
    else:
        found = find_reference(settings.data_dir, version)
        ref_scores, compare_version = None, None
        if found is not None:
            report.reference = (f"{found.kind} {found.model} (registry version {found.version or '-'}), trained "
                                f"{found.created[:19]}" + ("" if found.matches(version) or version is None else
                                                           f"; served lately: {version}"))
            if found.features and current.exists():
                report.drift = snapshot_drift(found.path, current, config.drift)
                report.drift_checked = True
            elif found.features:
                report.drift_note = f"no current feature snapshot at {current} (streamrec features build)"
            else:
                report.drift_note = "the reference has no feature snapshot (trained from a CSV file)"
            if found.matches(version):
                ref_scores, compare_version = read_scores(found), version
            else:
                report.scores_note = (f"the reference is of {found.model}, the lists served lately came from "
                                      f"{version}" if version else "no served lists with scores logged lately")
    if ref_scores is not None and ref_scores.size:
        now = served_scores(served, compare_version)
        if now.size:
            report.scores = score_drift(ref_scores, now, config.drift)
        else:
            report.scores_note = "no served lists with scores logged lately"
    report.alerts.extend(drift_alerts(report.drift + ([report.scores] if report.scores else []), config.drift))

    log = read_log(settings.data_dir / "experiments" / "exposures")
    if log.num_rows:
        import pyarrow as pa
        import pyarrow.compute as pc

        since = log["ts"][-1].as_py() - timedelta(days=config.recent_days)
        log = log.filter(pc.greater_equal(log["ts"], pa.scalar(since, log.schema.field("ts").type)))
    report.play_rates = play_rate_by_variant(log, timedelta(hours=config.online.attribution_window_h))
    catalog = con.execute("SELECT count(*) FROM titles").fetchone()[0] if has_table(con, "titles") else None
    report.concentration = concentration_over_time(served, catalog or None, config.online.top_fraction)
    report.alerts.extend(online_alerts(report.play_rates, report.concentration, config.online))
