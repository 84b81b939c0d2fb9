"""Distribution drift between a reference sample (training time) and a current one (serving): PSI and two-sample KS.

PSI bins both samples by the reference's quantiles (ties merge bins) and gives an empty bin `epsilon` of the mass so
the index stays finite. KS alerts only when the p-value is small AND the largest CDF gap is at least a minimum effect,
so a huge sample does not alert on a negligible shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

from streamrec.errors import DataError
from streamrec.monitoring.alerts import Alert
from streamrec.monitoring.config import DriftThresholds

SNAPSHOT_FILES = {"user": "users.parquet", "title": "titles.parquet"}


@dataclass(frozen=True)
class FeatureDrift:
    """Drift numbers of one feature (psi/ks None when skipped for too few values)."""

    name: str
    n_reference: int
    n_current: int
    psi: float | None
    ks_statistic: float | None
    ks_p: float | None


def _finite(values: np.ndarray | list[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, epsilon: float = 1e-4) -> float:
    """Population stability index of `current` against `reference`, on quantile bins of the reference.

    Args:
        reference: the baseline values (non-finite values are dropped).
        current: the values to compare.
        bins: number of quantile bins (fewer when the reference has ties).
        epsilon: share given to empty bins.

    Returns:
        sum over bins of (cur - ref) * ln(cur / ref); 0 for identical binned shares.

    Raises:
        ValueError: either sample is empty.
    """
    ref, cur = _finite(reference), _finite(current)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("psi needs at least one finite value on each side")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    ref_share = np.maximum(ref_share, epsilon)
    cur_share = np.maximum(cur_share, epsilon)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test (scipy.stats.ks_2samp): (statistic, p-value)."""
    ref, cur = _finite(reference), _finite(current)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("ks_test needs at least one finite value on each side")
    result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def feature_drift(name: str, reference: np.ndarray, current: np.ndarray, thresholds: DriftThresholds) -> FeatureDrift:
    """PSI and KS of one feature (None when either side has fewer than `min_samples` finite values)."""
    ref, cur = _finite(reference), _finite(current)
    if min(ref.size, cur.size) < thresholds.min_samples:
        return FeatureDrift(name, int(ref.size), int(cur.size), None, None, None)
    statistic, p = ks_test(ref, cur)
    return FeatureDrift(name, int(ref.size), int(cur.size), psi(ref, cur, thresholds.bins, thresholds.epsilon),
                        statistic, p)


def drift_alerts(drifts: list[FeatureDrift], thresholds: DriftThresholds) -> list[Alert]:
    """The alerts (and warnings) the drift numbers raise."""
    alerts: list[Alert] = []
    for d in drifts:
        if d.psi is not None:
            if d.psi >= thresholds.psi_alert:
                alerts.append(Alert("psi", d.name, d.psi, thresholds.psi_alert,
                                    f"PSI {d.psi:.3f} ≥ {thresholds.psi_alert:g}: the distribution has shifted"))
            elif d.psi >= thresholds.psi_warn:
                alerts.append(Alert("psi", d.name, d.psi, thresholds.psi_warn,
                                    f"PSI {d.psi:.3f} ≥ {thresholds.psi_warn:g}: a moderate shift", "warn"))
        if (d.ks_p is not None and d.ks_statistic is not None and d.ks_p < thresholds.ks_p
                and d.ks_statistic >= thresholds.ks_min_effect):
            alerts.append(Alert("ks", d.name, d.ks_p, thresholds.ks_p,
                                f"KS p={d.ks_p:.2g} < {thresholds.ks_p:g} with statistic {d.ks_statistic:.3f} "
                                f"≥ {thresholds.ks_min_effect:g}"))
    return alerts


def _numeric_columns(table: pa.Table) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            out[name] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return out


def _read(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(str(path), f"cannot read the feature snapshot: {exc}") from exc


def snapshot_pairs(reference: Path, current: Path) -> list[tuple[str, Path, Path]]:
    """(prefix, reference file, current file) to compare: two Parquet files, or two snapshot folders written by
    `streamrec features build` (users.parquet and titles.parquet each).

    Raises:
        DataError: a path is missing, or a folder is compared with a file, or folders share no snapshot file.
    """
    for path in (reference, current):
        if not path.exists():
            raise DataError(str(path), "no feature snapshot here (write one with `streamrec features build --out`)")
    if reference.is_dir() != current.is_dir():
        raise DataError(str(current), f"compare two snapshot folders or two Parquet files, not a "
                                      f"{'folder' if reference.is_dir() else 'file'} with a "
                                      f"{'folder' if current.is_dir() else 'file'}")
    if not reference.is_dir():
        return [("", reference, current)]
    pairs = [(f"{entity}.", reference / file, current / file) for entity, file in SNAPSHOT_FILES.items()
             if (reference / file).exists() and (current / file).exists()]
    if not pairs:
        raise DataError(str(reference), f"no snapshot file ({', '.join(SNAPSHOT_FILES.values())}) in both folders")
    return pairs


def snapshot_drift(reference: Path, current: Path, thresholds: DriftThresholds) -> list[FeatureDrift]:
    """Drift of every numeric feature present in both snapshots (folders or Parquet files)."""
    drifts: list[FeatureDrift] = []
    for prefix, ref_path, cur_path in snapshot_pairs(Path(reference), Path(current)):
        ref_cols, cur_cols = _numeric_columns(_read(ref_path)), _numeric_columns(_read(cur_path))
        for name in ref_cols:
            if name in cur_cols:
                drifts.append(feature_drift(prefix + name, ref_cols[name], cur_cols[name], thresholds))
    return drifts


SCORED_ROUTES = ("list", "home:top_picks")  # the served lists whose scores are the model's own (not similarity)


def served_scores(served: pa.Table, version: str | None = None, k: int = 10) -> np.ndarray:
    """The scores of the first `k` titles of the lists the model answered itself (no fallback), from the served-lists
    log (see streamrec.monitoring.served); with `version`, only the lists that model version served."""
    import pyarrow.compute as pc

    if served.num_rows == 0:
        return np.empty(0)
    mask = pc.and_(pc.is_in(served["route"], pa.array(SCORED_ROUTES)), pc.is_null(served["fallback"]))
    if version is not None:
        mask = pc.and_(mask, pc.equal(served["model_version"], version))
    lists = served.filter(mask)["scores"]
    if len(lists) == 0:
        return np.empty(0)
    top = pc.list_slice(lists, 0, k)
    return _finite(pc.list_flatten(top).to_numpy(zero_copy_only=False))


def score_drift(reference: np.ndarray, served: np.ndarray, thresholds: DriftThresholds,
                name: str = "score") -> FeatureDrift:
    """PSI and KS of the served scores against the training-time reference scores (see
    streamrec.monitoring.reference); its alerts come from `drift_alerts` like a feature's."""
    return feature_drift(name, reference, served, thresholds)
