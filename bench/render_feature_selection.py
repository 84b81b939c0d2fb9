"""BENCHMARKS.md section for bench/feature_selection.py (issue 4): candidates from the feature templates, selected on
validation inside the ranker's training period, and what they gain on the test period.

Found by bench/render.py (it calls `section()` of every bench/render_*.py); reads bench/results/feature_selection.json.
"""

from __future__ import annotations

from render import load, table  # bench/ is on sys.path under render.py


def section() -> str:
    r = load("feature_selection")
    if r is None:
        return ""
    w, s, c = r["world"], r["selection"], r["config"]
    steps = [[f"`{x['name']}`", f"{x['gain']:,.0f}", f"{x['ndcg']:.4f}", f"{x['delta']:+.4f} ± {x['stderr']:.4f}",
              "kept" if x["kept"] else "–"] for x in s["steps"]]
    test, paired = r["test_ndcg@10"], r["test_paired"]
    rows = [[stage, f"{test['builtin'][stage]:.4f}", f"{test['builtin+selected'][stage]:.4f}",
             f"{test['builtin+selected'][stage] / test['builtin'][stage] - 1:+.2%}"] for stage in test["builtin"]]
    selected = ", ".join(f"`{n}`" for n in s["selected"])
    outcome = (f"Selection kept {len(s['selected'])} of {len(s['candidates'])} candidates: {selected}."
               if s["selected"] else
               f"Selection kept none: none of the {len(s['steps'])} candidates tried raised validation NDCG@10 by "
               f"more than {c['tolerance']} and {c['min_z']:g} standard error(s), so the pipeline keeps the built-in "
               "features.")
    p = s["periods"]
    lines = [
        "## Feature selection: generated candidates, kept on validation (issue 4)",
        "",
        f"`{r['command'].strip()}` — synthetic world \"{w['size']}\" (seed {w['seed']}: {w['events']:,} events, "
        f"{w['users']:,} users, {w['titles']:,} titles). {len(s['candidates'])} candidate features generated from "
        "the templates (event types × windows 1/7/28/90 days × count/mean/sum/recency, users and titles, none "
        "duplicating a built-in one). Selection never reads the test period: a LightGBM ranker "
        f"({c['n_estimators']} trees) learns from the candidates as of {p['fit_cut'][:16]}, labelled by what was "
        f"watched until {p['validation_cut'][:16]}, and is scored on those as of {p['validation_cut'][:16]}, "
        f"labelled until {p['validation_end'][:16]}; the test period starts at {p['test_cut'][:16]}. Candidates are tried best gain first (at most {c['max_tries']}); one is kept when "
        f"validation NDCG@10 rises by more than {c['tolerance']} and {c['min_z']:g} standard error(s) of the "
        f"per-user differences. Selection took {s['seconds']:.0f} s; whole run {r['seconds']:.0f} s "
        f"({r['machine']['cores']} cores, shared).",
        "",
        table(["candidate (tried in order)", "LightGBM gain", "validation NDCG@10", "Δ vs best so far", "kept"], steps),
        "",
        f"{outcome} Validation NDCG@10: built-in {s['base_ndcg@10']:.4f}, built-in + selected "
        f"{s['selected_ndcg@10']:.4f} ({s['gain']:+.2%}).",
        "",
        "Test period (the full pipeline, trained as usual on the ranker's training period):",
        "",
        table(["stage", "built-in features", "built-in + selected", "change"], rows),
        "",
        (f"On the test period, paired over {paired['users']:,} users, ranked pipeline NDCG@10 changes by "
         f"{paired['mean']:+.4f} ± {paired['stderr']:.4f} (better for {paired['better']:,} users, worse for "
         f"{paired['worse']:,})." if s["selected"] else
         "On the test period both columns are the same ranker (nothing selected; evaluated once)."),
        "",
    ]
    return "\n".join(lines)
