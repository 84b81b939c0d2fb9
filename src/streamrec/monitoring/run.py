"""Every check of `streamrec monitor` in one call, over a settings' event store and the logs under its data folder:
`monitoring_report(settings)` gives the MonitoringReport the CLI prints (and the dashboard can show)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from streamrec.errors import ConfigError
from streamrec.monitoring.config import MonitoringConfig
from streamrec.monitoring.report import MonitoringReport
from streamrec.settings import Settings


def monitoring_report(settings: Settings, config: MonitoringConfig | None = None, reference: Path | None = None,
                      current: Path | None = None) -> MonitoringReport:
    """Every check of `streamrec monitor` over the settings' event store and logs: a MonitoringReport.

    Raises:
        ConfigError: no event store, or not a duckdb one. DataError: it holds no ingestion batches.
    """
    from streamrec.storage.events import open_event_store
    from streamrec.storage.events.duckdb import DuckDBEventStore

    report = MonitoringReport()
    with open_event_store(settings, read_only=True) as store:
        if not isinstance(store, DuckDBEventStore):
            raise ConfigError(f"monitor reads the duckdb event store, not '{settings.event_store.type}'")
        collect(report, settings, config or MonitoringConfig(), store.con, reference, current)
    return report


def collect(report: MonitoringReport, settings: Settings, config: MonitoringConfig, con: duckdb.DuckDBPyConnection,
            reference: Path | None = None, current: Path | None = None) -> None:
    """Fill `report` with every check over the store on `con` and the logs under the settings' data folder."""
    from streamrec.experiments.exposure import read_log
    from streamrec.features.offline import has_table
    from streamrec.monitoring.drift import drift_alerts, score_drift, served_scores, snapshot_drift
    from streamrec.monitoring.online import concentration_over_time, online_alerts, play_rate_by_variant
    from streamrec.monitoring.quality import check_batches, quality_alerts
    from streamrec.monitoring.reference import find_reference, read_scores
    from streamrec.monitoring.served import latest_served_version, read_served, served_folder

    report.batches = check_batches(con, config.quality)
    report.alerts.extend(quality_alerts(report.batches, config.quality))

    served = read_served(served_folder(settings.data_dir), days=config.recent_days)
    version = latest_served_version(served)  # the model that answered most lately
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
