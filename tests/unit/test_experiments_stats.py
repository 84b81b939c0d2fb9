"""Experiment statistics: tests against scipy/statsmodels, SRM, CUPED, mSPRT validity, Holm, decisions, analyze."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from streamrec.errors import DataError
from streamrec.experiments import sequential as seq
from streamrec.experiments.analysis import analyze
from streamrec.experiments.report import write_report
from streamrec.experiments.stats import (
    AnalysisPlan,
    Guardrail,
    PrimaryOutcome,
    Verdict,
    cuped,
    decide,
    holm,
    proportion_test,
    ratio_estimate,
    ratio_test,
    srm_test,
    welch_test,
)
from tests.unit.test_experiments_outcomes import T0, make_log


def test_welch_matches_scipy():
    rng = np.random.default_rng(1)
    t, c = rng.lognormal(1, 1, 300), rng.lognormal(1.1, 0.8, 500)
    res = welch_test(t, c, alpha=0.1)
    ref = sps.ttest_ind(t, c, equal_var=False)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    ci = ref.confidence_interval(0.9)
    assert (res.low, res.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert res.diff == pytest.approx(t.mean() - c.mean())
    assert res.var == pytest.approx(t.var(ddof=1) / 300 + c.var(ddof=1) / 500)


def test_proportion_test_matches_statsmodels():
    res = proportion_test(530, 1000, 480, 1000)
    assert res.p_value == pytest.approx(proportions_ztest([530, 480], [1000, 1000])[1], rel=1e-12)
    assert res.diff == pytest.approx(0.05) and res.low < 0.05 < res.high
    assert proportion_test(0, 10, 0, 10).p_value == 1.0


def test_ratio_delta_method_matches_simulation():
    """The delta-method variance of Σplays/Σimpressions matches its spread over many resampled populations."""
    rng = np.random.default_rng(2)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        imps = rng.poisson(rng.lognormal(2, 1, n)) + 1
        return rng.binomial(imps, np.clip(rng.beta(2, 20, n), 0, 1)), imps

    ratios, variances = [], []
    for _ in range(400):
        num, den = draw(800)
        r, v = ratio_estimate(num, den)
        ratios.append(r)
        variances.append(v)
    assert np.mean(variances) == pytest.approx(np.var(ratios, ddof=1), rel=0.15)
    # and the binomial variance that ignores per-user clustering would be too small
    num, den = draw(800)
    r = num.sum() / den.sum()
    assert r * (1 - r) / den.sum() < 0.8 * ratio_estimate(num, den)[1]
    res = ratio_test(num, den, num, den)
    assert res.diff == 0 and res.p_value == pytest.approx(1.0)


def test_srm_fires_on_55_45_and_not_on_50_50():
    weights = {"a": 1.0, "b": 1.0}
    assert srm_test({"a": 5500, "b": 4500}, weights).blocked
    fair = srm_test({"a": 5000, "b": 5000}, weights)
    assert not fair.blocked and fair.p_value == pytest.approx(1.0)
    assert not srm_test({"a": 5046, "b": 4954}, weights).blocked  # within noise of 10k users
    assert not srm_test({"a": 9000, "b": 1000}, {"a": 0.9, "b": 0.1}).blocked  # against the configured allocation
    res = srm_test({"a": 5500, "b": 4500}, weights)
    assert res.p_value == pytest.approx(sps.chisquare([5500, 4500]).pvalue)


def test_cuped_reduces_variance_and_stays_unbiased():
    rng = np.random.default_rng(3)
    n, effect, diffs_raw, diffs_cuped = 4000, 2.0, [], []
    for _ in range(200):
        x = rng.gamma(2.0, 10.0, n)  # pre-period minutes
        treated = rng.random(n) < 0.5
        y = 0.8 * x + rng.normal(0, 8, n) + effect * treated
        c = cuped(y, x)
        assert c.theta == pytest.approx(0.8, abs=0.1)
        assert c.variance_reduction > 0.5
        diffs_raw.append(y[treated].mean() - y[~treated].mean())
        diffs_cuped.append(c.adjusted[treated].mean() - c.adjusted[~treated].mean())
    assert np.mean(diffs_cuped) == pytest.approx(effect, abs=0.05)  # unbiased
    assert np.std(diffs_cuped) < 0.6 * np.std(diffs_raw)
    flat = cuped(np.arange(5.0), np.ones(5))  # a constant covariate: nothing to adjust
    assert flat.theta == 0 and flat.variance_reduction == 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), looks=st.integers(1, 30), effect=st.floats(-1, 1))
def test_sequential_pvalues_are_monotone_and_bounded(seed: int, looks: int, effect: float):
    rng = np.random.default_rng(seed)
    n = np.cumsum(rng.integers(10, 200, looks))
    variances = 2.0 / n
    diffs = effect + rng.normal(0, np.sqrt(variances))
    for p in (seq.always_valid_pvalues(diffs, variances, 0.05),
              seq.calibrated_pvalues(diffs, variances, 0.05, planned_looks=14, simulations=2000)):
        assert np.all((p > 0) & (p <= 1))
        assert np.all(np.diff(p) <= 0)


def _null_paths(runs: int, looks: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = np.cumsum(rng.integers(200, 400, looks))  # users exposed by each look (same for every run)
    steps = np.diff(np.concatenate([[0], users]))
    sums = np.cumsum(rng.normal(0, np.sqrt(steps * 2.0), (runs, looks)), axis=1)  # Σ(y_t − y_c) per pair
    return sums / users, np.broadcast_to(2.0 / users, (runs, looks))


def test_always_valid_pvalues_keep_the_error_rate_under_many_looks():
    diffs, variances = _null_paths(4000, 100, seed=4)
    tau2 = seq.default_tau2(variances[0, 0], 100)
    rejected = np.mean([seq.always_valid_pvalues(d, v, tau2)[-1] <= 0.05 for d, v in zip(diffs, variances)])
    naive = np.mean([(np.abs(d / np.sqrt(v)) > 1.96).any() for d, v in zip(diffs, variances)])
    assert rejected <= 0.05 and naive > 0.25  # peeking at a naive test 100 times inflates it; the mSPRT doesn't


def test_calibrated_test_spends_alpha_over_the_planned_looks_when_peeking_daily():
    """Reading the calibrated p-value at every look (with only the looks so far) and stopping at the first p ≤ α
    rejects about α of null experiments: more than the uncalibrated mSPRT, never much more than α."""
    looks, alpha = 14, 0.05
    diffs, variances = _null_paths(600, looks, seed=5)
    tau2 = seq.default_tau2(variances[0, 0], looks)
    rejected = 0
    for d, v in zip(diffs, variances):
        rejected += any(seq.calibrated_pvalues(d[:k], v[:k], tau2, looks, simulations=4000, seed=k)[-1] <= alpha
                        for k in range(1, looks + 1))
    rate = rejected / len(diffs)
    se = math.sqrt(alpha * (1 - alpha) / len(diffs))
    assert alpha - 3 * se < rate < alpha + 3 * se
    always_valid = np.mean([seq.always_valid_pvalues(d, v, tau2)[-1] <= alpha for d, v in zip(diffs, variances)])
    assert always_valid < rate


def test_calibration_uses_the_measured_correlation_between_looks():
    """Looks whose estimates are far less correlated than a Brownian motion's (as with CUPED-adjusted cumulative
    metrics) need the measured correlation: with it the daily-peeking error rate is about α."""
    looks, alpha, runs = 10, 0.05, 500
    rng = np.random.default_rng(6)
    users = np.cumsum(rng.integers(200, 400, looks))
    variances = 2.0 / users
    rho = 0.3  # AR(1) correlation between consecutive looks
    z = np.empty((runs, looks))
    z[:, 0] = rng.standard_normal(runs)
    for k in range(1, looks):
        z[:, k] = rho * z[:, k - 1] + math.sqrt(1 - rho**2) * rng.standard_normal(runs)
    corr = rho ** np.abs(np.subtract.outer(np.arange(looks), np.arange(looks)))
    tau2 = seq.default_tau2(variances[0], looks)
    diffs = z * np.sqrt(variances)

    def peeking_rate(c: np.ndarray | None) -> float:
        return float(np.mean([any(seq.calibrated_pvalues(d[:k], variances[:k], tau2, looks,
                                                        None if c is None else c[:k, :k], 3000, k)[-1] <= alpha
                                  for k in range(1, looks + 1)) for d in diffs]))

    measured, brownian = peeking_rate(corr), peeking_rate(None)
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert abs(measured - alpha) < 3 * se and brownian > measured


def test_look_correlation_of_nested_means_is_brownian():
    """Means over growing sets of users (fixed values): corr = sqrt(n_j / n_l), from the influence values."""
    rng = np.random.default_rng(7)
    y = rng.normal(size=40_000)
    sizes = [5_000, 10_000, 20_000, 40_000]
    psi = [np.where(np.arange(40_000) < n, (y - y[:n].mean()) / n, 0.0) for n in sizes]
    corr = seq.look_correlation(psi)
    assert corr[0, 3] == pytest.approx(math.sqrt(1 / 8), abs=0.03)
    assert corr[1, 2] == pytest.approx(math.sqrt(1 / 2), abs=0.03)
    assert np.allclose(np.diag(corr), 1.0)


def test_confidence_sequence_matches_the_test():
    """Δ̂ lies outside the confidence sequence around 0 exactly when Λ ≥ the threshold."""
    v, tau2, c = 0.04, 0.1, 20.0
    half = float(seq.confidence_halfwidth(v, tau2, c)[0])
    assert seq.msprt_lambda(half * 1.001, v, tau2)[0] > c > seq.msprt_lambda(half * 0.999, v, tau2)[0]
    assert seq.confidence_halfwidth(0.0, tau2, c)[0] == math.inf


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_matches_statsmodels(p_values: list[float]):
    assert holm(p_values) == pytest.approx(list(multipletests(p_values, method="holm")[1]))


PLAN = AnalysisPlan("exp", {"a": 1.0, "b": 1.0}, min_users_per_variant=100,
                    guardrails=(Guardrail("latency_p99_ms", max=100.0), Guardrail("coverage", min=0.2)))
GOOD = {"b": {"latency_p99_ms": 80.0, "coverage": 0.3}}
FAIR = srm_test({"a": 500, "b": 500}, PLAN.variants)
USERS = {"a": 500, "b": 500}


def test_decision_ships_a_significant_improvement_with_guardrails_holding():
    d = decide(PLAN, FAIR, USERS, [PrimaryOutcome("b", 1.5, 0.001)], GOOD, looks=5, planned_looks=14)
    assert d.verdict is Verdict.SHIP and d.winner == "b"
    assert any("guardrail latency_p99_ms holds" in r for r in d.reasons)


@pytest.mark.parametrize("case, verdict, reason", [
    ("srm", Verdict.DONT_SHIP, "sample-ratio mismatch"),
    ("latency", Verdict.DONT_SHIP, "guardrail latency_p99_ms violated by b: 130 > max 100"),
    ("coverage", Verdict.DONT_SHIP, "guardrail coverage violated by b: 0.1 < min 0.2"),
    ("worse", Verdict.DONT_SHIP, "significantly worse"),
    ("small", Verdict.KEEP_RUNNING, "minimum sample not reached: b has 50 of 100 users"),
    ("unmeasured", Verdict.KEEP_RUNNING, "guardrail coverage not measured for b"),
    ("flat", Verdict.KEEP_RUNNING, "no significant watch_minutes effect yet (5 of 14 looks)"),
    ("flat_end", Verdict.DONT_SHIP, "no significant watch_minutes effect by the planned end"),
])
def test_decision_reasons(case: str, verdict: Verdict, reason: str):
    srm, users, primary, guard, looks = FAIR, USERS, [PrimaryOutcome("b", 1.5, 0.001)], GOOD, 5
    if case == "srm":
        srm = srm_test({"a": 5500, "b": 4500}, PLAN.variants)
    elif case == "latency":
        guard = {"b": {"latency_p99_ms": 130.0, "coverage": 0.3}}
    elif case == "coverage":
        guard = {"b": {"latency_p99_ms": 50.0, "coverage": 0.1}}
    elif case == "worse":
        primary = [PrimaryOutcome("b", -1.5, 0.001)]
    elif case == "small":
        users = {"a": 500, "b": 50}
    elif case == "unmeasured":
        guard = {"b": {"latency_p99_ms": 50.0}}
    elif case in ("flat", "flat_end"):
        primary = [PrimaryOutcome("b", 0.3, 0.4)]
        looks = 14 if case == "flat_end" else 5
    d = decide(PLAN, srm, users, primary, guard, looks=looks, planned_looks=14)
    assert d.verdict is verdict and d.winner is None
    assert any(reason in r for r in d.reasons), d.reasons


def test_decision_direction_decrease():
    plan = AnalysisPlan("exp", {"a": 1.0, "b": 1.0}, direction="decrease", min_users_per_variant=10)
    assert decide(plan, FAIR, USERS, [PrimaryOutcome("b", -2.0, 0.01)], None, 3, 14).verdict is Verdict.SHIP
    assert decide(plan, FAIR, USERS, [PrimaryOutcome("b", 2.0, 0.01)], None, 3, 14).verdict is Verdict.DONT_SHIP


def test_plan_validation():
    with pytest.raises(ValueError, match="at least two variants"):
        AnalysisPlan("x", {"a": 1.0})
    with pytest.raises(ValueError, match="unknown metric 'clicks'"):
        AnalysisPlan("x", {"a": 1.0, "b": 1.0}, primary_metric="clicks")
    with pytest.raises(ValueError, match="weights must be > 0"):
        AnalysisPlan("x", {"a": 1.0, "b": 0.0})
    assert AnalysisPlan("x", {"c": 1.0, "t": 2.0}).treatments == ["t"]


def test_analyze_detects_a_lift_with_the_right_sign_and_reports(tmp_path):
    log = make_log(users=3000, days=7, lift=0.25, seed=7)
    plan = AnalysisPlan("exp", {"a": 1.0, "b": 1.0}, min_users_per_variant=500, planned_days=7)
    result = analyze(log, plan, T0 + timedelta(days=7))
    watch = result.comparison("watch_minutes")
    assert watch.diff > 0 and watch.low > 0 and watch.p_sequential <= 0.05
    assert watch.cuped_reduction is not None and watch.cuped_reduction > 0.05
    assert (watch.high - watch.low) < (watch.raw_high - watch.raw_low)  # CUPED narrows the interval
    assert watch.seq_low <= watch.low and watch.seq_high >= watch.high  # the sequence is wider than one look's CI
    assert result.decision.verdict is Verdict.SHIP and result.decision.winner == "b"
    assert len(result.looks) == 7 and sum(result.users.values()) == 3000 and not result.srm.blocked
    series = [p for p in result.over_time if p.metric == "watch_minutes"]
    assert [p.at for p in series] == result.looks
    assert all(np.diff([p.p_sequential for p in series]) <= 0)
    html = write_report(result, tmp_path / "report.html").read_text()
    for text in ("Decision: ship (b)", "SRM chi-square", "p sequential", "CUPED", "data:image/png;base64,"):
        assert text in html


def test_analyze_as_of_an_earlier_day_keeps_running_and_ignores_later_rows():
    log = make_log(users=1500, days=6, lift=0.0, seed=8)
    plan = AnalysisPlan("exp", {"a": 1.0, "b": 1.0}, min_users_per_variant=5000)
    early = analyze(log, plan, T0 + timedelta(days=2, hours=12))
    assert [t.isoformat() for t in early.looks] == ["2024-03-02T00:00:00", "2024-03-03T00:00:00",
                                                    "2024-03-03T12:00:00"]
    assert early.decision.verdict is Verdict.KEEP_RUNNING
    assert any("minimum sample not reached" in r for r in early.decision.reasons)
    assert sum(early.users.values()) < sum(analyze(log, plan, T0 + timedelta(days=6)).users.values())
    with pytest.raises(DataError, match="no exposure to experiment 'exp'"):
        analyze(log, plan, T0)


def test_analyze_blocks_on_sample_ratio_mismatch():
    log = make_log(users=4000, days=4, weights=(0.58, 0.42), seed=9)
    result = analyze(log, AnalysisPlan("exp", {"a": 1.0, "b": 1.0}, min_users_per_variant=10), T0 + timedelta(days=4))
    assert result.srm.blocked and result.decision.verdict is Verdict.DONT_SHIP
    assert "sample-ratio mismatch" in result.decision.reasons[0]


def test_the_looks_are_the_days_with_data_whatever_the_configured_start_and_the_analysis_time():
    log = make_log(users=800, days=5, lift=0.2, seed=10)
    day = pc.strftime(log["ts"], "%Y-%m-%d")
    log = log.filter(pc.and_(pc.not_equal(day, "2024-03-03"), pc.less(day, "2024-03-06")))  # a day without traffic
    newest = max(log["ts"].to_pylist())
    plan = AnalysisPlan("exp", {"a": 1.0, "b": 1.0}, min_users_per_variant=10, start=T0 - timedelta(days=700))
    data_days = sorted({t.date() for t in log["ts"].to_pylist() if t >= T0})  # from the first exposure's day on
    assert len(data_days) == 4  # 1, 2, 4 and 5 March
    as_of_end = analyze(log, plan)  # at: just after the newest row, not the wall clock
    assert as_of_end.at == newest + timedelta(microseconds=1)
    assert [t.isoformat() for t in as_of_end.looks] == ["2024-03-02T00:00:00", "2024-03-03T00:00:00",
                                                        "2024-03-05T00:00:00", as_of_end.at.isoformat()]
    years_later = analyze(log, plan, T0 + timedelta(days=1000))  # an explicit late `at` adds no empty looks either
    assert years_later.looks[:-1] == as_of_end.looks[:-1] and years_later.planned_looks == as_of_end.planned_looks
    for late, end in zip(years_later.comparisons, as_of_end.comparisons):
        # the same data (DuckDB's parallel sums may differ in the last bits)
        assert (late.diff, late.p_value, late.p_sequential, late.seq_low) == pytest.approx(
            (end.diff, end.p_value, end.p_sequential, end.seq_low), rel=1e-9)
    assert years_later.decision == as_of_end.decision and years_later.users == as_of_end.users


def test_calibrated_pvalues_from_one_calibration_match_the_function():
    rng = np.random.default_rng(11)
    diffs, variances = rng.normal(0.02, 0.05, 9), np.linspace(0.004, 0.0005, 9)
    cal = seq.calibrate(variances, 0.01, 14, simulations=3000)
    assert np.array_equal(cal.running_pvalues(seq.msprt_lambda(diffs, variances, 0.01)),
                          seq.calibrated_pvalues(diffs, variances, 0.01, 14, simulations=3000))
