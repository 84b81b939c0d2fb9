/* Data: stored events per day, ingestion batches and their quality, feature drift, online quality (play rate per
   variant, concentration and coverage, served score drift), and the alerts they raise. */
"use strict";

SR.run("data", (d) => {
  SR.note("store-note", d.error ? d.error : "", Boolean(d.error));
  const stored = Object.values(d.volume.by_type).reduce((s, xs) => s + xs.reduce((a, b) => a + b, 0), 0);
  const read = d.batches.reduce((s, b) => s + b.read, 0);
  const quarantined = d.batches.reduce((s, b) => s + b.quarantined, 0);
  const drift = d.drift ? d.drift.features : [];
  const drifting = drift.filter((f) => f.status === "alert").length;
  const online = d.online;
  const alerts = d.alerts.concat(d.drift ? d.drift.alerts : [], online ? online.alerts : []);
  const conc = online ? online.concentration : {days: []};
  const lastDay = conc.days.length - 1;
  SR.fill("cards",
    SR.card("events", "stored events", SR.num(stored), `${d.volume.days.length} days`),
    SR.card("batches", "ingestion batches", SR.num(d.batches.length), "latest shown"),
    SR.card("rejected", "quarantined", SR.num(quarantined), `of ${SR.num(read)} rows read (${SR.pct(read ? quarantined / read : null, 2)})`),
    SR.card("alerts", "alerts", SR.num(alerts.filter((a) => a.severity === "alert").length),
            `${alerts.filter((a) => a.severity === "warn").length} warnings`),
    SR.card("drift", "drifting features", SR.num(drifting), `of ${drift.length} (PSI/KS)`),
    SR.card("coverage", "catalog coverage", lastDay >= 0 ? SR.pct(conc.coverage[lastDay], 1) : "—",
            lastDay >= 0 ? `${conc.days[lastDay]}: Gini ${SR.num(conc.gini[lastDay], 2)}` : "no served lists logged"),
    SR.card("scores", "score drift", online && online.scores ? online.scores.status : "—",
            online && online.scores ? `PSI ${SR.num(online.scores.psi, 3)}` : "not checked"));

  if (d.volume.days.length) {
    SR.chart("chart-volume", "bar", d.volume.days, SR.series(Object.entries(d.volume.by_type), "stack"),
             {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}});
  } else SR.empty("chart-volume", "no events stored yet");

  if (d.batches.length) {
    const labels = d.batches.map((b) => "#" + b.batch_id);
    SR.chart("chart-batches", "bar", labels, SR.series([["stored", d.batches.map((b) => b.stored)],
      ["duplicates", d.batches.map((b) => b.duplicates)], ["quarantined", d.batches.map((b) => b.quarantined)]],
      "bar"), {scales: {y: {type: "logarithmic", title: {display: true, text: "events (log scale)"}}}});
    const p = (x) => (x === null ? null : 100 * x);
    SR.chart("chart-quality", "line", labels, SR.series([
      ["rejected", d.batches.map((b) => p(b.rejection_rate))], ["late", d.batches.map((b) => p(b.late_share))],
      ["new titles", d.batches.map((b) => p(b.new_title_share))],
      ["worst null rate", d.batches.map((b) => (b.max_null ? p(b.max_null.rate) : null))]]),
      {scales: {y: {beginAtZero: true, title: {display: true, text: "%"}}}});
  } else {
    SR.empty("chart-batches", "no ingestion batches yet");
    SR.empty("chart-quality", "no ingestion batches yet");
  }

  const measured = drift.filter((f) => f.psi !== null);
  if (d.drift) {
    document.getElementById("drift-caption").textContent = `Feature drift (PSI): ${d.drift.current} against ` +
      d.drift.reference;
  }
  if (measured.length) {
    const th = d.drift.thresholds;
    SR.chart("chart-drift", "bar", measured.map((f) => f.name), [
      {label: "PSI", data: measured.map((f) => f.psi), backgroundColor: measured.map((f) =>
        f.status === "alert" ? "#dc2626" : f.status === "warn" ? "#d97706" : "#2563eb")},
      {type: "line", label: `warn ${th.psi_warn}`, data: measured.map(() => th.psi_warn), borderColor: "#d97706",
       borderDash: [4, 3], pointRadius: 0, borderWidth: 1},
      {type: "line", label: `alert ${th.psi_alert}`, data: measured.map(() => th.psi_alert), borderColor: "#dc2626",
       borderDash: [4, 3], pointRadius: 0, borderWidth: 1},
    ], {scales: {y: {beginAtZero: true}, x: {ticks: {autoSkip: false, maxRotation: 60, minRotation: 45}}}});
  } else SR.empty("chart-drift", d.drift_error || "no feature with enough values on both sides");

  renderOnline(d);

  SR.fill("alerts", alerts.length ? SR.table(["severity", "kind", "name", "value", "threshold", "detail"],
    alerts.map((a) => [SR.el("span", {class: "badge " + a.severity, text: a.severity}), a.kind, a.name,
                       SR.num(a.value, 4), SR.num(a.threshold, 4), a.detail]), [3, 4]) :
    SR.el("p", {class: "muted", text: "no alerts"}));
  SR.fill("batches", d.batches.length ? SR.table(
    ["batch", "source", "finished (UTC)", "read", "stored", "dup", "quarantined", "rejected", "reasons", "late",
     "new titles", "worst null"],
    [...d.batches].reverse().map((b) => ["#" + b.batch_id, b.source, SR.when(b.finished_at), SR.num(b.read),
      SR.num(b.stored), SR.num(b.duplicates), SR.num(b.quarantined), SR.pct(b.rejection_rate, 2),
      Object.entries(b.reasons).map(([r, n]) => `${r} ${n}`).join(", ") || "—", SR.pct(b.late_share, 2),
      SR.pct(b.new_title_share, 1), b.max_null ? `${b.max_null.column} ${SR.pct(b.max_null.rate, 1)}` : "—"]),
    [3, 4, 5, 6, 7, 9, 10]) : SR.el("p", {class: "muted", text: "no ingestion batches"}));
  SR.fill("drift", drift.length ? SR.table(["feature", "n reference", "n current", "PSI", "KS statistic", "KS p",
                                            "status"],
    drift.map((f) => [f.name, SR.num(f.n_reference), SR.num(f.n_current), SR.num(f.psi, 3),
                      SR.num(f.ks_statistic, 3), SR.num(f.ks_p, 2),
                      SR.el("span", {class: "badge " + f.status, text: f.status})]), [1, 2, 3, 4, 5]) :
    SR.el("p", {class: "muted", text: d.drift_error || "drift not computed"}));
});

// play rate per variant, concentration and coverage per day, served score drift (streamrec monitor's online checks)
function renderOnline(d) {
  const o = d.online;
  SR.note("online-note", d.online_error || (o && o.scores_note ? "score drift: " + o.scores_note : ""),
          Boolean(d.online_error));
  if (!o) {
    for (const id of ["chart-play-rate", "chart-concentration", "chart-scores"]) SR.empty(id, "not computed");
    SR.fill("scores");
    return;
  }
  document.getElementById("online-window").textContent =
    `the last ${o.recent_days} days of the logs: ${SR.num(o.served_lists)} served lists`;
  const p = (x) => (x === null ? null : 100 * x);
  const rates = o.play_rate;
  if (rates.days.length) {
    SR.chart("chart-play-rate", "line", rates.days,
      SR.series(Object.entries(rates.by_variant).map(([v, xs]) => [v, xs.map(p)])),
      {scales: {y: {beginAtZero: true, title: {display: true, text: "% of responses followed by a play"}}}});
  } else SR.empty("chart-play-rate", "no exposures logged (serve an experiment)");

  const c = o.concentration;
  const top = `top ${SR.num(100 * c.top_fraction)}% share`;
  if (c.days.length) {
    const th = o.thresholds;
    SR.chart("chart-concentration", "line", c.days, SR.series([["coverage", c.coverage.map(p)],
      ["Gini", c.gini.map(p)], [top, c.top_share.map(p)]]).concat([
      {label: `max ${top} ${SR.pct(th.max_top_share, 0)}`, data: c.days.map(() => 100 * th.max_top_share),
       borderColor: "#dc2626", borderDash: [4, 3], pointRadius: 0, borderWidth: 1}]),
      {scales: {y: {beginAtZero: true, max: 100, title: {display: true, text: "%"}}}});
  } else SR.empty("chart-concentration", "no served lists logged (serving.served_sample)");

  const s = o.scores;
  if (s && s.psi !== null) {
    document.getElementById("scores-caption").textContent = `Served score drift against the training-time ` +
      `reference of ${s.reference}`;
    const colour = s.status === "alert" ? "#dc2626" : s.status === "warn" ? "#d97706" : "#2563eb";
    const th = o.thresholds;
    const mark = (label, data, colour) => ({type: "line", label, data, borderColor: colour, backgroundColor: colour,
      pointStyle: "line", pointRadius: 40, pointBorderWidth: 3, showLine: false, order: 0});
    SR.chart("chart-scores", "bar", ["PSI", "KS statistic"], [
      {label: "score drift", data: [s.psi, s.ks_statistic], backgroundColor: colour, order: 1},
      mark(`PSI warn ${th.psi_warn}`, [th.psi_warn, null], "#d97706"),
      mark(`PSI alert ${th.psi_alert}`, [th.psi_alert, null], "#111827"),
      mark(`KS min effect ${th.ks_min_effect}`, [null, th.ks_min_effect], "#7c3aed"),
    ], {scales: {y: {beginAtZero: true}}});
  } else SR.empty("chart-scores", s ? "too few scores on a side" : o.scores_note || "no score drift");
  SR.fill("scores", s ? SR.table(["scores", "n reference", "n served", "PSI", "KS statistic", "KS p", "status"],
    [[s.name, SR.num(s.n_reference), SR.num(s.n_current), SR.num(s.psi, 3), SR.num(s.ks_statistic, 3),
      SR.num(s.ks_p, 2), SR.el("span", {class: "badge " + s.status, text: s.status})]], [1, 2, 3, 4, 5]) : []);
}
