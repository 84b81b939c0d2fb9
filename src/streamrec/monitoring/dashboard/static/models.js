/* Models: the served model, registry versions with offline metrics and lineage, champion and challenger. */
"use strict";

SR.run("models", (d) => {
  const reg = d.registry;
  SR.fill("cards",
    SR.card("served", "served model", d.served ? d.served.version : "none",
            d.served ? `${d.served.kind} (${d.served.ref})` : (d.problem || "serving trending titles")),
    SR.card("champion", "champion", d.champion === null ? "—" : "v" + d.champion, "registry alias"),
    SR.card("challenger", "challenger", d.challenger === null ? "—" : "v" + d.challenger, "the rollback target"),
    SR.card("versions", "registered versions", SR.num(d.versions_total === undefined ? d.versions.length
                                                                                      : d.versions_total),
            reg.name));
  if (reg.error) SR.note("registry-note", "registry unavailable: " + reg.error, true);
  else if (!d.versions.length) SR.note("registry-note", `nothing registered yet at ${reg.where} (streamrec train ` +
                                       "registers models)");
  else SR.note("registry-note", d.problem ? "model problem: " + d.problem : "", Boolean(d.problem));
  const oldest = [...d.versions].reverse();
  if (oldest.length && d.metric_names.length) {
    SR.chart("chart-metrics", "bar", oldest.map((v) => "v" + v.version),
             SR.series(d.metric_names.map((m) => [m, oldest.map((v) => (m in v.metrics ? v.metrics[m] : null))]),
                       "bar"), {scales: {y: {beginAtZero: true}}});
  } else {
    SR.empty("chart-metrics", d.versions.length ? "no offline metrics recorded" : "no registered versions");
  }
  const servedVersion = d.served ? String(d.served.version) : null;
  SR.fill("versions", d.versions.length ? SR.table(
    ["version", "aliases", "model", "created (UTC)", "data snapshot", "code version", "run", ...d.metric_names,
     "description"],
    d.versions.map((v) => [
      "v" + v.version,
      SR.el("span", {}, v.aliases.map((a) => SR.el("span", {class: "badge " + SR.slug(a), text: a})),
            String(v.version) === servedVersion ? SR.el("span", {class: "badge served", text: "served"}) : null),
      v.model, SR.when(v.created), SR.el("code", {text: v.data_snapshot}), SR.el("code", {text: v.code_version}),
      SR.el("code", {text: v.run_id.slice(0, 12)}), ...d.metric_names.map((m) => SR.num(v.metrics[m], 4)),
      v.description]),
    d.metric_names.map((_, i) => 7 + i)) : SR.el("p", {class: "muted", text: "no versions"}));
  SR.fill("variants", d.variants.length ? SR.table(["experiment", "variant", "model ref", "loaded version"],
    d.variants.map((v) => [v.experiment, v.variant, v.ref, v.version])) :
    SR.el("p", {class: "muted", text: "no experiment variants served"}));
});
