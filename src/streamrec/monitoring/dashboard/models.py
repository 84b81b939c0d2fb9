"""The models page's data: the served model, the registry's versions with offline metrics and lineage, champion and
challenger, and the models of experiment variants."""

from __future__ import annotations

from typing import Any

from streamrec.monitoring.dashboard.jsonable import jsonable

MAX_VERSIONS = 12  # newest versions read in full (each costs a few registry calls)
CHART_METRICS = 4


def _served(model: Any) -> dict[str, Any] | None:
    if model is None:
        return None
    return {"version": model.version, "kind": model.kind, "ref": model.ref, "loaded_at": model.loaded_at}


def chart_metrics(versions: list[dict[str, Any]], limit: int = CHART_METRICS) -> list[str]:
    """The offline metrics worth a chart: those most versions have, NDCG first, at most `limit`."""
    counts: dict[str, int] = {}
    for v in versions:
        for name in v["metrics"]:
            counts[name] = counts.get(name, 0) + 1
    return sorted(counts, key=lambda m: (-counts[m], "ndcg" not in m.lower(), m))[:limit]


def build(state: Any) -> dict[str, Any]:
    """The models payload (see the README's dashboard section for its shape)."""
    holder = state.holder
    variants = []
    if state.experiments is not None:
        for (experiment, variant), cfg in state.experiments.variants.items():
            model = state.experiments.holders[cfg.model].current if cfg.model else holder.current
            variants.append({"experiment": experiment, "variant": variant, "ref": cfg.model or "(served model)",
                             "version": model.version if model else None})
    out: dict[str, Any] = {"served": _served(holder.current), "problem": holder.problem,
                           "registry": {"name": state.settings.registry.model_name, "where": None, "error": None},
                           "champion": None, "challenger": None, "versions": [], "metric_names": [],
                           "variants": variants}
    try:
        registry = state.registry()
        out["registry"]["where"] = registry.where
        listed = registry.list_versions()
        for info in listed[:MAX_VERSIONS]:
            shown = registry.show(info.version)
            out["versions"].append({
                "version": shown.version, "aliases": list(shown.aliases), "model": shown.model,
                "run_id": shown.run_id, "data_snapshot": shown.data_snapshot, "code_version": shown.code_version,
                "created": shown.created, "source": shown.source, "description": shown.description,
                "files": len(shown.checksums), "metrics": dict(sorted(shown.metrics.items())),
                "params": dict(sorted(shown.params.items()))})
        out["versions_total"] = len(listed)
    except Exception as exc:  # the registry being down does not fail the page: it says why
        out["registry"]["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    for v in out["versions"]:
        for alias in ("champion", "challenger"):
            if alias in v["aliases"]:
                out[alias] = v["version"]
    out["metric_names"] = chart_metrics(out["versions"])
    return jsonable(out)
