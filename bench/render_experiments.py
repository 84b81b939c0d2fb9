"""BENCHMARKS.md section for bench/experiments.py (issue 7): A/A false-positive rates under daily peeking (sequential
vs naive), A/B detection of a true lift, and how much CUPED narrows the interval.

Found by bench/render.py (it calls `section()` of every bench/render_*.py); reads bench/results/experiments.json.
"""

from __future__ import annotations

from render import load, table, verdict  # bench/ is on sys.path under render.py

LABELS = {"sequential": "sequential (calibrated mSPRT, read daily)", "always_valid": "always-valid mSPRT (Johari)",
          "naive_peeking": "naive test, peeking daily", "naive_final": "naive test, last look only"}


def _rate(x: dict) -> str:
    return f"{x['rate']:.1%} ({x['hits']}/{x['n']}; 95% CI {x['ci95'][0]:.1%}–{x['ci95'][1]:.1%})"


def section() -> str:
    r = load("experiments")
    if r is None:
        return ""
    w, aa = r["world"], r["aa"]
    metrics = [m for m in ("watch_minutes", "play_rate", "ctr") if m in aa]
    rows = [[LABELS[k], *[_rate(aa[m][k]) for m in metrics]] for k in LABELS]
    seq = aa["watch_minutes"]["sequential"]["rate"]
    ab = [[f"+{float(k):.0%}", _rate(v["sequential"]), _rate(v["naive_final"]),
           f"{v['right_sign']}/{v['sequential']['hits']}",
           f"{v['mean_stop_look']:.1f}" if v["mean_stop_look"] is not None else "—"] for k, v in r["ab"].items()]
    e = r["end_to_end"]
    c = r["cuped"]
    return "\n".join([
        "## Experiment analysis: A/A false positives under daily peeking, A/B detection, CUPED (issue 7)",
        "",
        f"`{r['command']}` ({r['machine']['cores']} cores, {r['seconds']:.0f} s). Synthetic world \"{w['size']}\" "
        f"(seed {w['seed']}, {w['users']:,} users, {w['days']} days, {w['events']:,} engagement events): the first "
        f"{w['days'] - r['looks']} days are the pre-period (CUPED's covariate), the last {r['looks']} the experiment; "
        f"each user is exposed at their first impression in it ({r['users_exposed']:,} users by the last look). The "
        "per-user tables at each daily look come from `streamrec.experiments.outcomes`; each experiment draws a new "
        f"50/50 assignment and runs the analysis' tests at each of the {r['looks']} looks; the experimenter stops at "
        f"the first look whose p-value is ≤ α = {r['alpha']:g}. Primary metric: watch minutes per exposed user "
        "(Welch on CUPED-adjusted values); play rate: two-proportion z-test; CTR: delta-method z-test.",
        "",
        f"**A/A, {r['experiments']} experiments** — share of experiments declared significant (a false positive):",
        "",
        table(["test", *metrics], rows),
        "",
        f"Sequential false-positive rate on the primary metric: **{seq:.1%}** (target 2%–8%: "
        f"{verdict(aa['sequential_in_target'])}). A naive t-test read every day inflates it to "
        f"**{aa['watch_minutes']['naive_peeking']['rate']:.1%}, {aa['naive_inflation']:.1f}× α**. Johari et al.'s "
        "always-valid p-value holds α for unlimited looks and so spends little of it over 14; the decision uses the "
        "same mSPRT statistic calibrated to the planned looks (see `streamrec/experiments/sequential.py`).",
        "",
        f"**A/B, {r['ab_experiments']} experiments per lift** (treatment watch minutes × (1 + lift)):",
        "",
        table(["true lift", "detected (sequential)", "naive, last look only", "right sign", "mean stopping look"], ab),
        "",
        f"**CUPED** (pre-period watch minutes, θ pooled): the interval of the watch-minutes difference is "
        f"**×{c['width_ratio_mean']:.2f}** as wide as without it (mean over the A/A experiments at the last look; "
        f"10th–90th percentile ×{c['width_ratio_p10']:.2f}–×{c['width_ratio_p90']:.2f}).",
        "",
        f"End to end: `analyze()` on the whole log ({e['looks']} looks; users "
        + ", ".join(f"{v} {n:,}" for v, n in e["users"].items()) + f") took {e['seconds']} s; "
        f"SRM p = {e['srm_p']:.2f}; decision: {e['decision']} — {e['reasons'][0]}",
        "",
    ])
