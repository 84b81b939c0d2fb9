"""Closed-loop A/B (issue 7): the ranked pipeline against popularity, both served by the same in-process service to
simulated viewers who answer with their ground-truth taste, then `analyze` on the log the simulation wrote. The
pipeline should win on play rate and watch time: the analysis must find the difference with the right sign.

World: `streamrec demo --size SIZE --no-serve` in a temporary folder (its registered pipeline is the control);
popularity is fitted on the same interactions and served from a saved folder (the treatment).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/ab_simulated.py --days 7
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
BENCH = Path(__file__).resolve().parent
from serving import build_world  # noqa: E402  (bench/ is on sys.path)

RESULT = BENCH / "results" / "ab_simulated.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--users", type=int, default=None, help="simulated viewers (default: every user)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    from streamrec.cli.experiment_cmds import plan_of
    from streamrec.cli.ui import progress_bar
    from streamrec.data.dataset import Dataset
    from streamrec.data.interactions import Interactions
    from streamrec.data.synthetic.taste import GroundTruth
    from streamrec.experiments.analysis import analyze
    from streamrec.experiments.config import ExperimentConfig
    from streamrec.models import create_model
    from streamrec.serving import build_state
    from streamrec.settings import load_settings
    from streamrec.simulation import InProcessTransport, SimulationConfig, simulate
    from streamrec.training import interactions_from_store

    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = build_world(tmp, args.size, args.seed, tmp / "demo.log")
        settings = load_settings(data_dir=data)
        popularity = create_model("popularity").fit(Interactions.from_table(interactions_from_store(settings)))
        popularity.save(tmp / "popularity")
        experiment = ExperimentConfig(name="pipeline-vs-popularity", primary_metric="play_rate", variants=[
            {"name": "pipeline", "model": "champion"}, {"name": "popularity", "model": str(tmp / "popularity")}])
        state = build_state(settings.model_copy(update={
            "experiments": [experiment], "serving": settings.serving.model_copy(update={"clock": "data"})}))
        served = {ref: h.current.kind if h.current else None for ref, h in state.experiments.holders.items()}
        transport = InProcessTransport(state)
        try:
            with progress_bar("simulating days") as bar:
                result = simulate(GroundTruth.load(data / "world"), Dataset.open(data / "world").table("users"),
                                  transport, SimulationConfig(days=args.days, users=args.users, seed=args.seed),
                                  on_progress=bar)
        finally:
            transport.close()
        analysis = analyze(result.log, plan_of(experiment, guardrails=(), planned_days=args.days,
                                               min_users_per_variant=100))  # as of the log's end
    comparisons = [{"metric": c.metric, "diff": c.diff, "low": c.low, "high": c.high, "p": c.p_value,
                    "p_sequential": c.p_sequential, "relative": c.relative} for c in analysis.comparisons]
    primary = analysis.comparison("play_rate")
    out = {
        "command": "python bench/ab_simulated.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cores": os.cpu_count(), "world": {"size": args.size, "seed": args.seed}, "days": args.days,
        "served": served, "viewers": result.total.viewers, "requests": result.total.requests,
        "per_variant": {v: {m: {"estimate": e.value, "low": e.low, "high": e.high} for m, e in ms.items()}
                        for v, ms in analysis.variants.items()},
        "users": analysis.users, "srm_p": analysis.srm.p_value, "comparisons": comparisons,
        "decision": {"verdict": analysis.decision.verdict.value, "winner": analysis.decision.winner,
                     "reasons": analysis.decision.reasons},
        "right_sign": primary.diff < 0 and primary.high < 0,  # popularity (the treatment) plays less
        "seconds": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({k: out[k] for k in ("users", "comparisons", "decision", "right_sign")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
