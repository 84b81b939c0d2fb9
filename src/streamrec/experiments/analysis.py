"""`analyze`: an experiment's log → per-variant metrics, tests (naive and sequential), SRM, CUPED, Holm, decision,
and the daily series the report draws. `streamrec experiment analyze NAME` calls it, then `report.write_report`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa

from streamrec.errors import DataError
from streamrec.experiments import sequential as seq
from streamrec.experiments.outcomes import OutcomeQuery, naive_utc
from streamrec.experiments.stats import (
    METRICS,
    AnalysisPlan,
    Decision,
    Estimate,
    PrimaryOutcome,
    SRMResult,
    TestResult,
    cuped,
    decide,
    holm,
    mean_ci,
    proportion_ci,
    proportion_test,
    ratio_ci,
    ratio_test,
    srm_test,
    welch_test,
)

DAY = timedelta(days=1)
# per (treatment, metric): the test used, CUPED variance reduction or None, the unadjusted test, and per-user influence
# values of the estimate (sequential.look_correlation), one per user of the look
LookTests = tuple[TestResult, float | None, TestResult, np.ndarray]


@dataclass(frozen=True)
class Comparison:
    """One treatment against the control on one metric at the latest look.

    `diff`, `low`, `high`, `p_value` are the fixed-horizon test (on CUPED-adjusted values when `cuped_reduction` is
    set; `raw_low`/`raw_high` are the unadjusted interval); `p_sequential` is the calibrated mSPRT p-value (the
    decision's), `p_always_valid` Johari's p-value valid for unlimited looks, `seq_low`/`seq_high` the calibrated
    confidence sequence. `*_holm` are Holm-adjusted across every (treatment, metric) of the analysis.
    """

    variant: str
    metric: str
    method: str
    diff: float
    low: float
    high: float
    p_value: float
    p_holm: float
    p_sequential: float
    p_sequential_holm: float
    p_always_valid: float
    seq_low: float
    seq_high: float
    raw_low: float
    raw_high: float
    cuped_reduction: float | None = None
    relative: float = math.nan  # diff / control estimate


@dataclass(frozen=True)
class LookPoint:
    """The difference of one metric for one treatment as of one daily look."""

    at: datetime
    variant: str
    metric: str
    users: int
    diff: float
    low: float
    high: float
    seq_low: float
    seq_high: float
    p_value: float
    p_sequential: float


@dataclass
class AnalysisResult:
    plan: AnalysisPlan
    at: datetime
    start: datetime
    looks: list[datetime]
    planned_looks: int
    users: dict[str, int]
    excluded: dict[str, int]  # reason → users left out (several variants, unknown variant)
    variants: dict[str, dict[str, Estimate]]  # variant → metric → estimate with interval
    comparisons: list[Comparison]
    srm: SRMResult
    cuped: dict[str, tuple[float, float]]  # metric → (θ, variance reduction) at the latest look
    over_time: list[LookPoint]
    decision: Decision
    guardrail_values: dict[str, dict[str, float]] = field(default_factory=dict)

    def comparison(self, metric: str, variant: str | None = None) -> Comparison:
        variant = variant or self.plan.treatments[0]
        return next(c for c in self.comparisons if c.metric == metric and c.variant == variant)


def analyze(log: pa.Table, plan: AnalysisPlan, at: datetime | None = None,
            guardrail_values: Mapping[str, Mapping[str, float]] | None = None) -> AnalysisResult:
    """Analyse one experiment as of `at`, looking once per day of data since its first exposure (see `daily_looks`).

    Args:
        log: the exposure/outcome log (streamrec.experiments.exposure.SCHEMA); other experiments' rows are ignored.
        plan: the experiment's analysis plan.
        at: the analysis time; nothing at or after it is read (naive datetimes are UTC). None: just after the
            experiment's newest row (the data's clock: a simulated or finished experiment is read as of its end,
            not as of today).
        guardrail_values: variant → guardrail metric → observed value (from serving's metrics), for the decision.

    Returns:
        The AnalysisResult (metrics, tests, SRM, CUPED, daily series, decision with reasons).

    Raises:
        DataError: nobody was exposed to the experiment before `at`.
    """
    query = OutcomeQuery(log)
    try:
        first = query.first_exposure(plan.name)
        if first is None:
            raise DataError("experiment log", f"no exposure to experiment '{plan.name}' in the log")
        at = naive_utc(at) if at is not None else query.newest_row(plan.name) + timedelta(microseconds=1)
        if first >= at:
            raise DataError("experiment log", f"no exposure to experiment '{plan.name}' before {at.isoformat()}")
        start = naive_utc(plan.start) if plan.start else datetime(first.year, first.month, first.day)
        planned = (max(1, math.ceil((naive_utc(plan.end) - start) / DAY)) if plan.end else plan.planned_days)
        looks = daily_looks(query.days_with_rows(plan.name, first, at), at)
        tables = query.at_looks(plan.name, looks, plan.attribution_window, plan.pre_period)
    finally:
        query.close()
    per_look = [user_columns(t, plan)[0] for t in tables]
    final, excluded = user_columns(tables[-1], plan)
    keys = [(v, m) for m in plan.all_metrics for v in plan.treatments]
    tests = [compare_look(t, plan) for t in per_look]  # per look: (variant, metric) → (TestResult, cuped reduction)

    over_time: list[LookPoint] = []
    seq_final: dict[tuple[str, str], tuple[float, float, float, float]] = {}
    for key in keys:
        series = [tests[i][key][0] for i in range(len(looks))]
        diffs, variances = np.array([s.diff for s in series]), np.array([s.var for s in series])
        tau2 = _tau2(plan, key[1], variances, planned)
        corr = look_correlations(per_look, tests, key)
        cal = seq.calibrate(variances, tau2, planned, corr)
        p_cal = cal.running_pvalues(seq.msprt_lambda(diffs, variances, tau2))
        p_av = seq.always_valid_pvalues(diffs, variances, tau2)
        half = seq.confidence_halfwidth(variances, tau2, cal.threshold(plan.alpha))
        for i, (t, s) in enumerate(zip(looks, series)):
            n = int(np.isin(per_look[i]["variant"], [key[0], plan.control_variant]).sum())
            over_time.append(LookPoint(t, key[0], key[1], n, s.diff, s.low, s.high, s.diff - float(half[i]),
                                       s.diff + float(half[i]), s.p_value, float(p_cal[i])))
        seq_final[key] = (float(p_cal[-1]), float(p_av[-1]), float(diffs[-1] - half[-1]), float(diffs[-1] + half[-1]))

    variants = {v: _estimates(final, v, plan) for v in plan.variants}
    last = tests[-1]
    p_holm = holm([last[k][0].p_value for k in keys], plan.alpha)
    p_seq_holm = holm([seq_final[k][0] for k in keys], plan.alpha)
    comparisons = []
    for j, key in enumerate(keys):
        res, reduction, raw, _ = last[key]
        control = variants[plan.control_variant][key[1]].value
        comparisons.append(Comparison(
            key[0], key[1], res.method, res.diff, res.low, res.high, res.p_value, p_holm[j], seq_final[key][0],
            p_seq_holm[j], seq_final[key][1], seq_final[key][2], seq_final[key][3], raw.low, raw.high, reduction,
            res.diff / control if control else math.nan))

    users = {v: int((final["variant"] == v).sum()) for v in plan.variants}
    srm = srm_test(users, plan.variants, plan.srm_alpha)
    primary_p = holm([seq_final[(v, plan.primary_metric)][0] for v in plan.treatments], plan.alpha)
    primary = [PrimaryOutcome(v, last[(v, plan.primary_metric)][0].diff, p) for v, p in zip(plan.treatments, primary_p)]
    decision = decide(plan, srm, users, primary, guardrail_values, len(looks), planned)
    cuped_info = {}
    for m in plan.all_metrics:
        d = METRICS[m]
        if plan.cuped and d.covariate:
            c = cuped(final[d.column], final[d.covariate])
            cuped_info[m] = (c.theta, c.variance_reduction)
    return AnalysisResult(plan, at, start, looks, planned, users, excluded, variants, comparisons, srm, cuped_info,
                          over_time, decision, {v: dict(g) for v, g in (guardrail_values or {}).items()})


def daily_looks(days: list[date], at: datetime) -> list[datetime]:
    """The looks of an analysis at `at`: one at the end of each day that has rows (midnight after it), the last of
    them at `at` itself. A day without rows adds nothing a look could see, so it is no look: the count is the days
    the experiment ran, however far back its configured start or however late `at` is.

    Args:
        days: the UTC days with rows of the experiment before `at`, from its first exposure's day (sorted).
        at: the analysis time (naive UTC), after the first exposure.
    """
    ends = [datetime(d.year, d.month, d.day) + DAY for d in days]
    return sorted({min(end, at) for end in ends[:-1]} | {at})


def user_columns(table: pa.Table, plan: AnalysisPlan) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The per-user columns as numpy arrays, without users seen in several variants or in unknown ones."""
    cols = {c: table[c].to_numpy(zero_copy_only=False) for c in table.column_names if c != "first_exposure"}
    mixed = cols["variants"] > 1
    unknown = ~np.isin(cols["variant"], list(plan.variants))
    keep = ~(mixed | unknown)
    out = {c: v[keep] for c, v in cols.items()}
    for c in ("watch_minutes", "pre_watch_minutes", "plays", "pre_plays", "impressions"):
        out[c] = out[c].astype(np.float64)
    return out, {"exposed to several variants": int(mixed.sum()), "unknown variant": int((unknown & ~mixed).sum())}


def compare_look(cols: dict[str, np.ndarray], plan: AnalysisPlan) -> dict[tuple[str, str], LookTests]:
    """Every (treatment, metric) test at one look (see LookTests)."""
    out = {}
    is_c = cols["variant"] == plan.control_variant
    for m in plan.all_metrics:
        d = METRICS[m]
        adjusted, reduction = cols[d.column], None
        if d.kind == "mean" and plan.cuped and d.covariate:
            arms = is_c | np.isin(cols["variant"], plan.treatments)
            c = cuped(cols[d.column][arms], cols[d.covariate][arms])
            adjusted = cols[d.column].copy()
            adjusted[arms] = c.adjusted
            reduction = c.variance_reduction
        for v in plan.treatments:
            is_t = cols["variant"] == v
            if d.kind == "mean":
                raw = welch_test(cols[d.column][is_t], cols[d.column][is_c], plan.alpha)
                res = welch_test(adjusted[is_t], adjusted[is_c], plan.alpha) if reduction is not None else raw
                psi = _influence(adjusted, np.ones_like(adjusted), is_t, is_c)
            elif d.kind == "proportion":
                hit = cols[d.column] >= 1
                raw = res = proportion_test(int(hit[is_t].sum()), int(is_t.sum()), int(hit[is_c].sum()),
                                            int(is_c.sum()), plan.alpha)
                psi = _influence(hit.astype(np.float64), np.ones(len(hit)), is_t, is_c)
            else:
                assert d.denominator is not None
                raw = res = ratio_test(cols[d.column][is_t], cols[d.denominator][is_t], cols[d.column][is_c],
                                       cols[d.denominator][is_c], plan.alpha)
                psi = _influence(cols[d.column], cols[d.denominator], is_t, is_c)
            out[(v, m)] = (res, reduction, raw, psi)
    return out


def _influence(num: np.ndarray, den: np.ndarray, is_t: np.ndarray, is_c: np.ndarray) -> np.ndarray:
    """Per-user influence of R_t − R_c with R = Σnum / Σden per arm (a mean when den = 1): (num − R·den) / Σden,
    negated for the control; 0 for users in neither arm."""
    psi = np.zeros(len(num))
    for arm, sign in ((is_t, 1.0), (is_c, -1.0)):
        total = den[arm].sum()
        if total > 0:
            r = num[arm].sum() / total
            psi[arm] = sign * (num[arm] - r * den[arm]) / total
    return psi


def look_correlations(per_look: list[dict[str, np.ndarray]], tests: list[dict[tuple[str, str], LookTests]],
                      key: tuple[str, str]) -> np.ndarray:
    """Correlation of one (treatment, metric) estimate across looks, users aligned on the last look's."""
    users = per_look[-1]["user_id"]
    aligned = []
    for cols, look in zip(per_look, tests):
        psi = np.zeros(len(users))
        ids = cols["user_id"]
        pos = np.clip(np.searchsorted(users, ids), 0, len(users) - 1)
        found = users[pos] == ids
        psi[pos[found]] = look[key][3][found]
        aligned.append(psi)
    return seq.look_correlation(aligned)


def _estimates(cols: dict[str, np.ndarray], variant: str, plan: AnalysisPlan) -> dict[str, Estimate]:
    rows = cols["variant"] == variant
    out = {}
    for m in plan.all_metrics:
        d = METRICS[m]
        if d.kind == "mean":
            out[m] = mean_ci(cols[d.column][rows], plan.alpha)
        elif d.kind == "proportion":
            out[m] = proportion_ci(int((cols[d.column][rows] >= 1).sum()), int(rows.sum()), plan.alpha)
        else:
            assert d.denominator is not None
            out[m] = ratio_ci(cols[d.column][rows], cols[d.denominator][rows], plan.alpha)
    return out


def _tau2(plan: AnalysisPlan, metric: str, variances: np.ndarray, planned: int) -> float:
    if metric in plan.mixing_sd:
        return float(plan.mixing_sd[metric]) ** 2
    usable = variances[np.isfinite(variances) & (variances > 0)]
    return seq.default_tau2(float(usable[0]) if len(usable) else math.nan, planned)
