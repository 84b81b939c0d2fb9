"""Reports of an EvaluationResult: one self-contained HTML file (charts as embedded PNGs) and a markdown table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from streamrec.evaluation.bootstrap import Estimate
from streamrec.evaluation.html import CSS as _CSS, escape as _e, img as _img, png as _png
from streamrec.evaluation.runner import EvaluationResult

TABLE_METRICS = ("ndcg", "recall", "precision", "map", "hit_rate", "mrr")
BEYOND_METRICS = ("coverage", "novelty", "popularity_percentile", "diversity")


def markdown_table(result: EvaluationResult, k: int | None = None, ci: bool = True) -> str:
    """A markdown table for the terminal: one row per model, accuracy at k (with 95% intervals), coverage,
    novelty, popularity percentile, fit time and scoring latency."""
    k = k or result.k
    metrics = [f"{m}@{k}" for m in (*TABLE_METRICS, *BEYOND_METRICS)]
    metrics = [m for m in metrics if any(m in r.metrics for r in result.models.values())]
    header = ["model", *metrics, "fit s", "ms/user p50", "single ms p50"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, model in _ranked(result):
        cells = [name]
        for metric in metrics:
            est = model.metrics.get(metric)
            cells.append(_fmt(est, ci=ci and metric.split("@")[0] in TABLE_METRICS) if est else "")
        cells += [f"{model.fit_seconds:.2f}", f"{model.latency['batch_ms_per_user_p50']:.3f}",
                  _num(model.latency.get("single_ms_p50"), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results: EvaluationResult | Mapping[str, EvaluationResult], path: Path | str,
                 title: str = "Offline evaluation") -> Path:
    """Write one self-contained HTML page (no external files; charts are embedded PNGs). Returns the path.

    Per result: the split and counts, a metrics table per cut-off with 95% intervals, NDCG bars with interval
    error bars, an NDCG vs scoring-latency scatter, speed and segment tables. Several results (a mapping of
    section name → result) get a side-by-side summary of NDCG at their main k first, then one section each.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sections = {"": results} if isinstance(results, EvaluationResult) else dict(results)
    body = [f"<h1>{_e(title)}</h1>"]
    if len(sections) > 1:
        body.append("<h2>Side by side</h2>")
        body.append(_summary_table(sections))
    for name, result in sections.items():
        if name:
            body.append(f"<h2 class=\"section\">{_e(name)}</h2>")
        body.extend(_section(result))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path


def _section(result: EvaluationResult) -> list[str]:
    body = [_split_section(result)]
    for k in result.ks:
        body.append(f"<h3>Metrics at k = {k}</h3>")
        body.append(_metrics_table(result, k))
    body.append("<h3>NDCG with 95% bootstrap intervals</h3>")
    body.append(_img(_ndcg_bars(result)))
    body.append(f"<h3>Accuracy vs scoring latency (NDCG@{result.k})</h3>")
    body.append(_img(_tradeoff(result)))
    body.append("<h3>Speed</h3>")
    body.append(_latency_table(result))
    body.append(f"<h3>Segments (by history size, k = {result.k})</h3>")
    body.append(_segment_table(result))
    return body


def _summary_table(sections: Mapping[str, EvaluationResult]) -> str:
    names: list[str] = []
    for result in sections.values():
        names += [n for n, _ in _ranked(result) if n not in names]
    head = "<tr><th>model</th>" + "".join(f"<th>{_e(s)}: {_e(r.main_metric)}</th>" for s, r in sections.items())
    rows = []
    for name in names:
        cells = [f"<td>{_e(name)}</td>"]
        for result in sections.values():
            model = result.models.get(name)
            cells.append(f"<td>{_e(_fmt(model.metrics.get(result.main_metric))) if model else ''}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}</tr>{''.join(rows)}</table>"


# --- sections --------------------------------------------------------------------------------------------------
def _split_section(result: EvaluationResult) -> str:
    split = result.split
    rows = [("split", split.get("name", "")), ("parameters", _kv(split.get("params", {})))]
    for part in ("train", "fold_in", "test"):
        if part in split:
            info = split[part]
            rows.append((part, f"{info['rows']:,} rows, {info.get('users') or 0:,} users, "
                               f"{info.get('items') or 0:,} items"))
    rows.append(("dropped by the split", _kv(split.get("dropped", {})) or "none"))
    rows.append(("evaluated", f"{result.n_users:,} test users over the full catalog of {result.n_items:,} items"))
    rows.append(("counts", _kv(result.counts)))
    settings = result.settings
    rows.append(("protocol", f"seen items excluded: {settings.get('exclude_seen')}; bootstrap: "
                             f"{settings.get('n_boot')} resamples of users, level {settings.get('level')}, "
                             f"seed {settings.get('seed')}; created {result.created_at}"))
    return "<table class=\"kv\">" + "".join(f"<tr><th>{_e(a)}</th><td>{_e(str(b))}</td></tr>" for a, b in rows) + \
        "</table>"


def _metrics_table(result: EvaluationResult, k: int) -> str:
    metrics = [f"{m}@{k}" for m in (*TABLE_METRICS, *BEYOND_METRICS, "arp")]
    metrics = [m for m in metrics if any(m in r.metrics for r in result.models.values())]
    head = "".join(f"<th>{_e(m)}</th>" for m in ["model", *metrics])
    if k == result.k:
        head += f"<th>Δ ndcg@{k} vs best</th>"
    rows = []
    for name, model in _ranked(result, f"ndcg@{k}"):
        cells = [f"<td>{_e(name)}</td>"]
        for metric in metrics:
            est = model.metrics.get(metric)
            cells.append(f"<td>{_e(_fmt(est)) if est else ''}</td>")
        if k == result.k:
            cells.append(f"<td>{_e(_fmt(model.vs_best)) if model.vs_best else ''}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _latency_table(result: EvaluationResult) -> str:
    head = "<tr><th>model</th><th>fit s</th><th>batch ms/user p50</th><th>batch ms/user p99</th>" \
           "<th>users/s</th><th>single-user ms p50</th><th>single-user ms p99</th></tr>"
    rows = []
    for name, model in _ranked(result):
        lat = model.latency
        cells = [name, f"{model.fit_seconds:.2f}", _num(lat.get("batch_ms_per_user_p50"), 3),
                 _num(lat.get("batch_ms_per_user_p99"), 3), _num(lat.get("throughput_users_per_s"), 0),
                 _num(lat.get("single_ms_p50"), 2), _num(lat.get("single_ms_p99"), 2)]
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _segment_table(result: EvaluationResult) -> str:
    labels = result.settings.get("segments", {}).get("labels") or []
    names = result.settings.get("segments", {}).get("names") or []
    label = dict(zip(names, labels))
    k = result.k
    metrics = [f"{m}@{k}" for m in ("ndcg", "recall", "hit_rate")]
    head = "<tr><th>model</th><th>segment</th><th>users</th>" + "".join(f"<th>{_e(m)}</th>" for m in metrics) + \
        "</tr>"
    rows = []
    for name, model in _ranked(result):
        for segment, ests in model.segments.items():
            n = next(iter(ests.values())).n if ests else 0
            cells = [name, label.get(segment, segment), str(n)] + [_fmt(ests.get(m)) if ests.get(m) else ""
                                                                   for m in metrics]
            rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


# --- charts ----------------------------------------------------------------------------------------------------
def _ndcg_bars(result: EvaluationResult) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    models = [name for name, _ in _ranked(result)]
    fig = Figure(figsize=(max(6.0, 1.2 * len(models) * len(result.ks) / 2 + 3), 4.0), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(result.ks)
    for j, k in enumerate(result.ks):
        means, lows, highs = [], [], []
        for name in models:
            est = result.models[name].metrics[f"ndcg@{k}"]
            means.append(est.mean)
            lows.append(est.mean - est.low if est.low is not None else 0.0)
            highs.append(est.high - est.mean if est.high is not None else 0.0)
        xs = [i + (j - (len(result.ks) - 1) / 2) * width for i in range(len(models))]
        ax.bar(xs, means, width=width, yerr=[lows, highs], capsize=3, label=f"NDCG@{k}")
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylabel("NDCG")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _png(fig)


def _tradeoff(result: EvaluationResult) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    metric = result.main_metric
    for name, model in _ranked(result):
        est = model.metrics[metric]
        x = model.latency.get("single_ms_p50", model.latency["batch_ms_per_user_p50"])
        err = [[est.mean - est.low], [est.high - est.mean]] if est.low is not None and est.high is not None else None
        ax.errorbar([x], [est.mean], yerr=err, fmt="o", capsize=3)
        ax.annotate(name, (x, est.mean), textcoords="offset points", xytext=(6, 4), fontsize=9)
    single = all("single_ms_p50" in m.latency for m in result.models.values())
    ax.set_xlabel("single-user scoring latency p50 (ms)" if single else "batch scoring ms per user p50")
    ax.set_ylabel(metric)
    xs = [m.latency.get("single_ms_p50", m.latency["batch_ms_per_user_p50"]) for m in result.models.values()]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    return _png(fig)


# --- helpers ---------------------------------------------------------------------------------------------------
def _ranked(result: EvaluationResult, metric: str | None = None) -> list[tuple[str, object]]:
    metric = metric or result.main_metric
    return sorted(result.models.items(), key=lambda item: -_mean(item[1].metrics.get(metric)))


def _mean(est: Estimate | None) -> float:
    return est.mean if est is not None and est.mean == est.mean else float("-inf")


def _fmt(est: Estimate | None, ci: bool = True) -> str:
    if est is None or est.mean != est.mean:
        return "–"
    digits = 4 if abs(est.mean) < 10 else 1
    text = f"{est.mean:.{digits}f}"
    if ci and est.low is not None and est.high is not None:
        text += f" [{est.low:.{digits}f}, {est.high:.{digits}f}]"
    return text


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _kv(mapping: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in mapping.items())
