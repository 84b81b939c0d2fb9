"""Statistics of an experiment: per-variant estimates with intervals, tests, SRM, CUPED, Holm, and the decision.

Library where one covers the method: Welch's t-test (scipy.stats.ttest_ind, equal_var=False), the two-proportion
z-test and its interval (statsmodels.stats.proportion), the SRM chi-square (scipy.stats.chisquare) and Holm
(statsmodels.stats.multitest.multipletests). By hand, because it is a few lines that no dependency here has: the
delta-method variance of a ratio metric (CTR), CUPED's pooled θ, and the mSPRT (streamrec.experiments.sequential).
tea-tasting covers the delta method and CUPED too, but it would add a data-frame layer for two formulas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

import numpy as np
from scipy import stats as sps

MetricKind = Literal["mean", "proportion", "ratio"]


@dataclass(frozen=True)
class MetricDef:
    """How a metric is computed from the per-user table (streamrec.experiments.outcomes)."""

    name: str
    kind: MetricKind
    column: str  # mean: the per-user value; proportion: users with column ≥ 1; ratio: the numerator
    denominator: str | None = None  # ratio only
    covariate: str | None = None  # mean only: the pre-period column for CUPED
    doc: str = ""


METRICS: dict[str, MetricDef] = {m.name: m for m in (
    MetricDef("watch_minutes", "mean", "watch_minutes", covariate="pre_watch_minutes",
              doc="minutes watched per exposed user after exposure"),
    MetricDef("plays_per_user", "mean", "plays", covariate="pre_plays", doc="attributed plays per exposed user"),
    MetricDef("play_rate", "proportion", "plays", doc="share of exposed users with at least one attributed play"),
    MetricDef("ctr", "ratio", "plays", denominator="impressions",
              doc="attributed plays / impressions (a ratio of sums; delta-method variance)"),
)}


@dataclass(frozen=True)
class Guardrail:
    """A metric a treatment must keep within bounds to ship (measured by serving/monitoring, not the event log)."""

    metric: str  # e.g. "latency_p99_ms", "error_rate", "coverage"
    max: float | None = None
    min: float | None = None

    def violation(self, value: float) -> str | None:
        if self.max is not None and value > self.max:
            return f"{value:g} > max {self.max:g}"
        if self.min is not None and value < self.min:
            return f"{value:g} < min {self.min:g}"
        return None


@dataclass(frozen=True)
class AnalysisPlan:
    """What the analysis needs from an experiment's definition (the lead maps ExperimentSpec onto this).

    Args:
        name: the experiment's name (the log's `experiment` column).
        variants: variant name → allocation weight (any positive scale); the first is the control unless `control`.
        primary_metric: the metric the decision rests on (a key of METRICS).
        metrics: every metric reported (the primary is added when missing); Holm runs across all of them.
        guardrails: bounds on serving metrics per treatment.
        direction: whether the primary metric should go up or down.
        alpha: significance level of the tests and 1 − the intervals' confidence.
        srm_alpha: p-value under which a sample-ratio mismatch blocks conclusions.
        min_users_per_variant: no ship/don't-ship on significance before every variant has this many users.
        start, end: the planned period; `start` defaults to the first exposure's day, `end` to start + planned_days.
        planned_days: daily looks planned when `end` is not given.
        cuped: adjust mean metrics with their pre-period covariate.
        attribution_window, pre_period: see streamrec.experiments.outcomes.
        mixing_sd: per metric, the mSPRT prior's sd τ in metric units (default: sequential.default_tau2).
    """

    name: str
    variants: Mapping[str, float]
    primary_metric: str = "watch_minutes"
    metrics: tuple[str, ...] = ("watch_minutes", "play_rate", "ctr")
    guardrails: tuple[Guardrail, ...] = ()
    control: str | None = None
    direction: Literal["increase", "decrease"] = "increase"
    alpha: float = 0.05
    srm_alpha: float = 0.001
    min_users_per_variant: int = 1000
    start: datetime | None = None
    end: datetime | None = None
    planned_days: int = 14
    cuped: bool = True
    attribution_window: timedelta = timedelta(hours=24)
    pre_period: timedelta = timedelta(days=14)
    mixing_sd: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.variants) < 2:
            raise ValueError(f"experiment '{self.name}': needs at least two variants, got {list(self.variants)}")
        if any(not (w > 0) for w in self.variants.values()):
            raise ValueError(f"experiment '{self.name}': allocation weights must be > 0, got {dict(self.variants)}")
        if self.control is not None and self.control not in self.variants:
            raise ValueError(f"experiment '{self.name}': control '{self.control}' is not a variant")
        for m in (self.primary_metric, *self.metrics):
            if m not in METRICS:
                raise ValueError(f"experiment '{self.name}': unknown metric '{m}', "
                                 f"expected one of {', '.join(METRICS)}")

    @property
    def control_variant(self) -> str:
        return self.control or next(iter(self.variants))

    @property
    def treatments(self) -> list[str]:
        return [v for v in self.variants if v != self.control_variant]

    @property
    def all_metrics(self) -> tuple[str, ...]:
        return (self.primary_metric, *[m for m in self.metrics if m != self.primary_metric])


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its (1 − α) interval."""

    value: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class TestResult:
    """One comparison treatment − control: difference, its interval, p-value and the variance of the difference."""

    diff: float
    low: float
    high: float
    p_value: float
    var: float  # variance of `diff` (what the sequential test consumes)
    method: str


@dataclass(frozen=True)
class SRMResult:
    counts: dict[str, int]
    expected: dict[str, float]
    statistic: float
    p_value: float
    blocked: bool


@dataclass(frozen=True)
class CupedResult:
    theta: float
    variance_reduction: float  # 1 − var(Y_cuped) / var(Y), pooled over variants
    adjusted: np.ndarray


# --------------------------------------------------------------------------------------------------------------- means
def mean_ci(values: np.ndarray, alpha: float = 0.05) -> Estimate:
    """Mean with a Student-t interval (NaN bounds with fewer than two values)."""
    x = np.asarray(values, dtype=np.float64)
    m = float(x.mean()) if len(x) else math.nan
    if len(x) < 2:
        return Estimate(m, math.nan, math.nan)
    half = float(sps.t.ppf(1 - alpha / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Estimate(m, m - half, m + half)


def welch_test(treatment: np.ndarray, control: np.ndarray, alpha: float = 0.05) -> TestResult:
    """Welch's t-test of mean(treatment) − mean(control) (scipy.stats.ttest_ind, equal_var=False)."""
    t, c = np.asarray(treatment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    var = _var_mean(t) + _var_mean(c)
    diff = float(t.mean() - c.mean()) if len(t) and len(c) else math.nan
    if not (len(t) >= 2 and len(c) >= 2 and var > 0):
        return TestResult(diff, math.nan, math.nan, 1.0, var, "welch")
    res = sps.ttest_ind(t, c, equal_var=False)
    ci = res.confidence_interval(1 - alpha)
    return TestResult(diff, float(ci.low), float(ci.high), float(res.pvalue), var, "welch")


def _var_mean(x: np.ndarray) -> float:
    return float(x.var(ddof=1) / len(x)) if len(x) >= 2 else math.nan


# ---------------------------------------------------------------------------------------------------------- proportions
def proportion_ci(successes: int, n: int, alpha: float = 0.05) -> Estimate:
    """A proportion with its Wilson interval (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return Estimate(successes / n, float(low), float(high))


def proportion_test(s_t: int, n_t: int, s_c: int, n_c: int, alpha: float = 0.05) -> TestResult:
    """Two-proportion z-test (pooled, statsmodels.proportions_ztest) with a Wald interval of the difference."""
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    if min(n_t, n_c) == 0:
        return TestResult(math.nan, math.nan, math.nan, 1.0, math.nan, "z-test")
    p_t, p_c = s_t / n_t, s_c / n_c
    var = p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c
    if s_t + s_c in (0, n_t + n_c):  # both all-zero or all-one: no variance, nothing to test
        return TestResult(p_t - p_c, p_t - p_c, p_t - p_c, 1.0, var, "z-test")
    _, p = proportions_ztest([s_t, s_c], [n_t, n_c])
    low, high = confint_proportions_2indep(s_t, n_t, s_c, n_c, method="wald", compare="diff", alpha=alpha)
    return TestResult(p_t - p_c, float(low), float(high), float(p), var, "z-test")


# --------------------------------------------------------------------------------------------------------------- ratios
def ratio_estimate(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """R = Σnum / Σden over users, and its delta-method variance.

    CTR is a ratio of two per-user sums, not a mean of independent trials: impressions of one user are correlated,
    so the binomial variance would be too small. With user means μn, μd, variances σn², σd² and covariance σnd
    (n users), Var(R) ≈ (σn² − 2R σnd + R² σd²) / (n μd²) (first-order Taylor expansion, the delta method).
    """
    x, y = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    n = len(x)
    if n < 2 or y.sum() <= 0:
        return (math.nan, math.nan)
    r = float(x.sum() / y.sum())
    mu_d = float(y.mean())
    cov = np.cov(x, y, ddof=1)
    var = float((cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * mu_d * mu_d))
    return (r, max(var, 0.0))


def ratio_ci(num: np.ndarray, den: np.ndarray, alpha: float = 0.05) -> Estimate:
    r, var = ratio_estimate(num, den)
    half = float(sps.norm.ppf(1 - alpha / 2) * math.sqrt(var)) if math.isfinite(var) else math.nan
    return Estimate(r, r - half, r + half)


def ratio_test(num_t: np.ndarray, den_t: np.ndarray, num_c: np.ndarray, den_c: np.ndarray,
               alpha: float = 0.05) -> TestResult:
    """z-test of R_t − R_c with delta-method variances (see ratio_estimate)."""
    r_t, v_t = ratio_estimate(num_t, den_t)
    r_c, v_c = ratio_estimate(num_c, den_c)
    diff, var = r_t - r_c, v_t + v_c
    if not (math.isfinite(var) and var > 0):
        return TestResult(diff, math.nan, math.nan, 1.0, var, "delta z-test")
    se = math.sqrt(var)
    z = sps.norm.ppf(1 - alpha / 2)
    return TestResult(diff, float(diff - z * se), float(diff + z * se), float(2 * sps.norm.sf(abs(diff) / se)), var,
                      "delta z-test")


# ----------------------------------------------------------------------------------------------------------------- SRM
def srm_test(counts: Mapping[str, int], weights: Mapping[str, float], alpha: float = 0.001) -> SRMResult:
    """Sample-ratio mismatch: chi-square of the users per variant against the configured allocation.

    A p-value below `alpha` (0.001 by default: the check runs at every look) means assignment or logging is broken,
    so no conclusion about the metrics may be drawn.
    """
    names = list(weights)
    observed = np.array([counts.get(v, 0) for v in names], dtype=np.float64)
    total = observed.sum()
    w = np.array([weights[v] for v in names], dtype=np.float64)
    expected = total * w / w.sum()
    if total == 0:
        return SRMResult({v: 0 for v in names}, dict.fromkeys(names, 0.0), 0.0, 1.0, False)
    stat, p = sps.chisquare(observed, expected)
    return SRMResult({v: int(c) for v, c in zip(names, observed)}, {v: float(e) for v, e in zip(names, expected)},
                     float(stat), float(p), bool(p < alpha))


# --------------------------------------------------------------------------------------------------------------- CUPED
def cuped(y: np.ndarray, x: np.ndarray) -> CupedResult:
    """CUPED (Deng et al. 2013): Y' = Y − θ (X − mean X), θ = cov(Y, X) / var(X) pooled over all variants.

    θ comes from the pooled sample (not per variant) so the adjustment is the same function for every arm; X is from
    before exposure, so it is independent of the assignment and the difference of adjusted means stays unbiased.
    """
    y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if len(y) < 2 or x.var() <= 0:
        return CupedResult(0.0, 0.0, y.copy())
    theta = float(np.cov(y, x, ddof=1)[0, 1] / x.var(ddof=1))
    adjusted = y - theta * (x - x.mean())
    vy = y.var(ddof=1)
    reduction = float(1 - adjusted.var(ddof=1) / vy) if vy > 0 else 0.0
    return CupedResult(theta, reduction, adjusted)


# ----------------------------------------------------------------------------------------------------------------- Holm
def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm-adjusted p-values (statsmodels.stats.multitest.multipletests, method="holm")."""
    from statsmodels.stats.multitest import multipletests

    if len(p_values) == 0:
        return []
    p = np.nan_to_num(np.asarray(p_values, dtype=np.float64), nan=1.0)
    return [float(v) for v in multipletests(p, alpha=alpha, method="holm")[1]]


# ------------------------------------------------------------------------------------------------------------ decision
class Verdict(str, Enum):
    SHIP = "ship"
    DONT_SHIP = "don't ship"
    KEEP_RUNNING = "keep running"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: list[str]
    winner: str | None = None


@dataclass(frozen=True)
class PrimaryOutcome:
    """The primary metric of one treatment at the latest look, as the decision sees it."""

    variant: str
    diff: float
    p_sequential: float  # Holm-adjusted across treatments when there are several


def decide(plan: AnalysisPlan, srm: SRMResult, users: Mapping[str, int], primary: Sequence[PrimaryOutcome],
           guardrail_values: Mapping[str, Mapping[str, float]] | None, looks: int, planned_looks: int) -> Decision:
    """Ship, don't ship or keep running, with every reason that applies (the first listed decided).

    Order: a sample-ratio mismatch blocks every conclusion (don't ship: the data can't be trusted); a violated
    guardrail or a primary metric significantly moving the wrong way is don't ship; too few users or an unmeasured
    guardrail is keep running; a primary metric significantly moving the right way under the sequential test ships
    the best such treatment; no significant effect by the planned last look is don't ship; otherwise keep running.
    """
    stop: list[str] = []  # reasons for don't ship
    wait: list[str] = []  # reasons for keep running
    info: list[str] = []
    if srm.blocked:
        counts = ", ".join(f"{v} {c:,} (expected {srm.expected[v]:,.0f})" for v, c in srm.counts.items())
        stop.append(f"sample-ratio mismatch (chi-square p = {srm.p_value:.2g} < {plan.srm_alpha:g}): {counts}; "
                    "assignment or logging is broken, no conclusion may be drawn")
    for g in plan.guardrails:
        for v in plan.treatments:
            value = (guardrail_values or {}).get(v, {}).get(g.metric)
            if value is None or not math.isfinite(value):
                wait.append(f"guardrail {g.metric} not measured for {v}")
            elif (why := g.violation(value)) is not None:
                stop.append(f"guardrail {g.metric} violated by {v}: {why}")
            else:
                info.append(f"guardrail {g.metric} holds for {v} ({value:g})")
    sign = 1.0 if plan.direction == "increase" else -1.0
    wins = [o for o in primary if o.p_sequential <= plan.alpha and sign * o.diff > 0]
    for o in primary:
        verdict = f"{plan.primary_metric} {o.variant} − {plan.control_variant} = {o.diff:+.4g} " \
                  f"(sequential p = {o.p_sequential:.3g})"
        if o.p_sequential <= plan.alpha and sign * o.diff < 0:
            stop.append(f"{verdict}: significantly worse (wanted {plan.direction})")
        elif o in wins:
            info.append(f"{verdict}: significantly better")
        else:
            info.append(f"{verdict}: not significant at α = {plan.alpha:g}")
    short = {v: n for v, n in users.items() if n < plan.min_users_per_variant}
    if short:
        wait.append("minimum sample not reached: " + ", ".join(
            f"{v} has {n:,} of {plan.min_users_per_variant:,} users" for v, n in short.items()))
    if stop:
        return Decision(Verdict.DONT_SHIP, stop + wait + info)
    if wait:
        return Decision(Verdict.KEEP_RUNNING, wait + info)
    if wins:
        best = max(wins, key=lambda o: sign * o.diff)
        return Decision(Verdict.SHIP, [f"ship {best.variant}: {plan.primary_metric} significantly better under the "
                                       "sequential test, no sample-ratio mismatch, guardrails hold"] + info,
                        best.variant)
    if looks >= planned_looks:
        return Decision(Verdict.DONT_SHIP, [f"no significant {plan.primary_metric} effect by the planned end "
                                            f"({looks} of {planned_looks} looks)"] + info)
    return Decision(Verdict.KEEP_RUNNING, [f"no significant {plan.primary_metric} effect yet ({looks} of "
                                           f"{planned_looks} looks)"] + info)
