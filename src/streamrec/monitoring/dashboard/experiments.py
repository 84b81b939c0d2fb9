"""The experiments page's data: every served experiment (and any other found in the exposure log) analysed as
`streamrec experiment analyze` does — per-variant metrics with intervals, treatment − control over the daily looks with
fixed-horizon intervals and the sequential confidence sequence, the sample-ratio check and the decision."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamrec.monitoring.dashboard.jsonable import jsonable


def plan_for(experiment: Any, latency_measured: bool = True) -> Any:
    """The analysis plan of a configured experiment, as the CLI builds it (first variant is the control)."""
    from streamrec.experiments.stats import AnalysisPlan, Guardrail

    g = experiment.guardrails
    guardrails = tuple(x for x in (
        Guardrail("latency_p99_ms", max=g.latency_p99_ms) if g.latency_p99_ms is not None else None,
        Guardrail("error_rate", max=g.error_rate) if g.error_rate is not None else None,
        Guardrail("coverage", min=g.coverage_min) if g.coverage_min is not None else None) if x is not None)
    return AnalysisPlan(name=experiment.name, variants=experiment.allocation(), primary_metric=experiment.primary_metric,
                        guardrails=guardrails, control=experiment.variants[0].name, start=experiment.start,
                        end=experiment.stop)


def inferred_plan(name: str, variants: list[str]) -> Any:
    """A plan for an experiment found in the log but not served by this process: the variants seen, equal allocation
    assumed, 'control' (else the first seen) as the control, the play rate as the primary metric."""
    from streamrec.experiments.stats import AnalysisPlan

    ordered = sorted(variants, key=lambda v: v != "control")
    return AnalysisPlan(name=name, variants={v: 1.0 for v in ordered}, primary_metric="play_rate", control=ordered[0])


def _daily_exposures(log: pa.Table) -> dict[str, Any]:
    """Exposures per day and variant, for the traffic chart."""
    exposures = log.filter(pc.equal(log["type"], "exposure"))
    if exposures.num_rows == 0:
        return {"days": [], "by_variant": {}}
    days = pc.strftime(exposures["ts"], format="%Y-%m-%d")
    grouped = pa.table({"day": days, "variant": exposures["variant"]}).group_by(["day", "variant"]).aggregate(
        [([], "count_all")])
    labels = sorted(set(grouped["day"].to_pylist()))
    index = {d: i for i, d in enumerate(labels)}
    out: dict[str, list[int]] = {}
    for day, variant, n in zip(grouped["day"].to_pylist(), grouped["variant"].to_pylist(),
                               grouped["count_all"].to_pylist()):
        out.setdefault(variant, [0] * len(labels))[index[day]] = int(n)
    return {"days": labels, "by_variant": dict(sorted(out.items()))}


def analyse(log: pa.Table, plan: Any, configured: bool,
            guardrail_values: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """One experiment's payload from its rows of the exposure log (status 'no exposures' when it has none)."""
    from streamrec.errors import DataError
    from streamrec.experiments.analysis import analyze

    base: dict[str, Any] = {"name": plan.name, "configured": configured, "control": plan.control_variant,
                            "treatments": plan.treatments, "primary_metric": plan.primary_metric,
                            "metrics_order": list(plan.all_metrics), "alpha": plan.alpha,
                            "variants": [{"name": v, "weight": w} for v, w in plan.variants.items()],
                            "exposures": _daily_exposures(log), "rows": log.num_rows}
    if not configured:
        base["note"] = (f"not served by this process: equal allocation assumed, control '{plan.control_variant}', "
                        f"primary metric {plan.primary_metric}")
    if log.num_rows == 0 or pc.sum(pc.equal(log["type"], "exposure")).as_py() in (None, 0):
        return jsonable({**base, "status": "no exposures", "message": "nobody exposed yet"})
    try:  # as of the newest row (at None: the data's clock, not the wall's)
        result = analyze(log, plan, None, guardrail_values)
    except (DataError, ValueError) as exc:
        return jsonable({**base, "status": "error", "message": str(exc)})
    over_time: dict[str, dict[str, dict[str, list]]] = {}
    for p in result.over_time:
        series = over_time.setdefault(p.metric, {}).setdefault(p.variant, {
            "t": [], "users": [], "diff": [], "low": [], "high": [], "seq_low": [], "seq_high": [],
            "p_value": [], "p_sequential": []})
        for key, value in (("t", p.at), ("users", p.users), ("diff", p.diff), ("low", p.low), ("high", p.high),
                           ("seq_low", p.seq_low), ("seq_high", p.seq_high), ("p_value", p.p_value),
                           ("p_sequential", p.p_sequential)):
            series[key].append(value)
    for v in base["variants"]:
        v["users"] = result.users.get(v["name"], 0)
        v["expected"] = result.srm.expected.get(v["name"])
    return jsonable({
        **base, "status": "analysed", "message": None, "at": result.at, "start": result.start,
        "looks": len(result.looks), "planned_looks": result.planned_looks, "excluded": result.excluded,
        "estimates": {m: {v: {"value": est[m].value, "low": est[m].low, "high": est[m].high}
                          for v, est in result.variants.items()} for m in plan.all_metrics},
        "comparisons": [{"variant": c.variant, "metric": c.metric, "method": c.method, "diff": c.diff,
                         "low": c.low, "high": c.high, "relative": c.relative, "p_value": c.p_value,
                         "p_holm": c.p_holm, "p_sequential": c.p_sequential,
                         "p_sequential_holm": c.p_sequential_holm, "seq_low": c.seq_low, "seq_high": c.seq_high,
                         "cuped_reduction": c.cuped_reduction} for c in result.comparisons],
        "over_time": over_time,
        "srm": {"p_value": result.srm.p_value, "statistic": result.srm.statistic, "blocked": result.srm.blocked},
        "guardrails": [{"metric": g.metric, "min": g.min, "max": g.max,
                        "values": {v: (guardrail_values or {}).get(v, {}).get(g.metric) for v in plan.treatments}}
                       for g in plan.guardrails],
        "decision": {"verdict": result.decision.verdict.value, "winner": result.decision.winner,
                     "reasons": list(result.decision.reasons)},
    })


def build(experiments: list[Any], folder: Path, variant_latency_ms: Mapping[str, float | None]) -> dict[str, Any]:
    """Every configured experiment, then every other experiment of the exposure log under `folder`.

    Args:
        experiments: the served ExperimentConfigs.
        folder: the exposure log (DATA_DIR/experiments/exposures).
        variant_latency_ms: p99 latency per variant measured by this server (the latency guardrail's value).
    """
    from streamrec.experiments.exposure import read_log

    log = read_log(folder)
    names = set(log["experiment"].to_pylist()) if log.num_rows else set()
    out = []
    values = {v: {"latency_p99_ms": ms} for v, ms in variant_latency_ms.items() if ms is not None}
    for e in experiments:
        rows = log.filter(pc.equal(log["experiment"], e.name)) if e.name in names else log.slice(0, 0)
        out.append(analyse(rows, plan_for(e), True, values))
    for name in sorted(names - {e.name for e in experiments}):
        rows = log.filter(pc.equal(log["experiment"], name))
        variants = list(dict.fromkeys(rows["variant"].to_pylist()))
        if len(variants) < 2:
            out.append(jsonable({"name": name, "configured": False, "status": "error", "rows": rows.num_rows,
                                 "message": f"one variant in the log ({', '.join(variants)}): nothing to compare",
                                 "variants": [{"name": v} for v in variants], "exposures": _daily_exposures(rows)}))
            continue
        out.append(analyse(rows, inferred_plan(name, variants), False))
    return {"experiments": out, "log": str(folder)}
