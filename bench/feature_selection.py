"""Feature selection benchmark (issue 4): candidates generated from the feature templates, selected on validation
inside the ranker's training period, then the pipeline's test NDCG@10 with the built-in features vs built-in +
selected, in the same run.

A generated world is ingested and preprocessed into a temporary event store; `select_features` tries the default
templates' candidates (best LightGBM gain first, kept only when validation NDCG@10 rises by more than the tolerance
and one standard error of the per-user differences); `evaluate_pipeline` then runs twice on the test period, which
selection never read. Writes bench/results/feature_selection.json (rendered by bench/render_feature_selection.py).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/feature_selection.py                 # world preset "medium"
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/feature_selection.py --size small
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from streamrec.evaluation import metrics as M  # noqa: E402
from streamrec.evaluation.runner import prepare  # noqa: E402
from streamrec.evaluation.splits import temporal_split  # noqa: E402
from streamrec.features import BUILTIN, events_relation  # noqa: E402
from streamrec.features.selection import SelectionConfig, select_features  # noqa: E402
from streamrec.logs import configure_logging  # noqa: E402
from streamrec.pipeline.stages import evaluate_pipeline  # noqa: E402
from worlds import world_store  # noqa: E402  (bench/ is the script's folder)

RESULT = Path(__file__).resolve().parent / "results" / "feature_selection.json"
STAGES = ("ranked pipeline", "ranked + diversity")


def paired(base, other, table) -> dict:
    """Test NDCG@10 per user of the ranked pipeline, the selected set's minus the built-in one's: mean ± stderr."""
    relevant = prepare(temporal_split(table)).relevant  # the test users, in the reports' row order
    a = M.ndcg_at_k(base.lists["ranked pipeline"], relevant, 10)
    b = M.ndcg_at_k(other.lists["ranked pipeline"], relevant, 10)
    diff = b - a
    return {"mean": float(diff.mean()), "stderr": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "users": int(len(diff)), "better": int((diff > 0).sum()), "worse": int((diff < 0).sum())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", help="world preset")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-tries", type=int, default=SelectionConfig().max_tries)
    parser.add_argument("--max-selected", type=int, default=SelectionConfig().max_selected)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    configure_logging("info")
    began = time.perf_counter()
    config = SelectionConfig(max_tries=args.max_tries, max_selected=args.max_selected)
    with world_store(args.size, args.seed) as (info, store, table):
        events = events_relation(store.con)
        selection = select_features(store.con, table, events=events, config=config)
        print(json.dumps({k: v for k, v in selection.summary().items() if k != "candidates"}, indent=2))
        base = evaluate_pipeline(store.con, table, events=events)
        chosen = evaluate_pipeline(store.con, table, events=events, definitions=(*BUILTIN, *selection.selected)) \
            if selection.selected else base  # nothing kept: the same ranker
    result = {
        "command": "python bench/feature_selection.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "world": {"size": args.size, "seed": args.seed, "events": info.counts.get("events"),
                  "users": info.counts.get("users"), "titles": info.counts.get("titles")},
        "config": config.model_dump(),
        "selection": selection.summary(),
        "test_ndcg@10": {"builtin": {s: base.ndcg[s] for s in STAGES if s in base.ndcg},
                         "builtin+selected": {s: chosen.ndcg[s] for s in STAGES if s in chosen.ndcg}},
        "test_gain": chosen.ndcg["ranked pipeline"] / base.ndcg["ranked pipeline"] - 1,
        "test_paired": paired(base, chosen, table),
        "features": {"builtin": len(BUILTIN), "selected": len(selection.selected)},
        "pipeline_seconds": {"builtin": round(base.seconds, 1), "builtin+selected": round(chosen.seconds, 1)},
        "seconds": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("test_ndcg@10", "test_gain", "test_paired", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
