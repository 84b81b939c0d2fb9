"""BENCHMARKS.md section for bench/accuracy.py (issue 3): every model side by side, per data set and protocol.

Found by bench/render.py (it calls `section()` of every bench/render_*.py); reads bench/results/accuracy.json.
"""

from __future__ import annotations

from render import load, table, verdict  # bench/ is on sys.path under render.py


def _est(metrics: dict, key: str, ci: bool = False) -> str:
    est = metrics.get(key)
    if not est or est.get("mean") is None:
        return "–"
    if ci and est.get("low") is not None:
        return f"{est['mean']:.4f} [{est['low']:.4f}, {est['high']:.4f}]"
    return f"{est['mean']:.4f}"


def _config(config: dict) -> str:
    skip = {"num_threads", "max_items", "seed", "verify_negative_samples", "use_cg"}
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in config.items() if k not in skip and v is not None)


def section() -> str:
    r = load("accuracy")
    if r is None:
        return ""
    target, protocol = r["target"], r["protocol"]
    lines = [
        "## Accuracy: the model zoo side by side (issue 3)",
        "",
        f"`{r['command'].strip()}` — {r['seconds']:.0f} s on {r['machine']['cores']} cores. Full catalog, seen items "
        f"excluded, no sampled negatives; intervals are {protocol['bootstrap']}. Hyperparameters are chosen on "
        "validation data carved from the training part only, then each model is evaluated once on test "
        "(`bench/results/accuracy.html` has the plots: NDCG with intervals per model, accuracy against latency).",
        "",
        f"- MovieLens protocol: {protocol['movielens']}.",
        f"- Synthetic protocol: {protocol['synthetic']}.",
        "",
    ]
    for label, run in r["runs"].items():
        result = run["result"]
        models = sorted(result["models"].items(),
                        key=lambda kv: -(kv[1]["metrics"].get("ndcg@10", {}).get("mean") or 0.0))
        split = result["split"]
        lines += [f"### {label}", "",
                  f"train {split['train']['rows']:,} rows / test {split['test']['rows']:,} rows, "
                  f"{result['n_users']:,} test users, {result['n_items']:,} titles.", ""]
        rows = []
        for name, m in models:
            metrics = m["metrics"]
            latency = m.get("latency", {}).get("batch_ms_per_user_p50")
            rows.append([f"**{name}**" if name == models[0][0] else name, _est(metrics, "ndcg@10", ci=True),
                         _est(metrics, "recall@10"), _est(metrics, "map@10"), _est(metrics, "coverage@10"),
                         f"{m['fit_seconds']:.2f}", f"{latency:.3f}" if latency is not None else "–",
                         _config(m["config"])])
        lines += [table(["model", "NDCG@10 [95% CI]", "Recall@10", "MAP@10", "coverage@10", "fit s",
                         "ms/user", "chosen hyperparameters"], rows), ""]
    best = target.get("best") or {}
    best_run = r["runs"].get(best.get("run"), {}).get("result", {}).get("models", {})
    plain = _est(best_run.get("ease (plain)", {}).get("metrics", {}), "ndcg@10")  # the reference the target beats
    lines += [
        f"Target: the best model's MovieLens NDCG@{r['protocol']['k']} ≥ {target['value']}"
        + (f" (the tuned plain EASE on the same data: {plain})" if plain != "–" else "")
        + f" — best {best.get('ndcg@10', float('nan')):.4f} ({best.get('model')}, {best.get('run')}): "
        f"{verdict(bool(target['met']))}.",
        "",
    ]
    return "\n".join(lines)
