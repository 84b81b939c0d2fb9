"""BENCHMARKS.md section for bench/ab_simulated.py (issue 7): the ranked pipeline against popularity in a closed loop
of simulated viewers, analysed as any experiment.

Found by bench/render.py (it calls `section()` of every bench/render_*.py); reads bench/results/ab_simulated.json.
"""

from __future__ import annotations

from render import load, table, verdict  # bench/ is on sys.path under render.py


def section() -> str:
    r = load("ab_simulated")
    if r is None:
        return ""
    rows = []
    for variant, metrics in r["per_variant"].items():
        rows.append([variant, r["users"].get(variant, 0),
                     *[f"{metrics[m]['estimate']:.4g} [{metrics[m]['low']:.4g}, {metrics[m]['high']:.4g}]"
                       for m in ("play_rate", "watch_minutes", "ctr") if m in metrics]])
    diffs = [[c["metric"], f"{c['diff']:+.4g}", f"[{c['low']:.4g}, {c['high']:.4g}]", f"{c['relative']:+.1%}",
              f"{c['p']:.3g}", f"{c['p_sequential']:.3g}"] for c in r["comparisons"]]
    d = r["decision"]
    return "\n".join([
        "## Closed-loop A/B: the ranked pipeline against popularity (issue 7)",
        "",
        f"`{r['command'].strip()}` ({r['cores']} cores, {r['seconds']:.0f} s). World \"{r['world']['size']}\" (seed "
        f"{r['world']['seed']}); one in-process service answers both variants (assignment by hashing, 50/50); "
        f"{r['viewers']:,} simulated viewers with their ground-truth taste made {r['requests']:,} requests over "
        f"{r['days']} days and answered the lists (impressions, plays, watch time) through `POST /v1/events`; the "
        "simulation's log was analysed by `streamrec.experiments.analysis.analyze` (control: the pipeline).",
        "",
        table(["variant", "users", "play rate [95% CI]", "watch minutes / user", "CTR"], rows),
        "",
        table(["metric", "popularity − pipeline", "95% CI", "relative", "p (naive)", "p (sequential)"], diffs),
        "",
        f"Sample ratio check p = {r['srm_p']:.3g}. Decision on popularity: **{d['verdict']}**"
        + (f" ({d['winner']})" if d["winner"] else "") + f" — {'; '.join(d['reasons'][:2])}. The lift of the "
        f"pipeline over popularity is found with the right sign: {verdict(r['right_sign'])}.",
        "",
    ])
