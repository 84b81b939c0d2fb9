"""A/A and A/B proof of the experiment analysis (issue 7): false-positive rate under daily peeking, sequential vs naive.

Users, their activity and their outcomes come from a synthetic world (heavy-tailed: lognormal activity, Zipf titles,
watch time from the taste model). The world's first half is the pre-period (CUPED's covariate), the second half the
experiment: each user is exposed at their first impression in it, and the per-user table is computed at every daily
look by the analysis' own code (streamrec.experiments.outcomes). An A/A experiment re-draws the 50/50 assignment
(users are the same, so the outcome tables are computed once); each look runs the analysis' tests
(analysis.compare_look) and the experimenter, peeking daily, stops at the first look whose p-value is ≤ α:

* sequential: the calibrated mSPRT p-value computed from the looks so far (what `analyze` would have said that day);
* always-valid: Johari et al.'s p-value (valid for unlimited looks; conservative with 14);
* naive: the fixed-horizon test at each look (Welch on CUPED-adjusted watch minutes), and at the last look only.

An A/B multiplies the treatment's watch minutes by 1 + lift. CUPED: the ratio of the interval widths with and without
it. Finally `analyze` runs end to end on the world's log once (timed) with a hash-free random assignment.

Run: .venv/bin/python bench/experiments.py [--experiments 200] [--users 20000]   → bench/results/experiments.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.progress import track

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))

from streamrec.data.dataset import Dataset  # noqa: E402
from streamrec.data.synthetic import WorldConfig, generate_world  # noqa: E402
from streamrec.experiments import sequential as seq  # noqa: E402
from streamrec.experiments.analysis import analyze, compare_look, look_correlations, user_columns  # noqa: E402
from streamrec.experiments.outcomes import LOG_COLUMNS, OutcomeQuery  # noqa: E402
from streamrec.experiments.stats import AnalysisPlan  # noqa: E402

NAME = "aa"
METRICS = ("watch_minutes", "play_rate", "ctr")


def build_log(users: int, days: int, seed: int) -> tuple[pa.Table, datetime, dict]:
    """The world's events as an experiment log: pre-period rows with a null experiment, exposures at each user's
    first impression of the experiment period (with its request id), outcome rows of the period under NAME."""
    config = WorldConfig.preset("small", seed=seed, users=users, days=days)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        generate_world(config, Path(tmp) / "world")
        gen_s = time.perf_counter() - began
        events = Dataset.open(Path(tmp) / "world").events()
    start = datetime.combine(config.start, datetime.min.time()) + timedelta(days=days // 2)
    events = events.filter(pc.is_in(events["type"], pa.array(["impression", "play", "progress", "complete"])))
    ts = events["ts"].cast(pa.timestamp("us"))
    in_exp = pc.greater_equal(ts, pa.scalar(start, pa.timestamp("us")))
    outcome = pa.table({
        "ts": ts, "user_id": events["user_id"],
        "experiment": pc.if_else(in_exp, pa.scalar(NAME), pa.scalar(None, pa.string())),
        "variant": pa.nulls(len(events), pa.string()), "type": events["type"], "item_id": events["item_id"],
        "request_id": events["request_id"], "watched_s": events["watched_s"],
    })
    imps = outcome.filter(pc.and_(in_exp, pc.equal(outcome["type"], "impression"))).sort_by("ts")
    first = imps.group_by("user_id", use_threads=False).aggregate([("ts", "first"), ("request_id", "first")])
    exposures = pa.table({
        "ts": first["ts_first"], "user_id": first["user_id"], "experiment": pa.array([NAME] * len(first)),
        "variant": pa.array(["a"] * len(first)), "type": pa.array(["exposure"] * len(first)),
        "item_id": pa.nulls(len(first), pa.string()), "request_id": first["request_id_first"],
        "watched_s": pa.nulls(len(first), pa.float64()),
    })
    log = pa.concat_tables([outcome.select(list(LOG_COLUMNS)), exposures.cast(outcome.select(list(LOG_COLUMNS))
                                                                              .schema)])
    meta = {"size": "small", "seed": seed, "users": users, "days": days, "events": len(events),
            "generate_s": round(gen_s, 1), "config": config.model_dump(mode="json")}
    return log, start, meta


def look_tables(log: pa.Table, plan: AnalysisPlan, start: datetime, looks: int) -> list[dict[str, np.ndarray]]:
    query = OutcomeQuery(log)
    try:
        return [user_columns(query.at(NAME, start + timedelta(days=k), plan.attribution_window, plan.pre_period),
                             plan)[0] for k in track(range(1, looks + 1), description="outcome tables per look")]
    finally:
        query.close()


def run_experiment(tables: list[dict[str, np.ndarray]], all_users: np.ndarray, plan: AnalysisPlan, looks: int,
                   rng: np.random.Generator, lift: float = 0.0) -> dict:
    """One experiment: assignment, tests at every look, the peeking experimenter's rejections per test."""
    treated = rng.random(len(all_users)) < 0.5
    series: dict[str, list] = {m: [] for m in METRICS}
    widths, per_look, all_tests = [], [], []
    for cols in tables:
        t = treated[np.searchsorted(all_users, cols["user_id"])]
        cols = dict(cols, variant=np.where(t, "b", "a"))
        if lift:
            cols["watch_minutes"] = np.where(t, cols["watch_minutes"] * (1 + lift), cols["watch_minutes"])
        tests = compare_look(cols, plan)
        per_look.append(cols)
        all_tests.append(tests)
        for m in METRICS:
            series[m].append(tests[("b", m)][0])
        res, _, raw, _ = tests[("b", "watch_minutes")]
        widths.append((res.high - res.low) / (raw.high - raw.low))
    out: dict = {"cuped_width_ratio": widths[-1]}
    for m in METRICS:
        diffs = np.array([s.diff for s in series[m]])
        variances = np.array([s.var for s in series[m]])
        tau2 = seq.default_tau2(float(variances[0]), looks)
        corr = look_correlations(per_look, all_tests, ("b", m))  # a look's block only involves looks up to it
        sequential = [seq.calibrated_pvalues(diffs[:k], variances[:k], tau2, looks, corr[:k, :k])[-1]
                      for k in range(1, looks + 1)]
        always = seq.always_valid_pvalues(diffs, variances, tau2)
        naive = [s.p_value for s in series[m]]
        stop = next((k for k, p in enumerate(sequential) if p <= plan.alpha), None)
        out[m] = {"sequential": stop is not None, "always_valid": bool(always[-1] <= plan.alpha),
                  "naive_peeking": bool(min(naive) <= plan.alpha), "naive_final": bool(naive[-1] <= plan.alpha),
                  "sign": float(np.sign(diffs[stop if stop is not None else -1])), "stop_look": stop}
    return out


def rate(hits: int, n: int) -> dict:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(hits, n, alpha=0.05, method="wilson")
    return {"rate": hits / n, "hits": hits, "n": n, "ci95": [round(float(low), 4), round(float(high), 4)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200, help="A/A experiments")
    parser.add_argument("--ab-experiments", type=int, default=50, help="A/B experiments per lift")
    parser.add_argument("--lifts", type=float, nargs="*", default=[0.05, 0.10])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=28, help="world days: the first half is the pre-period")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "experiments.json")
    args = parser.parse_args()
    began = time.perf_counter()
    looks = args.days - args.days // 2
    plan = AnalysisPlan(NAME, {"a": 1.0, "b": 1.0}, planned_days=looks, min_users_per_variant=1000)
    log, start, world = build_log(args.users, args.days, args.seed)
    tables = look_tables(log, plan, start, looks)
    all_users = np.unique(tables[-1]["user_id"])
    rng = np.random.default_rng(args.seed)

    aa = [run_experiment(tables, all_users, plan, looks, rng)
          for _ in track(range(args.experiments), description=f"{args.experiments} A/A experiments")]
    summary: dict = {"aa": {}, "ab": {}}
    for m in METRICS:
        summary["aa"][m] = {k: rate(sum(r[m][k] for r in aa), len(aa))
                            for k in ("sequential", "always_valid", "naive_peeking", "naive_final")}
    seq_fpr = summary["aa"]["watch_minutes"]["sequential"]["rate"]
    naive_fpr = summary["aa"]["watch_minutes"]["naive_peeking"]["rate"]
    summary["aa"]["naive_inflation"] = naive_fpr / plan.alpha
    summary["aa"]["sequential_in_target"] = 0.02 <= seq_fpr <= 0.08
    ratios = np.array([r["cuped_width_ratio"] for r in aa])
    summary["cuped"] = {"width_ratio_mean": float(ratios.mean()), "width_ratio_p10": float(np.quantile(ratios, 0.1)),
                        "width_ratio_p90": float(np.quantile(ratios, 0.9))}
    for lift in args.lifts:
        ab = [run_experiment(tables, all_users, plan, looks, rng, lift=lift)
              for _ in track(range(args.ab_experiments), description=f"A/B lift {lift:.0%}")]
        detected = [r for r in ab if r["watch_minutes"]["sequential"]]
        summary["ab"][f"{lift:g}"] = {
            "sequential": rate(len(detected), len(ab)),
            "naive_final": rate(sum(r["watch_minutes"]["naive_final"] for r in ab), len(ab)),
            "right_sign": sum(r["watch_minutes"]["sign"] > 0 for r in detected),
            "mean_stop_look": float(np.mean([r["watch_minutes"]["stop_look"] + 1 for r in detected]))
            if detected else None,
        }

    # End to end: analyze() on the whole log with a random 50/50 assignment written into the exposures.
    rng_e2e = np.random.default_rng(args.seed + 1)
    is_exp = pc.equal(log["type"], "exposure").to_numpy(zero_copy_only=False)
    variant = np.where(rng_e2e.random(len(log)) < 0.5, "b", "a").astype(object)
    variant[~is_exp] = None
    log = log.set_column(log.column_names.index("variant"), "variant", pa.array(variant, pa.string()))
    t0 = time.perf_counter()
    result = analyze(log, plan, start + timedelta(days=looks))
    e2e_s = time.perf_counter() - t0
    watch = result.comparison("watch_minutes")
    summary["end_to_end"] = {
        "seconds": round(e2e_s, 1), "looks": len(result.looks), "users": result.users,
        "srm_p": result.srm.p_value, "decision": result.decision.verdict.value, "reasons": result.decision.reasons,
        "watch_minutes": {"diff": watch.diff, "ci": [watch.low, watch.high], "p_naive": watch.p_value,
                          "p_sequential": watch.p_sequential, "cuped_reduction": watch.cuped_reduction},
        "cuped": {m: {"theta": t, "variance_reduction": r} for m, (t, r) in result.cuped.items()},
    }
    out = {
        "command": " ".join(["python bench/experiments.py", *sys.argv[1:]]).strip(),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "world": world, "looks": looks, "alpha": plan.alpha, "experiments": args.experiments,
        "ab_experiments": args.ab_experiments, "users_exposed": int(len(all_users)),
        "users_per_look": [int(len(t["user_id"])) for t in tables],
        "seconds": round(time.perf_counter() - began, 1), **summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=lambda x: x.item() if hasattr(x, "item") else str(x)) + "\n")
    aa_w = summary["aa"]["watch_minutes"]
    print(f"A/A false-positive rate, watch minutes, {args.experiments} experiments × {looks} daily looks: "
          f"sequential {aa_w['sequential']['rate']:.1%}, always-valid {aa_w['always_valid']['rate']:.1%}, "
          f"naive with peeking {aa_w['naive_peeking']['rate']:.1%}, naive at the end {aa_w['naive_final']['rate']:.1%}")
    print(f"CUPED interval width ×{summary['cuped']['width_ratio_mean']:.2f}; A/B: " + ", ".join(
        f"lift {k}: detected {v['sequential']['rate']:.0%}, right sign {v['right_sign']}"
        for k, v in summary["ab"].items()))
    print(f"wrote {args.out} in {out['seconds']} s")
    if not math.isfinite(seq_fpr):
        raise SystemExit("no A/A result")


if __name__ == "__main__":
    main()
