"""Accuracy benchmark: full-catalog NDCG@10 (seen items excluded) of every registered model, hyperparameters
chosen on validation splits carved from TRAIN only, then one evaluation on the test set.

MovieLens latest-small (ratings.csv read directly): per-item stratified 75/25 split with seed 42 (row-for-row
Microsoft Recommenders' python_stratified_split), every rating relevant, trained twice: weight = 1 and
weight = rating. Validation: 3 folds, each a per-item stratified 75/25 split of the train part (seeds 43-45); the
config with the best mean validation NDCG@10 is evaluated once on test.
Synthetic world (preset "small"): a global temporal split of its events at the 0.8 quantile of time (validation:
the same split of the train part's events); test pairs a user already had before the cut are not relevant.

Writes bench/results/accuracy.json and bench/results/accuracy.html.

    .venv/bin/python bench/accuracy.py                      # data: ../shared/data/ml-latest-small
    .venv/bin/python bench/accuracy.py --data PATH --quick  # smaller grids
    .venv/bin/python bench/accuracy.py --models ease,rp3beta --skip-synthetic
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from streamrec.errors import ConfigError  # noqa: E402
from streamrec.logs import configure_logging  # noqa: E402
from streamrec.evaluation.runner import _finite  # noqa: E402
from streamrec.evaluation import (  # noqa: E402
    EvaluationResult,
    Segments,
    Split,
    evaluate,
    markdown_table,
    stratified_split,
    temporal_split,
    write_report,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ml-latest-small"
RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.43
K = 10
ML_SEGMENTS = Segments(thresholds=(50, 200), names=("light", "regular", "heavy"))  # every ML user has ≥ 15 in train

GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{"measure": "count"}, {"measure": "weight"}],
    "item_knn": [{"n_neighbors": n, "shrinkage": s} for n in (50, 200, 800) for s in (10.0, 100.0)],
    "ease": [{"l2": l2} for l2 in (200.0, 400.0, 1000.0)]
    + [{"l2": l2, "session_weight": g, "session_seconds": tau}
       for l2 in (200.0, 400.0, 1000.0) for g in (1.0, 3.0, 10.0) for tau in (120.0, 600.0, 3600.0)],
    "ease (plain)": [{"l2": l2} for l2 in (100.0, 200.0, 300.0, 500.0, 1000.0, 2500.0, 5000.0)],
    "als": [{"factors": f, "regularization": r, "alpha": a, "iterations": 15}
            for f in (16, 32, 64) for r in (0.05, 1.0) for a in (2.0, 10.0)],
    "bpr": [{"factors": f, "learning_rate": lr, "regularization": r, "iterations": 100}
            for f in (32, 64) for lr in (0.01, 0.05) for r in (0.001, 0.01)],
    "rp3beta": [{"alpha": a, "beta": b, "n_neighbors": n}
                for a in (0.5, 0.7, 1.0) for b in (0.3, 0.5) for n in (100, 400)],
}
VARIANT_OF = {"ease (plain)": "ease"}  # display name → registry model; a variant is the model on a narrower grid
QUICK_GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{"measure": "count"}],
    "item_knn": [{"n_neighbors": 200, "shrinkage": 100.0}],
    "ease": [{"l2": 300.0}, {"l2": 400.0, "session_weight": 3.0, "session_seconds": 600.0}],
    "ease (plain)": [{"l2": 300.0}],
    "als": [{"factors": 32, "regularization": 1.0, "alpha": 2.0}],
    "bpr": [{}],
    "rp3beta": [{"alpha": 0.7, "beta": 0.5, "n_neighbors": 400}],
}


# --- data -----------------------------------------------------------------------------------------------------------
def movielens(folder: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """ratings.csv as (user_id, item_id, rating, ts) in file order, and movieId → genres from movies.csv."""
    ratings = pd.read_csv(folder / "ratings.csv")
    ratings = ratings.rename(columns={"userId": "user_id", "movieId": "item_id", "timestamp": "ts"})
    genres: dict[str, list[str]] = {}
    if (folder / "movies.csv").is_file():
        movies = pd.read_csv(folder / "movies.csv")
        for movie, text in zip(movies["movieId"], movies["genres"]):
            genres[str(movie)] = [g for g in str(text).split("|") if g and g != "(no genres listed)"]
    return ratings, genres


def synthetic_events(folder: Path) -> tuple[pa.Table, dict[str, list[str]]]:
    """A small synthetic world's engagement events as rows (user_id, item_id, weight, ts): a play or a completion
    weighs 1, an add-to-list 0.5 (impressions, progress and ratings weigh nothing); and title → genres."""
    from streamrec.data.dataset import Dataset
    from streamrec.data.synthetic import WorldConfig, generate_world

    generate_world(WorldConfig.preset("small"), folder, overwrite=True)
    data = Dataset.open(folder)
    events = data.events()
    weights = {"play": 1.0, "complete": 1.0, "add_to_list": 0.5}
    kind = events.column("type")
    keep = pc.is_in(kind, value_set=pa.array(list(weights)))
    events = events.filter(keep)
    weight = np.select([np.asarray(events.column("type").to_pylist()) == t for t in weights], list(weights.values()))
    table = pa.table({"user_id": events.column("user_id"), "item_id": events.column("item_id"),
                      "weight": pa.array(weight, pa.float32()), "ts": events.column("ts")})
    titles = data.table("titles")
    genres = {i: list(g or []) for i, g in zip(titles.column("item_id").to_pylist(),
                                               titles.column("genres").to_pylist())}
    return table, genres


def event_temporal_split(events: pa.Table, quantile: float) -> Split:
    """Temporal split of event rows; test keeps each new (user, title) pair once, pairs already in train dropped."""
    split = temporal_split(events, quantile=quantile)
    train_pairs = pc.binary_join_element_wise(split.train.column("user_id"), split.train.column("item_id"), "\x1f")
    test_pairs = pc.binary_join_element_wise(split.test.column("user_id"), split.test.column("item_id"), "\x1f")
    new = pc.invert(pc.is_in(test_pairs, value_set=pc.unique(train_pairs)))
    test = split.test.filter(new)
    dropped = dict(split.dropped, test_pair_seen_in_train=int(split.test.num_rows - test.num_rows))
    return Split("temporal_events", split.train, test, dropped=dropped, params=split.params)


# --- protocol -------------------------------------------------------------------------------------------------------
def tune(grids: dict[str, list[dict[str, Any]]], vals: list[Split], weight_col: str | None) -> dict[str, Any]:
    """Each model's grid on every validation fold; returns per model the config with the best mean NDCG@10 over
    the folds (one fold's noise easily outweighs the differences between good configs) and every tried one."""
    out: dict[str, Any] = {}
    for name, grid in grids.items():
        began = time.perf_counter()
        per_fold: list[list[float]] = []
        fit_seconds: list[float] = []
        for val in vals:
            specs = {f"{name}#{i}": (VARIANT_OF.get(name, name), config) for i, config in enumerate(grid)}
            try:
                result = evaluate(specs, val, k=K, ks=(K,), weight_col=weight_col, n_boot=0, latency_users=0)
            except ConfigError as exc:  # a grid key the model no longer has: fall back to its defaults
                print(f"  {name}: grid rejected ({exc}); using defaults", file=sys.stderr)
                grid, specs = [{}], {f"{name}#0": (VARIANT_OF.get(name, name), {})}
                per_fold = []
                result = evaluate(specs, val, k=K, ks=(K,), weight_col=weight_col, n_boot=0, latency_users=0)
            per_fold.append([result.models[f"{name}#{i}"].metrics[f"ndcg@{K}"].mean for i in range(len(grid))])
            fit_seconds = [result.models[f"{name}#{i}"].fit_seconds for i in range(len(grid))]
        scores = np.asarray(per_fold)
        tried = [{"config": config, "val_ndcg@10": float(scores[:, i].mean()),
                  "val_ndcg@10_folds": [float(x) for x in scores[:, i]], "fit_seconds": fit_seconds[i]}
                 for i, config in enumerate(grid)]
        best = max(tried, key=lambda t: t["val_ndcg@10"])
        out[name] = {"best": best["config"], "best_val_ndcg@10": best["val_ndcg@10"], "tried": tried}
        print(f"  {name}: {len(grid)} configs × {len(vals)} folds in {time.perf_counter() - began:.1f}s, "
              f"best {best['config']} mean val NDCG@10 {best['val_ndcg@10']:.4f}", file=sys.stderr)
    return out


def run(label: str, split: Split, vals: list[Split], weight_col: str | None, grids: dict[str, list[dict[str, Any]]],
        genres: dict[str, list[str]] | None,
        segments: Segments | None = None) -> tuple[EvaluationResult, dict[str, Any]]:
    print(f"{label}: tuning on {len(vals)} validation folds ({vals[0].train.num_rows:,} train / "
          f"{vals[0].test.num_rows:,} test rows each)", file=sys.stderr)
    tuning = tune(grids, vals, weight_col)
    models = {name: (VARIANT_OF.get(name, name), info["best"]) for name, info in tuning.items()}
    print(f"{label}: evaluating on test ({split.test.num_rows:,} rows)", file=sys.stderr)
    result = evaluate(models, split, k=K, ks=(K, 20), weight_col=weight_col, item_genres=genres, n_boot=1000,
                      latency_users=100, seed=0, segments=segments)
    print(markdown_table(result), file=sys.stderr)
    return result, tuning


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a MovieLens folder with ratings.csv")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for accuracy.json / accuracy.html")
    parser.add_argument("--models", default="", help="comma-separated registry names (default: all)")
    parser.add_argument("--quick", action="store_true", help="one or two configs per model")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--folds", type=int, default=3,
                        help="MovieLens validation folds (per-item stratified 75/25 of train, seeds 43, 44, ...)")
    args = parser.parse_args(argv)
    configure_logging("warning")

    from streamrec.models import MODELS

    names = [n for n in (args.models.split(",") if args.models else [*MODELS, *VARIANT_OF]) if n]
    unknown = [n for n in names if VARIANT_OF.get(n, n) not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; registered: {', '.join(MODELS)}")
    table = QUICK_GRIDS if args.quick else GRIDS
    grids = {n: table.get(n, [{}]) for n in names}
    began = time.perf_counter()

    ratings, genres = movielens(args.data)
    split = stratified_split(ratings, ratio=0.75, by="item", seed=42)
    vals = [stratified_split(split.train, ratio=0.75, by="item", seed=43 + f) for f in range(args.folds)]
    results: dict[str, EvaluationResult] = {}
    runs: dict[str, Any] = {}
    for label, weight_col in (("MovieLens, weight = 1", None), ("MovieLens, weight = rating", "rating")):
        result, tuning = run(label, split, vals, weight_col, grids, genres, ML_SEGMENTS)
        results[label], runs[label] = result, {"result": result.to_dict(), "tuning": tuning}

    if not args.skip_synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            events, world_genres = synthetic_events(Path(tmp) / "world")
        s_split = event_temporal_split(events, 0.8)
        # a temporal split has one natural validation fold: the last part of the training period
        s_val = event_temporal_split(s_split.train, 0.8)
        label = "Synthetic world (small), temporal"
        result, tuning = run(label, s_split, [s_val], "weight", grids, world_genres)
        results[label], runs[label] = result, {"result": result.to_dict(), "tuning": tuning}

    movielens_runs = [r for label, r in results.items() if label.startswith("MovieLens")]
    best = max(((r.models[m].metrics[f"ndcg@{K}"].mean, m, label)
                for label, r in results.items() if label.startswith("MovieLens") for m in r.models), default=None)
    report = {
        "command": "python bench/accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "data": str(args.data),
        "protocol": {
            "movielens": "per-item stratified 75/25, seed 42 (Microsoft Recommenders python_stratified_split); "
                         f"validation: {args.folds} folds, each a per-item stratified 75/25 of train (seeds 43, ...), "
                         "configs ranked by mean validation NDCG@10; every rating relevant; "
                         "full catalog, seen items excluded; test items unknown to training stay relevant",
            "synthetic": "events split at the 0.8 time quantile; validation: same split of train events; "
                         "test = new (user, title) pairs after the cut",
            "k": K, "bootstrap": "1000 resamples of users, 95% percentile intervals, seed 0",
        },
        "target": {"metric": f"ndcg@{K}", "value": TARGET,
                   "best": {"ndcg@10": best[0], "model": best[1], "run": best[2]} if best else None,
                   "met": bool(best and best[0] >= TARGET)},
        "seconds": round(time.perf_counter() - began, 1),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    write_report(results, args.out / "accuracy.html", title="streamrec accuracy benchmark")
    if movielens_runs and best:
        print(f"best MovieLens NDCG@10: {best[0]:.4f} ({best[1]}, {best[2]}); target {TARGET}: "
              f"{'met' if best[0] >= TARGET else 'NOT met'}", file=sys.stderr)
    print(f"wrote {args.out / 'accuracy.json'} and {args.out / 'accuracy.html'} in {report['seconds']}s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
