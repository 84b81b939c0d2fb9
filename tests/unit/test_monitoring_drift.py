"""Drift: PSI on reference quantile bins and KS with a minimum effect; alerts on shifted samples only."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.errors import DataError
from streamrec.monitoring import DriftThresholds, drift_alerts, feature_drift, ks_test, psi, snapshot_drift
from streamrec.monitoring.config import MonitoringConfig

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def samples(seed: int, shift: float = 0.0, scale: float = 1.0, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, n), rng.normal(shift, scale, n)


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_unshifted_distribution_stays_quiet(seed):
    ref, cur = samples(seed)
    drift = feature_drift("x", ref, cur, DriftThresholds())
    assert drift.psi is not None and drift.psi < 0.1
    assert drift_alerts([drift], DriftThresholds()) == []


@settings(max_examples=30, deadline=None)
@given(seeds, st.sampled_from([-1.0, 1.0]))
def test_shifted_distribution_alerts_on_psi_and_ks(seed, sign):
    ref, cur = samples(seed, shift=sign * 1.0)
    alerts = drift_alerts([feature_drift("x", ref, cur, DriftThresholds())], DriftThresholds())
    kinds = {(a.kind, a.severity) for a in alerts}
    assert kinds == {("psi", "alert"), ("ks", "alert")}
    psi_alert = next(a for a in alerts if a.kind == "psi")
    assert psi_alert.name == "x" and psi_alert.value >= 0.2 and psi_alert.threshold == 0.2


@settings(max_examples=20, deadline=None)
@given(seeds)
def test_wider_spread_with_the_same_mean_is_caught_by_psi(seed):
    ref, cur = samples(seed, scale=3.0)
    alerts = drift_alerts([feature_drift("x", ref, cur, DriftThresholds())], DriftThresholds())
    assert any(a.kind == "psi" and a.severity == "alert" for a in alerts)


def test_moderate_shift_only_warns():
    ref, cur = samples(7, shift=0.4, n=20000)
    drift = feature_drift("x", ref, cur, DriftThresholds(ks_min_effect=0.5))
    assert 0.1 <= drift.psi < 0.2
    alerts = drift_alerts([drift], DriftThresholds(ks_min_effect=0.5))
    assert [(a.kind, a.name, a.threshold, a.severity) for a in alerts] == [("psi", "x", 0.1, "warn")]


def test_psi_is_zero_for_identical_samples_and_finite_with_empty_bins():
    x = np.arange(1000, dtype=float)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    far = psi(x, x + 10_000)  # every current value lands in the top bin; the other bins are empty
    assert np.isfinite(far) and far > 5


def test_psi_handles_ties_in_the_reference():
    ref = np.array([0.0] * 900 + [1.0] * 100)
    assert psi(ref, ref.copy()) == pytest.approx(0.0, abs=1e-12)
    assert psi(ref, np.array([0.0] * 100 + [1.0] * 900)) > 1


def test_ks_small_effect_on_huge_samples_does_not_alert():
    ref, cur = samples(3, shift=0.05, n=200_000)
    stat, p = ks_test(ref, cur)
    assert p < 0.01 and stat < 0.1  # significant but negligible
    assert not [a for a in drift_alerts([feature_drift("x", ref, cur, DriftThresholds())], DriftThresholds())
                if a.kind == "ks"]


def test_too_few_values_are_skipped_not_alerted():
    drift = feature_drift("x", np.array([1.0, 2.0, np.nan]), np.array([50.0, 60.0]), DriftThresholds())
    assert drift.psi is None and drift.ks_p is None
    assert drift_alerts([drift], DriftThresholds()) == []


def test_empty_sample_is_an_error():
    with pytest.raises(ValueError):
        psi(np.array([]), np.array([1.0]))


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError):
        MonitoringConfig.model_validate({"drift": {"psi_warn": 0.3, "psi_alert": 0.2}})
    with pytest.raises(ValueError):
        MonitoringConfig.model_validate({"drift": {"psi": 0.3}})


def write_snapshot(folder, seed, shift):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    n = 500
    pq.write_table(pa.table({"user_id": [f"u{i}" for i in range(n)], "plays": rng.poisson(5 + shift, n),
                             "watch": rng.normal(shift, 1, n)}), folder / "users.parquet")
    pq.write_table(pa.table({"item_id": [f"t{i}" for i in range(n)], "popularity": rng.exponential(1, n),
                             "kids": rng.random(n) < 0.3}), folder / "titles.parquet")
    return folder


def test_snapshot_drift_compares_each_numeric_feature_of_both_entities(tmp_path):
    ref = write_snapshot(tmp_path / "ref", 1, 0.0)
    cur = write_snapshot(tmp_path / "cur", 2, 3.0)
    drifts = snapshot_drift(ref, cur, DriftThresholds())
    assert [d.name for d in drifts] == ["user.plays", "user.watch", "title.popularity", "title.kids"]
    alerted = {a.name for a in drift_alerts(drifts, DriftThresholds()) if a.severity == "alert"}
    assert alerted == {"user.plays", "user.watch"}  # the titles were drawn from the same distributions


def test_snapshot_drift_on_single_files_and_clear_errors(tmp_path):
    ref = write_snapshot(tmp_path / "ref", 1, 0.0)
    cur = write_snapshot(tmp_path / "cur", 2, 0.0)
    drifts = snapshot_drift(ref / "users.parquet", cur / "users.parquet", DriftThresholds())
    assert [d.name for d in drifts] == ["plays", "watch"]
    with pytest.raises(DataError, match="no feature snapshot"):
        snapshot_drift(tmp_path / "missing", cur, DriftThresholds())
    with pytest.raises(DataError, match="folder"):
        snapshot_drift(ref, cur / "users.parquet", DriftThresholds())
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read"):
        snapshot_drift(tmp_path / "bad.parquet", cur / "users.parquet", DriftThresholds())
