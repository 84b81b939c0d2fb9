/* Experiments: per experiment the variants, metrics with intervals, treatment − control over the daily looks (fixed-
   horizon interval and sequential confidence sequence), the sample-ratio check and the decision. */
"use strict";

function interval(e) { return e ? `${SR.num(e.value, 4)} [${SR.num(e.low, 4)}, ${SR.num(e.high, 4)}]` : "—"; }

function diffChart(canvasId, series, control, variant, metric, i, level) {
  const labels = series.t.map((t) => t.slice(0, 16).replace("T", " "));
  const c = i * 2;
  SR.chart(canvasId, "line", labels, [
    {label: `${variant} − ${control}`, data: series.diff, borderColor: SR.color(c), borderWidth: 2, fill: false},
    {label: `${level} interval`, data: series.low, borderColor: SR.color(c, 0.4), borderWidth: 1, pointRadius: 0,
     fill: false},
    {label: "interval high", data: series.high, borderColor: SR.color(c, 0.4), borderWidth: 1, pointRadius: 0,
     backgroundColor: SR.color(c, 0.15), fill: "-1"},
    {label: "confidence sequence", data: series.seq_low, borderColor: SR.color(c + 3, 0.5), borderDash: [4, 3],
     borderWidth: 1, pointRadius: 0, fill: false},
    {label: "sequence high", data: series.seq_high, borderColor: SR.color(c + 3, 0.5), borderDash: [4, 3],
     borderWidth: 1, pointRadius: 0, fill: false},
  ], {scales: {y: {title: {display: true, text: "Δ " + metric}}},
      plugins: {legend: {labels: {filter: (item) => !item.text.endsWith(" high")}}}});
}

function renderExperiment(x, i) {
  const verdict = x.decision ? x.decision.verdict : x.status;
  const head = SR.el("h2", {}, x.name + " ", SR.el("span", {class: "badge " + SR.slug(verdict), text: verdict}),
                     x.decision && x.decision.winner ? SR.el("span", {class: "badge ship", text: x.decision.winner})
                                                     : null);
  const box = SR.el("section", {class: "experiment", "data-experiment": x.name}, head);
  if (x.note) box.append(SR.el("p", {class: "muted", text: x.note}));
  if (x.status !== "analysed") {
    box.append(SR.el("p", {class: "note", text: x.message || x.status}));
    return box;
  }
  const users = x.variants.reduce((s, v) => s + (v.users || 0), 0);
  box.append(SR.el("p", {class: "muted", text: `as of ${SR.when(x.at)} UTC (data time) · started ` +
    `${SR.when(x.start).slice(0, 10)} · ${x.looks} of ${x.planned_looks} daily looks · control ${x.control} · ` +
    `primary metric ${x.primary_metric} · α = ${x.alpha}`}));
  box.append(SR.el("div", {class: "cards"},
    SR.card("users", "users", SR.num(users), x.variants.map((v) => `${v.name} ${SR.num(v.users)}`).join(", ")),
    SR.card("srm", "sample ratio p", SR.num(x.srm.p_value, 3), x.srm.blocked ? "MISMATCH: blocked" : "no mismatch"),
    SR.card("decision", "decision", verdict, x.decision.winner ? "winner " + x.decision.winner : "")));
  box.append(SR.el("h3", {text: "Why"}), SR.el("ul", {}, x.decision.reasons.map((r) => SR.el("li", {text: r}))));
  const total = x.variants.reduce((s, v) => s + v.weight, 0);
  box.append(SR.el("h3", {text: "Variants"}), SR.table(["variant", "allocation", "users", "expected"],
    x.variants.map((v) => [v.name, SR.pct(v.weight / total), SR.num(v.users), SR.num(Math.round(v.expected))]),
    [1, 2, 3]));
  const level = `${Math.round(100 * (1 - x.alpha))}%`;
  box.append(SR.el("h3", {text: `Metrics per variant (${level} intervals)`}), SR.table(
    ["metric", ...x.variants.map((v) => v.name)],
    x.metrics_order.map((m) => [m, ...x.variants.map((v) => interval(x.estimates[m][v.name]))])));
  box.append(SR.el("h3", {text: "Treatment − control"}), SR.table(
    ["metric", "variant", "difference", "relative", "interval", "sequence", "p naive (Holm)", "p sequential (Holm)"],
    x.comparisons.map((c) => [c.metric, c.variant, SR.num(c.diff, 4),
      c.relative === null ? "—" : (c.relative >= 0 ? "+" : "") + SR.pct(c.relative, 2),
      `[${SR.num(c.low, 4)}, ${SR.num(c.high, 4)}]`, `[${SR.num(c.seq_low, 4)}, ${SR.num(c.seq_high, 4)}]`,
      SR.num(c.p_holm, 3), SR.num(c.p_sequential_holm, 3)]), [2, 3, 6, 7]));
  const grid = SR.el("section", {class: "grid"});
  box.append(SR.el("h3", {text: "Over time"}), grid);
  const charts = [];
  x.metrics_order.forEach((m) => {
    const id = `chart-x${i}-${SR.slug(m)}`;
    grid.append(SR.el("figure", {}, SR.el("figcaption", {text: `${m}: treatment − control per look (band: ` +
      `${level} interval; dashed: sequential confidence sequence)`}),
      SR.el("div", {class: "chart"}, SR.el("canvas", {id, "data-metric": m}))));
    charts.push(() => x.treatments.forEach((v, j) => {
      if (j === 0) diffChart(id, x.over_time[m][v], x.control, v, m, j, level);
    }));
  });
  const exposures = `chart-x${i}-exposures`;
  grid.append(SR.el("figure", {}, SR.el("figcaption", {text: "Exposures per day by variant"}),
    SR.el("div", {class: "chart"}, SR.el("canvas", {id: exposures, "data-metric": "exposures"}))));
  charts.push(() => SR.chart(exposures, "bar", x.exposures.days,
    SR.series(Object.entries(x.exposures.by_variant), "bar"), {scales: {y: {beginAtZero: true}}}));
  if (x.guardrails.length) {
    box.append(SR.el("h3", {text: "Guardrails (measured by this server)"}), SR.table(
      ["guardrail", "bounds", ...x.treatments],
      x.guardrails.map((g) => [g.metric, `min ${SR.num(g.min)}, max ${SR.num(g.max)}`,
                               ...x.treatments.map((v) => SR.num(g.values[v]))])));
  }
  box.draw = () => charts.forEach((draw) => draw());
  return box;
}

SR.run("experiments", (d) => {
  const list = d.experiments;
  SR.note("empty", list.length ? "" : "No experiments yet: none is configured ([[experiments]] in streamrec.toml, " +
          "or PUT /v1/admin/experiments) and the exposure log is empty.");
  const boxes = list.map(renderExperiment);
  SR.fill("experiments", boxes);
  boxes.forEach((b) => { if (b.draw) b.draw(); });
});
