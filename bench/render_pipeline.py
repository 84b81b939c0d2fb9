"""BENCHMARKS.md section for bench/pipeline.py (issue 4): the ranked pipeline stage by stage, and ranking latency.

Found by bench/render.py (it calls `section()` of every bench/render_*.py); reads bench/results/pipeline.json.
"""

from __future__ import annotations

from render import load, table, verdict  # bench/ is on sys.path under render.py


def section() -> str:
    r = load("pipeline")
    if r is None:
        return ""
    w, lat = r["world"], r["latency"]
    rows = [[name + ("" if name.startswith("ranked") else " alone"), f"{value:.4f}",
             f"{r['genre_diversity@10'].get(name, float('nan')):.3f}",
             f"{r.get('catalog_coverage@10', {}).get(name, float('nan')):.3f}",
             f"{r.get('novelty@10', {}).get(name, float('nan')):.2f}",
             f"{r['candidate_recall'][name]:.3f}" if name in r["candidate_recall"] else "–"]
            for name, value in r["ndcg@10"].items()]
    best = r["best_single"]
    lines = [
        "## Ranked pipeline, stage by stage (issue 4)",
        "",
        f"`{r['command'].strip()}` — synthetic world \"{w['size']}\" (seed {w['seed']}: {w['events']:,} events, "
        f"{w['users']:,} users, {w['titles']:,} titles), temporal split; the ranker learns on the last part of the "
        f"training period only. {r['counts']['test_users']:,} test users, {r['counts']['candidates']:,} candidates; "
        f"candidate recall of all sources together {r['candidate_recall']['all']:.3f}. Whole run {r['seconds']:.0f} s.",
        "",
        table(["stage", "NDCG@10", "genre diversity@10", "catalog coverage@10", "novelty@10", "candidate recall"],
              rows),
        "",
        f"The ranked pipeline vs the best single source ({best['source']}, {best['ndcg@10']:.4f}): "
        f"**{r['gain_vs_best_single']:+.1%}** NDCG@10. Top ranker features by gain: "
        + ", ".join(list(r["importance"])[:5]) + ".",
        "",
        f"Serving one request at a time ({lat['users']} users, memory online store, {lat['candidates_mean']:.0f} "
        f"candidates per request on average after the filters, at most {lat['candidates_max']}, "
        f"{lat['features']} ranker features, {lat.get('ranker_trees', '?')} trees after early stopping):",
        "",
        table(["part of a request", "p50 ms", "p99 ms", "target p99"], [
            ["online store reads (history, user and candidates' feature vectors)", lat["store_read"]["p50_ms"],
             lat["store_read"]["p99_ms"], f"≤ {lat['store_read']['target_p99_ms']:g} ms: "
                                          f"{verdict(lat['store_read']['met'])}"],
            ["ranking: feature rows + LightGBM", lat["ranking"]["p50_ms"], lat["ranking"]["p99_ms"],
             f"≤ {lat['ranking']['target_p99_ms']:g} ms: {verdict(lat['ranking']['met'])}"],
            ["whole request (candidates, filters, ranking, MMR)", lat["request"]["p50_ms"], lat["request"]["p99_ms"],
             "–"]]),
        "",
    ]
    faiss = load("pipeline_faiss")
    if faiss is not None:
        fl = faiss["latency"]
        lines += [
            f"With ALS candidates from a faiss HNSW index instead of the exact search (`{faiss['command'].strip()}`, "
            f"same world): ranked pipeline NDCG@10 {faiss['ndcg@10']['ranked pipeline']:.4f} (exact: "
            f"{r['ndcg@10']['ranked pipeline']:.4f}), ALS alone {faiss['ndcg@10']['als']:.4f} (exact: "
            f"{r['ndcg@10']['als']:.4f}); whole request p50 {fl['request']['p50_ms']} ms, p99 {fl['request']['p99_ms']} "
            "ms. On this catalog size exact search is cheap; the index matters as catalogs grow (see the vector index "
            "section).",
            "",
        ]
    return "\n".join(lines)
