/* Overview: traffic, latency, errors and fallbacks over time, from /dashboard/api/overview every 5 s. */
"use strict";

SR.run("overview", (d) => {
  document.getElementById("interval").textContent = SR.num(d.interval_s);
  const t = d.totals;
  const rps = d.t.length ? Object.values(d.requests_per_s).reduce((s, xs) => s + (xs[xs.length - 1] || 0), 0) : null;
  const cov = d.coverage.length ? d.coverage[d.coverage.length - 1] : null;
  SR.fill("cards",
    SR.card("requests", "requests", SR.num(t.requests), `over the last ${SR.num(Math.round(t.seconds))} s`),
    SR.card("rps", "requests/s", rps === null ? "—" : SR.num(rps, 3), "latest interval"),
    SR.card("p50", "p50 latency", t.p50_ms === null ? "—" : SR.num(t.p50_ms, 3) + " ms", "over the window"),
    SR.card("p99", "p99 latency", t.p99_ms === null ? "—" : SR.num(t.p99_ms, 3) + " ms", "over the window"),
    SR.card("errors", "errors", SR.num(t.errors_5xx + t.errors_4xx),
            `5xx ${SR.num(t.errors_5xx)} (${SR.pct(t.error_rate, 2)}), 4xx ${SR.num(t.errors_4xx)}`),
    SR.card("fallbacks", "fallbacks", SR.num(t.fallbacks), "responses from a fallback"),
    SR.card("coverage", "catalog coverage", SR.pct(cov), "titles recommended lately"),
    SR.card("model", "served model", d.served ? d.served.version : "none",
            d.served ? d.served.kind : (d.problem || "serving trending titles")));
  const have = d.t.length > 0;
  document.getElementById("waiting").hidden = have;
  const charts = ["chart-traffic", "chart-latency", "chart-errors", "chart-fallbacks"];
  if (!have) {
    charts.forEach((id) => SR.empty(id, "collecting samples…"));
  } else {
    const labels = d.t.map(SR.clock);
    const y = (title) => ({scales: {y: {beginAtZero: true, title: {display: true, text: title}}}});
    SR.chart("chart-traffic", "line", labels, SR.series(Object.entries(d.requests_per_s)), y("requests/s"));
    SR.chart("chart-latency", "line", labels, SR.series(Object.entries(d.latency_ms)), y("ms"));
    SR.chart("chart-errors", "line", labels, SR.series(Object.entries(d.errors_per_s)), y("errors/s"));
    const kinds = Object.entries(d.fallbacks_per_s);
    if (kinds.length) SR.chart("chart-fallbacks", "line", labels, SR.series(kinds), y("fallbacks/s"));
    else SR.empty("chart-fallbacks", "no fallback served");
  }
  SR.fill("routes", d.routes.length ? SR.table(["route", "requests", "errors", "p50 ms", "p99 ms"],
    d.routes.map((r) => [r.route, SR.num(r.requests), SR.num(r.errors), SR.num(r.p50_ms), SR.num(r.p99_ms)]),
    [1, 2, 3, 4]) : SR.el("p", {class: "muted", text: "no requests in the window yet"}));
}, 5000);
