"""The data page's online series, from the checks of `streamrec monitor` (streamrec.monitoring.online and .drift): the
play rate of served lists per experiment variant per day, popularity concentration and catalog coverage per day, the
drift of served scores against the served model's training-time reference, and the alerts they raise. Only the logs'
recent days are read, as the monitor reads them; the feature drift and batch checks stay with streamrec.monitoring
.dashboard.data (not computed twice)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamrec.monitoring.config import MonitoringConfig


def _recent_log(folder: Path, days: float) -> pa.Table:
    """The exposure log's rows of the last `days` before its newest (the monitor's window)."""
    from streamrec.experiments.exposure import read_log

    log = read_log(folder)
    if log.num_rows:
        since = log["ts"][-1].as_py() - timedelta(days=days)
        log = log.filter(pc.greater_equal(log["ts"], pa.scalar(since, log.schema.field("ts").type)))
    return log


def _play_rate(rates: list) -> dict[str, Any]:
    days = sorted({r.day.isoformat() for r in rates})
    index = {d: i for i, d in enumerate(days)}
    by_variant: dict[str, list[float | None]] = {}
    responses: dict[str, list[int]] = {}
    for r in rates:
        label = f"{r.experiment}/{r.variant}"
        by_variant.setdefault(label, [None] * len(days))[index[r.day.isoformat()]] = r.play_rate
        responses.setdefault(label, [0] * len(days))[index[r.day.isoformat()]] = r.responses
    return {"days": days, "by_variant": dict(sorted(by_variant.items())), "responses": dict(sorted(responses.items()))}


def _concentration(days: list, top_fraction: float) -> dict[str, Any]:
    return {"days": [c.day.isoformat() for c in days], "lists": [c.lists for c in days],
            "titles": [c.titles for c in days], "coverage": [c.coverage for c in days],
            "gini": [c.gini for c in days], "top_share": [c.top_share for c in days], "top_fraction": top_fraction}


def _scores(settings: Any, served: pa.Table, config: MonitoringConfig) -> tuple[Any, str | None, str]:
    """(FeatureDrift of the served scores or None, what they were compared with, why not when None): the reference of
    the model that answered most lately, as `streamrec monitor` picks it (streamrec.monitoring.run)."""
    from streamrec.monitoring.drift import score_drift, served_scores
    from streamrec.monitoring.reference import find_reference, read_scores
    from streamrec.monitoring.served import latest_served_version

    version = latest_served_version(served)  # the model that answered most lately
    found = find_reference(settings.data_dir, version)
    if found is None:
        return None, None, "no training-time reference saved (train a model)"
    about = f"{found.kind} {found.model}" + (f" (registry v{found.version})" if found.version else "")
    if version is None:
        return None, about, "no served lists with scores logged lately"
    if not found.matches(version):
        return None, about, f"the reference is of {found.model}, the lists served lately came from {version}"
    reference = read_scores(found)
    if not reference.size:
        return None, about, "the reference holds no scores"
    now = served_scores(served, version)
    if not now.size:
        return None, about, "no served lists with scores logged lately"
    return score_drift(reference, now, config.drift), about, ""


def build(settings: Any, con: Any = None, config: MonitoringConfig | None = None) -> dict[str, Any]:
    """The `online` part of the data payload; `con` (the event store, for the catalog size) may be None. Missing logs
    or reference give empty series and a note, not an error."""
    from streamrec.features.offline import has_table
    from streamrec.monitoring.drift import drift_alerts
    from streamrec.monitoring.online import concentration_over_time, online_alerts, play_rate_by_variant
    from streamrec.monitoring.served import read_served, served_folder

    config = config or MonitoringConfig()
    served = read_served(served_folder(settings.data_dir), days=config.recent_days)
    log = _recent_log(settings.data_dir / "experiments" / "exposures", config.recent_days)
    rates = play_rate_by_variant(log, timedelta(hours=config.online.attribution_window_h))
    catalog = con.execute("SELECT count(*) FROM titles").fetchone()[0] if con is not None and has_table(
        con, "titles") else None
    days = concentration_over_time(served, catalog or None, config.online.top_fraction)
    drift, reference, note = _scores(settings, served, config)
    alerts = online_alerts(rates, days, config.online)
    scores = None
    if drift is not None:
        found = drift_alerts([drift], config.drift)
        alerts += found
        status = "skipped" if drift.psi is None else (
            "alert" if any(a.severity == "alert" for a in found) else "warn" if found else "ok")
        scores = {"name": drift.name, "psi": drift.psi, "ks_statistic": drift.ks_statistic, "ks_p": drift.ks_p,
                  "status": status, "n_reference": drift.n_reference, "n_current": drift.n_current,
                  "reference": reference}
    t = config.online
    return {"recent_days": config.recent_days, "served_lists": served.num_rows, "catalog": catalog,
            "play_rate": _play_rate(rates), "concentration": _concentration(days, t.top_fraction),
            "scores": scores, "scores_note": note,
            "thresholds": {"max_top_share": t.max_top_share, "min_coverage": t.min_coverage,
                           "play_rate_drop": t.play_rate_drop, "psi_warn": config.drift.psi_warn,
                           "psi_alert": config.drift.psi_alert,
                           "ks_min_effect": config.drift.ks_min_effect},
            "alerts": [vars(a) for a in alerts]}
