"""Sequential testing for a difference in means: the mixture SPRT (mSPRT) with a normal mixing prior, its always-valid
p-values and confidence sequences (Johari, Koomen, Pekelis & Walsh, "Always valid inference", Operations Research
2022; the 2017 KDD paper "Peeking at A/B tests"), and the same statistic calibrated to a planned number of looks.

Written by hand on purpose: neither scipy nor statsmodels has an mSPRT; tea-tasting (2.x) has no sequential test;
gbstats' sequential t-test (Waudby-Smith et al. asymptotic confidence sequences) works on relative lifts of its own
summary-statistic classes and gives no calibration to a finite number of looks; the R package MSPRT is not Python.
The formulas are short and checked by the tests (monotone p-values, type-I error under many looks).

The statistic, for an estimate Δ̂ of the difference with variance V (normal approximation) and a N(0, τ²) prior on
the true difference under the alternative, is the likelihood ratio of the mixture against H0: Δ = 0

    Λ = sqrt(V / (V + τ²)) · exp(τ² Δ̂² / (2 V (V + τ²))),

a nonnegative martingale under H0, so by Ville's inequality P(Λ ever ≥ 1/α) ≤ α: the always-valid p-value
p_n = min(p_{n-1}, 1/Λ_n) may be read at every look and acted on whenever it falls below α.

That bound is for infinitely many looks. A daily look over a two-week experiment spends far less than α (about 1% at
α = 5% with 14 looks, measured in bench/experiments.py), so the decision uses the calibrated p-value: the same Λ, with
p_k = P_H0(max over the planned looks of Λ ≥ the largest Λ seen by look k), the null distribution simulated from the
normal approximation: the estimates at the looks so far are jointly normal with the correlation measured on the data
(per-user influence values, `look_correlation`; a user's cumulative watch time at two looks is one user, so the looks
are not the independent increments of a Brownian motion: CUPED, for one, removes the persistent part), and each look
still to come keeps the mean correlation between consecutive looks so far (an AR(1) continuation), its variance
shrinking as information grows at the average rate so far (without a correlation: a Brownian motion in information
time). Rejecting when p_k ≤ α is then an α-level test however the experimenter stops within the plan (the
finite-horizon mSPRT of Pramanik, Johnson & Bhattacharya 2021, "A modified sequential probability ratio test");
past the plan it extends to the looks taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_SIMULATIONS = 20_000


def msprt_lambda(diff: np.ndarray | float, var: np.ndarray | float, tau2: float) -> np.ndarray:
    """The normal-mixture likelihood ratio Λ of H1 (Δ ~ N(0, τ²)) against H0 (Δ = 0), elementwise.

    Args:
        diff: estimated differences Δ̂ (treatment − control).
        var: their variances V (> 0; a look with V ≤ 0 or NaN gets Λ = 1, no evidence).
        tau2: the mixing prior's variance τ² (> 0), in squared metric units.

    Returns:
        Λ per look (float64 array).
    """
    d, v = np.atleast_1d(np.asarray(diff, dtype=np.float64)), np.atleast_1d(np.asarray(var, dtype=np.float64))
    ok = np.isfinite(d) & np.isfinite(v) & (v > 0)
    v_safe = np.where(ok, v, 1.0)
    log_lam = 0.5 * np.log(v_safe / (v_safe + tau2)) + tau2 * np.where(ok, d, 0.0) ** 2 / (2 * v_safe * (v_safe + tau2))
    return np.where(ok, np.exp(np.minimum(log_lam, 700.0)), 1.0)


def always_valid_pvalues(diffs: np.ndarray, variances: np.ndarray, tau2: float) -> np.ndarray:
    """Johari et al.'s always-valid p-values over a sequence of looks: running minimum of min(1, 1/Λ).

    Valid under any number of looks and any stopping rule; monotone non-increasing.
    """
    lam = msprt_lambda(diffs, variances, tau2)
    return np.minimum.accumulate(np.minimum(1.0, 1.0 / lam))


@dataclass(frozen=True)
class Calibration:
    """The simulated null distribution of max Λ over the planned looks."""

    max_lambda: np.ndarray  # sorted, one per simulation
    looks: int  # looks simulated (planned, or more when the experiment ran past its plan)

    def running_pvalues(self, lam: np.ndarray) -> np.ndarray:
        """p_k = P_H0(max Λ ≥ max_{j≤k} Λ_j) for the Λ of every look so far (monotone non-increasing), with the +1
        correction that keeps a Monte Carlo p-value valid."""
        running = np.maximum.accumulate(np.atleast_1d(np.asarray(lam, dtype=np.float64)))
        above = len(self.max_lambda) - np.searchsorted(self.max_lambda, running, side="left")
        out = np.where(running > 1.0, (above + 1) / (len(self.max_lambda) + 1), 1.0)
        return np.minimum.accumulate(np.minimum(out, 1.0))

    def threshold(self, alpha: float) -> float:
        """The critical value c with P_H0(max Λ ≥ c) ≈ α (the rejection boundary of the calibrated test)."""
        return float(np.quantile(self.max_lambda, 1.0 - alpha))


def calibrate(variances: np.ndarray, tau2: float, planned_looks: int, corr: np.ndarray | None = None,
              simulations: int = DEFAULT_SIMULATIONS, seed: int = 0) -> Calibration:
    """Simulate the null distribution of max Λ over max(planned_looks, looks so far) looks.

    Args:
        variances: V at the looks so far (first to latest); looks without a usable variance are skipped.
        tau2: the mixing variance used for Λ.
        planned_looks: looks the experiment plans (e.g. its days).
        corr: correlation of the estimates at the looks so far (`look_correlation`); None: Brownian motion.
        simulations: Monte Carlo draws (deterministic with `seed`).

    Returns:
        The Calibration (sorted simulated maxima).
    """
    v = np.asarray(variances, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0)
    v = v[ok]
    if len(v) == 0:
        return Calibration(np.ones(1), 0)
    k = len(v)
    total = max(planned_looks, k)
    info = np.maximum.accumulate(1.0 / v)
    if corr is None:  # Brownian motion in information time: corr(Δ̂_j, Δ̂_l) = sqrt(I_j / I_l)
        corr = np.sqrt(np.minimum.outer(info, info) / np.maximum.outer(info, info))
    else:
        corr = np.asarray(corr, dtype=np.float64)[np.ix_(ok, ok)]
    rng = np.random.default_rng(seed)
    chol = _cholesky(corr)
    z = rng.standard_normal((simulations, k)) @ chol.T
    if total > k:  # looks still to come: AR(1) on the mean consecutive correlation, information growing linearly
        rho = float(np.clip(np.mean(np.diag(corr, 1)), 0.0, 0.999)) if k > 1 else float(np.sqrt(k / (k + 1)))
        future = np.empty((simulations, total - k))
        prev = z[:, -1]
        for j in range(total - k):
            prev = rho * prev + math.sqrt(1 - rho * rho) * rng.standard_normal(simulations)
            future[:, j] = prev
        z = np.concatenate([z, future], axis=1)
        v = np.concatenate([v, v[-1] * k / np.arange(k + 1, total + 1)])
    var = np.broadcast_to(v, z.shape)
    lam = msprt_lambda(z * np.sqrt(var), var, tau2)  # Δ̂_j = z_j √V_j: the estimate the statistic sees at look j
    return Calibration(np.sort(lam.max(axis=1)), total)


def _cholesky(corr: np.ndarray) -> np.ndarray:
    """Cholesky factor of a correlation matrix, nudged to positive definite when estimation left it singular."""
    c = (corr + corr.T) / 2
    np.fill_diagonal(c, 1.0)
    for eps in (0.0, 1e-9, 1e-6, 1e-3, 1e-1):
        try:
            return np.linalg.cholesky((c + eps * np.eye(len(c))) / (1 + eps))
        except np.linalg.LinAlgError:
            continue
    return np.eye(len(c))


def look_correlation(influence: list[np.ndarray]) -> np.ndarray:
    """Correlation of the estimates at several looks from per-user influence values.

    Args:
        influence: per look, one value per user of the LAST look (0 for users not yet in the look), such that the
            look's estimate minus its expectation ≈ the sum of the values (for a difference of means:
            ±(y_u − mean of the user's arm) / users in the arm).

    Returns:
        looks × looks correlation matrix (the sandwich estimate Σ_jl = Σ_u ψ_uj ψ_ul, normalised).
    """
    psi = np.vstack(influence)
    cov = psi @ psi.T
    d = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    return np.clip(cov / np.outer(d, d), -1.0, 1.0)


def calibrated_pvalues(diffs: np.ndarray, variances: np.ndarray, tau2: float, planned_looks: int,
                       corr: np.ndarray | None = None, simulations: int = DEFAULT_SIMULATIONS,
                       seed: int = 0) -> np.ndarray:
    """p_k = P_H0(max over the planned looks of Λ ≥ max_{j≤k} Λ_j) for every look k (monotone non-increasing).

    The calibration uses every look given, so call it with the looks up to the one being read.
    """
    return calibrate(variances, tau2, planned_looks, corr, simulations, seed).running_pvalues(
        msprt_lambda(diffs, variances, tau2))


def confidence_halfwidth(var: np.ndarray | float, tau2: float, threshold: float) -> np.ndarray:
    """Half-width of the confidence sequence {Δ : Λ(Δ̂ − Δ) < threshold} (threshold 1/α: always valid).

    Solving Λ = c for Δ̂: (Δ̂ − Δ)² = V (V + τ²) / τ² · (2 log c + log((V + τ²) / V)).
    """
    v = np.atleast_1d(np.asarray(var, dtype=np.float64))
    c = max(threshold, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        width = np.sqrt(v * (v + tau2) / tau2 * (2 * math.log(c) + np.log((v + tau2) / v)))
    return np.where(np.isfinite(v) & (v > 0), width, np.inf)


def default_tau2(first_variance: float, planned_looks: int, ratio: float = 25.0) -> float:
    """The mixing variance when the plan sets none: τ² = ratio · V_first / planned_looks.

    With information growing about linearly, V at the planned end is about V_first / planned_looks, so τ is about
    √ratio = 5 final standard errors: the effect size the test is most eager to detect. τ is fixed by the first look
    (it never moves afterwards, so past looks keep their Λ), and only changes the test's power, not its validity.
    """
    if not (math.isfinite(first_variance) and first_variance > 0):
        return 1.0
    return ratio * first_variance / max(planned_looks, 1)
