"""The data page's data, read from the event store: stored events per day and type, the latest ingestion batches with
their quality numbers and alerts (streamrec.monitoring.quality), and feature drift (streamrec.monitoring.drift): the
current feature snapshot against the served model's training-time one, or, without those, the features as of the
newest event against a week before (point-in-time snapshots computed on the fly); and the online series of
`streamrec monitor` (streamrec.monitoring.dashboard.online: play rate per variant, concentration and coverage, score
drift against the training-time reference)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from streamrec.monitoring.dashboard.jsonable import jsonable

MAX_BATCHES = 50
DRIFT_DAYS = 7.0  # the reference snapshot: this long before the newest event


def _batch(c: Any, checked: Any) -> dict[str, Any]:
    s = c.summary
    # the worst null rate among the columns with a threshold (optional columns such as rating are mostly null)
    rates = {k: v for k, v in (s.null_rate if s is not None else {}).items() if k in checked}
    worst = max(rates.items(), key=lambda kv: kv[1]) if rates else None
    return {"batch_id": c.batch_id, "source": c.source, "finished_at": c.finished_at, "read": c.read,
            "stored": c.stored, "duplicates": c.duplicates, "quarantined": c.quarantined,
            "rejection_rate": c.rejection_rate, "reasons": c.reasons,
            "late_share": c.late_share if s is not None else None,
            "new_title_share": s.new_title_share if s is not None else None,
            "max_null": {"column": worst[0], "rate": worst[1]} if worst else None}


def _numeric(table: pa.Table) -> dict[str, np.ndarray]:
    out = {}
    for name in table.column_names:
        t = table.column(name).type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            out[name] = table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return out


def _drift_payload(features: list, thresholds: Any, **about: Any) -> dict[str, Any]:
    from streamrec.monitoring.drift import drift_alerts

    alerts = drift_alerts(features, thresholds)
    status: dict[str, str] = {}
    for a in alerts:
        status[a.name] = "alert" if a.severity == "alert" or status.get(a.name) == "alert" else "warn"
    return {**about, "thresholds": {"psi_warn": thresholds.psi_warn, "psi_alert": thresholds.psi_alert,
                                    "ks_p": thresholds.ks_p, "ks_min_effect": thresholds.ks_min_effect},
            "features": [{"name": f.name, "n_reference": f.n_reference, "n_current": f.n_current, "psi": f.psi,
                          "ks_statistic": f.ks_statistic, "ks_p": f.ks_p,
                          "status": "skipped" if f.psi is None else status.get(f.name, "ok")} for f in features],
            "alerts": [vars(a) for a in alerts if a.kind in ("psi", "ks")]}


def reference_drift(data_dir: Path, served_version: str | None) -> dict[str, Any] | None:
    """PSI and KS of every numeric feature between the training-time snapshot saved with the served model (see
    streamrec.monitoring.reference) and the current one (DATA_DIR/features); None when either is missing."""
    from streamrec.monitoring.config import DriftThresholds
    from streamrec.monitoring.drift import snapshot_drift
    from streamrec.monitoring.reference import find_reference

    found = find_reference(data_dir, served_version)
    current = data_dir / "features"
    if found is None or not found.features or not (current / "users.parquet").exists():
        return None
    thresholds = DriftThresholds()
    return _drift_payload(snapshot_drift(found.path, current, thresholds), thresholds, mode="training",
                          reference=f"the training snapshot of {found.model}"
                                    + (f" (v{found.version})" if found.version else ""),
                          current=f"{current.name}/ (streamrec features build)", reference_at=found.created,
                          current_at=None, days=None)


def feature_drift(con: Any, days: float = DRIFT_DAYS) -> dict[str, Any]:
    """PSI and KS of every numeric user and title feature: as of the newest event against `days` before it."""
    from streamrec.features import events_relation
    from streamrec.features.offline import KEY
    from streamrec.features.snapshot import default_time, entity_features
    from streamrec.monitoring.config import DriftThresholds
    from streamrec.monitoring.drift import feature_drift as one_feature

    thresholds = DriftThresholds()
    events = events_relation(con)
    current = default_time(con, events)
    reference = current - timedelta(days=days)
    features = []
    for entity in ("user", "title"):
        key = KEY[entity]
        tables = []
        for at in (reference, current):
            keys = [r[0] for r in con.execute(f"SELECT DISTINCT {key} FROM {events} WHERE ts < ? ORDER BY 1",
                                              [at]).fetchall()]
            tables.append(_numeric(entity_features(con, entity, keys, at, events=events)) if keys else {})
        for name, ref in tables[0].items():
            if name in tables[1]:
                features.append(one_feature(name, ref, tables[1][name], thresholds))
    return _drift_payload(features, thresholds, mode="week", reference=f"{days:g} days before",
                          current="the newest stored event", reference_at=reference, current_at=current, days=days)


def _online(out: dict[str, Any], settings: Any, con: Any) -> None:
    from streamrec.monitoring.dashboard import online

    try:
        out["online"] = online.build(settings, con)
    except Exception as exc:  # the other panels still show
        out["online_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"


def build(settings: Any, served_version: str | None = None) -> dict[str, Any]:
    """The data payload; a store that cannot be read (locked by a writer, another engine) is named, not raised.
    Drift compares against the training-time reference of `served_version` when one was saved, else against the
    features of a week before the newest event."""
    from streamrec.monitoring.config import QualityThresholds
    from streamrec.monitoring.quality import check_batches, quality_alerts
    from streamrec.storage.events import open_event_store
    from streamrec.storage.events.duckdb import DuckDBEventStore

    out: dict[str, Any] = {"store": str(settings.event_store_path), "error": None, "volume": {"days": [],
                           "by_type": {}}, "batches": [], "alerts": [], "drift": None, "drift_error": None,
                           "online": None, "online_error": None}
    try:
        store = open_event_store(settings, read_only=True)
    except Exception as exc:
        out["error"] = f"cannot open the event store: {type(exc).__name__}: {str(exc)[:300]}"
        _online(out, settings, None)
        return jsonable(out)
    with store:
        if not isinstance(store, DuckDBEventStore):
            out["error"] = f"the data page reads the duckdb event store, not '{settings.event_store.type}'"
            _online(out, settings, None)
            return jsonable(out)
        con = store.con
        rows = con.execute("SELECT strftime(CAST(ts AS DATE), '%Y-%m-%d') AS day, type, count(*) FROM events "
                           "GROUP BY ALL ORDER BY 1, 2").fetchall()
        days = sorted({r[0] for r in rows})
        index = {d: i for i, d in enumerate(days)}
        by_type: dict[str, list[int]] = {}
        for day, kind, n in rows:
            by_type.setdefault(kind, [0] * len(days))[index[day]] = int(n)
        out["volume"] = {"days": days, "by_type": dict(sorted(by_type.items()))}
        thresholds = QualityThresholds(batches=MAX_BATCHES)
        try:
            checks = check_batches(con, thresholds)
            out["batches"] = [_batch(c, thresholds.max_null_rate) for c in checks]
            out["alerts"] = [vars(a) for a in quality_alerts(checks, thresholds)]
            out["quality_thresholds"] = {"max_rejection_rate": thresholds.max_rejection_rate,
                                         "max_late_share": thresholds.max_late_share,
                                         "max_new_title_share": thresholds.max_new_title_share}
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        if days:
            try:
                out["drift"] = reference_drift(settings.data_dir, served_version) or feature_drift(con)
            except Exception as exc:
                out["drift_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        _online(out, settings, con)
    return jsonable(out)
