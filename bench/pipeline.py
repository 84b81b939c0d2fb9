"""Ranked pipeline benchmark (issue 4): stage-by-stage accuracy on a synthetic world's temporal split, and the
cost of ranking one user's candidates (feature rows + LightGBM) against the 5 ms p99 target.

Accuracy: a generated world is ingested and preprocessed into a temporary event store, then
`streamrec.pipeline.stages.evaluate_pipeline` scores each candidate source alone, the ranked union and the
diversified list on the test period (the ranker learns on the last part of the training period only).
Latency: the serving path (streamrec.pipeline.serving) answers one request at a time for sampled users, with a bundle
fitted on all data (quotas raised to leave about 500 candidates per request after the filters) and the memory online store: online store reads,
ranking (feature rows + LightGBM) and the whole request, p50/p99 over users.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/pipeline.py                 # world preset "medium"
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/pipeline.py --size small
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from streamrec.features import events_relation  # noqa: E402
from streamrec.logs import configure_logging  # noqa: E402
from streamrec.features.materialize import materialize  # noqa: E402
from streamrec.pipeline.bundle import fit_bundle  # noqa: E402
from streamrec.pipeline.serving import OnlinePipeline, ServingCatalog  # noqa: E402
from streamrec.pipeline.stages import evaluate_pipeline  # noqa: E402
from streamrec.settings import PipelineConfig  # noqa: E402
from streamrec.storage.online import MemoryOnlineStore  # noqa: E402
from worlds import world_store  # noqa: E402  (bench/ is the script's folder)

RESULT = Path(__file__).resolve().parent / "results" / "pipeline.json"


def request_latency(con, table, events: str, users: int, seed: int = 0, vector_index: dict | None = None) -> dict:
    """The serving path for single requests: a bundle fitted on all data with larger quotas (about 500 candidates
    per user), the memory online store filled as of just after the newest event, then one request per sampled user.
    Times per request: the online store reads alone (history, the user's and the candidates' feature vectors),
    ranking (feature rows + LightGBM), and the whole request (candidates, filters, ranking, MMR)."""
    # about half the candidates are filtered out (region, maturity): these quotas leave about 500 per request
    quotas = {"ease": 500, "als": 400, "trending": 100, "continue_watching": 10, "new_releases": 20}
    bundle = fit_bundle(con, table, events, PipelineConfig(quotas=quotas, vector_index=vector_index or {"type": "exact"}))
    at = con.execute(f"SELECT max(ts) FROM {events}").fetchone()[0] + timedelta(seconds=1)
    store = MemoryOnlineStore()
    materialize(con, store, at, events, bundle.definitions)
    pipeline = OnlinePipeline(bundle, ServingCatalog.from_store(con), store)
    everyone = [r[0] for r in con.execute("SELECT DISTINCT user_id FROM interactions ORDER BY 1").fetchall()]
    chosen = np.random.default_rng(seed).choice(everyone, min(users, len(everyone)), replace=False)
    for user in chosen[:20]:  # warm up
        pipeline.recommend(str(user), at=at)
    reads, ranking, whole, sizes = [], [], [], []
    for user in chosen:
        began = time.perf_counter()
        result = pipeline.recommend(str(user), at=at, explain_items=False)
        whole.append((time.perf_counter() - began) * 1000)
        ranking.append(result.timings_ms.get("features", 0.0) + result.timings_ms.get("ranker", 0.0))
        keys = pipeline.item_ids[pipeline.candidates(str(user), at).cands.col].tolist()
        sizes.append(len(keys))
        began = time.perf_counter()
        store.history(str(user))
        store.get_features("user", [str(user)])
        store.get_features("title", keys)
        reads.append((time.perf_counter() - began) * 1000)

    def pct(values: list[float]) -> dict:
        return {"p50_ms": round(float(np.percentile(values, 50)), 3), "p99_ms": round(float(np.percentile(values, 99)), 3)}

    return {"users": len(chosen), "candidates_mean": round(float(np.mean(sizes)), 1),
            "candidates_max": int(np.max(sizes)), "features": len(bundle.ranker.names_),
            "ranker_trees": int(bundle.ranker.trees_),
            "store_read": {**pct(reads), "target_p99_ms": 1.0, "met": bool(np.percentile(reads, 99) <= 1.0)},
            "ranking": {**pct(ranking), "target_p99_ms": 5.0, "met": bool(np.percentile(ranking, 99) <= 5.0)},
            "request": pct(whole), "counters": {k: int(v) for k, v in pipeline.counters.items() if v}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", help="world preset")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-users", type=int, default=300)
    parser.add_argument("--vector-index", choices=["exact", "faiss"], default="exact",
                        help="how ALS candidates are searched: exact numpy (default) or faiss HNSW")
    parser.add_argument("--impressions", action="store_true",
                        help="add titles shown but not engaged with to the ranker's training negatives")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    configure_logging("warning")
    began = time.perf_counter()
    with world_store(args.size, args.seed) as (info, store, table):
        index = {"type": args.vector_index} if args.vector_index == "exact" else \
            {"type": "faiss", "structure": "hnsw", "metric": "l2_reduction", "ef_search": 512}
        report = evaluate_pipeline(store.con, table, events=events_relation(store.con), vector_index=index,
                                   impressions=args.impressions)
        lat = request_latency(store.con, table, events_relation(store.con), args.latency_users, vector_index=index)
    best, best_value = report.best_single
    result = {
        "command": "python bench/pipeline.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "world": {"size": args.size, "seed": args.seed, "events": info.counts.get("events"),
                  "users": info.counts.get("users"), "titles": info.counts.get("titles")},
        "impression_negatives": args.impressions, "vector_index": index,
        "ndcg@10": report.ndcg, "genre_diversity@10": report.diversity, "catalog_coverage@10": report.coverage,
        "novelty@10": report.novelty, "candidate_recall": report.recall,
        "best_single": {"source": best, "ndcg@10": best_value},
        "gain_vs_best_single": report.ndcg["ranked pipeline"] / best_value - 1,
        "importance": report.importance, "counts": report.counts,
        "pipeline_seconds": round(report.seconds, 2),
        "latency": lat,
        "seconds": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ndcg@10", "gain_vs_best_single", "latency")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
