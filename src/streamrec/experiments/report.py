"""The HTML report of an experiment analysis: one self-contained page (charts as embedded PNGs)."""

from __future__ import annotations

import math
from pathlib import Path

from streamrec.evaluation.html import CSS, escape as _e, img as _img, png as _png
from streamrec.experiments.analysis import AnalysisResult, LookPoint
from streamrec.experiments.stats import METRICS


def _n(x: float, digits: int = 4) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _p(x: float) -> str:
    return "—" if not math.isfinite(x) else (f"{x:.2e}" if x < 1e-3 else f"{x:.4f}")


def write_report(result: AnalysisResult, path: Path | str) -> Path:
    """Write the analysis as one HTML page; returns its path.

    Sections: the decision and its reasons; users per variant and the SRM check; per-variant metrics with intervals;
    treatment − control per metric (interval, naive and sequential p-values, Holm-adjusted, CUPED reduction);
    one chart per metric of the difference over time, its fixed-horizon interval and the sequential confidence
    sequence; guardrails.
    """
    plan = result.plan
    level = f"{1 - plan.alpha:.0%}"
    d = result.decision
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Experiment {_e(plan.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Experiment {_e(plan.name)}</h1>",
        f"<p>As of {_e(result.at.isoformat(sep=' '))} UTC; started {_e(result.start.date().isoformat())}; "
        f"{len(result.looks)} daily looks of {result.planned_looks} planned. Control: {_e(plan.control_variant)}; "
        f"primary metric: {_e(plan.primary_metric)} (should {_e(plan.direction)}); α = {plan.alpha:g}.</p>",
        f"<h2>Decision: {_e(d.verdict.value)}" + (f" ({_e(d.winner)})" if d.winner else "") + "</h2>",
        "<ul>" + "".join(f"<li>{_e(r)}</li>" for r in d.reasons) + "</ul>",
        "<h2>Users and sample ratio</h2>",
        _table(["variant", "allocation", "users", "expected"],
               [[v, f"{w / sum(plan.variants.values()):.1%}", f"{result.users[v]:,}",
                 f"{result.srm.expected[v]:,.0f}"] for v, w in plan.variants.items()]),
        f"<p>SRM chi-square = {result.srm.statistic:.3g}, p = {_p(result.srm.p_value)} "
        f"(blocks conclusions below {plan.srm_alpha:g}): "
        f"<b>{'MISMATCH — results blocked' if result.srm.blocked else 'no mismatch'}</b>. "
        + "; ".join(f"{k}: {v:,} users left out" for k, v in result.excluded.items() if v) + "</p>",
        f"<h2>Metrics per variant ({level} intervals)</h2>",
        _table(["metric", *plan.variants],
               [[f"{m} <small>({_e(METRICS[m].doc)})</small>",
                 *[f"{_n(e.value)} [{_n(e.low)}, {_n(e.high)}]"
                   for e in (result.variants[v][m] for v in plan.variants)]]
                for m in plan.all_metrics], raw=True),
        f"<h2>Treatment − control ({level} intervals)</h2>",
        "<p>Naive: the fixed-horizon test at this look (Welch's t-test on CUPED-adjusted values for means, "
        "two-proportion z-test for rates, delta-method z-test for CTR). Sequential: the mSPRT p-value calibrated to "
        "the planned looks (the decision's), with its confidence sequence; always-valid: Johari et al.'s p-value "
        "for unlimited looks. Holm: adjusted across every metric and treatment.</p>",
        _table(["metric", "variant", "difference", "relative", "interval", "unadjusted interval", "CUPED variance cut",
                "p naive", "p naive Holm", "p sequential", "p sequential Holm", "p always-valid", "sequence"],
               [[c.metric, c.variant, _n(c.diff), f"{c.relative:+.2%}" if math.isfinite(c.relative) else "—",
                 f"[{_n(c.low)}, {_n(c.high)}]", f"[{_n(c.raw_low)}, {_n(c.raw_high)}]",
                 f"{c.cuped_reduction:.1%}" if c.cuped_reduction is not None else "—", _p(c.p_value), _p(c.p_holm),
                 _p(c.p_sequential), _p(c.p_sequential_holm), _p(c.p_always_valid),
                 f"[{_n(c.seq_low)}, {_n(c.seq_high)}]"] for c in result.comparisons]),
    ]
    if result.cuped:
        parts.append("<p>CUPED (θ pooled over variants, covariate from the pre-period): " + "; ".join(
            f"{m}: θ = {t:.3g}, variance −{r:.1%} (interval width ×{math.sqrt(max(1 - r, 0)):.2f})"
            for m, (t, r) in result.cuped.items()) + "</p>")
    parts.append("<h2>Over time</h2>")
    for m in plan.all_metrics:
        for v in plan.treatments:
            pts = [p for p in result.over_time if p.metric == m and p.variant == v]
            parts.append(f"<h3>{_e(m)}: {_e(v)} − {_e(plan.control_variant)}</h3>")
            if len(pts) >= 1:
                parts.append(_img(_chart(pts, m, level)))
            parts.append(_table(["look", "users", "difference", "interval", "sequence", "p naive", "p sequential"],
                                [[p.at.isoformat(sep=" ", timespec="minutes"), f"{p.users:,}", _n(p.diff),
                                  f"[{_n(p.low)}, {_n(p.high)}]", f"[{_n(p.seq_low)}, {_n(p.seq_high)}]",
                                  _p(p.p_value), _p(p.p_sequential)] for p in pts]))
    if plan.guardrails:
        parts.append("<h2>Guardrails</h2>")
        parts.append(_table(["guardrail", "bounds", *plan.treatments],
                            [[g.metric, f"min {g.min if g.min is not None else '—'}, "
                              f"max {g.max if g.max is not None else '—'}",
                              *[_n(result.guardrail_values.get(v, {}).get(g.metric, math.nan))
                                for v in plan.treatments]]
                             for g in plan.guardrails]))
    parts.append("</body></html>\n")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def _table(header: list[str], rows: list[list[str]], raw: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw and i == 0 else _e(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _chart(points: list[LookPoint], metric: str, level: str) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.add_subplot()
    x = [p.at for p in points]
    finite = [math.isfinite(p.seq_low) and math.isfinite(p.seq_high) for p in points]
    xs = [t for t, ok in zip(x, finite) if ok]
    if xs:
        ax.fill_between(xs, [p.seq_low for p, ok in zip(points, finite) if ok],
                        [p.seq_high for p, ok in zip(points, finite) if ok], alpha=0.15, color="tab:orange",
                        label="sequential confidence sequence")
    ax.fill_between(x, [p.low for p in points], [p.high for p in points], alpha=0.3, color="tab:blue",
                    label=f"{level} interval (fixed horizon)")
    ax.plot(x, [p.diff for p in points], marker="o", color="tab:blue", label="difference")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel(f"Δ {metric}")
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)
