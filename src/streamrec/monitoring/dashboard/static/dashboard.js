/* streamrec dashboard: helpers shared by the pages (fetching, formatting, DOM, charts). Text from the API is only
   ever set as textContent, never as HTML. */
"use strict";

const SR = (() => {
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;

  function color(i, alpha) {
    const hex = palette[i % palette.length];
    if (alpha === undefined) return hex;
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function num(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "—";
    if (Number.isInteger(x) && digits === undefined) return x.toLocaleString("en-US");
    const d = digits === undefined ? 3 : digits;
    const a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
    return Number(x.toPrecision(Math.max(d, 1))).toLocaleString("en-US", {maximumFractionDigits: 6});
  }

  function pct(x, digits) {
    return x === null || x === undefined ? "—" : (100 * x).toFixed(digits === undefined ? 1 : digits) + "%";
  }

  function clock(ms) { return new Date(ms).toISOString().slice(11, 19); }
  function when(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : "—"; }
  function slug(text) { return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-"); }

  function card(key, label, value, sub) {
    return el("div", {class: "card", "data-key": key},
      el("div", {class: "label", text: label}), el("div", {class: "value", text: value}),
      sub ? el("div", {class: "sub", text: sub}) : null);
  }

  function table(headers, rows, numeric) {
    const isNum = new Set(numeric || []);
    return el("div", {class: "scroll"}, el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {text: h})))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => el("td", {class: isNum.has(i) ? "num" : null},
        c instanceof Node ? c : (c === null || c === undefined ? "—" : String(c)))))))));
  }

  function fill(id, ...nodes) {
    const box = document.getElementById(id);
    box.replaceChildren(...nodes.flat());
    return box;
  }

  function note(id, text, isError) {
    const box = document.getElementById(id);
    box.hidden = !text;
    box.textContent = text || "";
    box.classList.toggle("error", Boolean(isError));
  }

  function empty(canvasId, message) {
    const canvas = document.getElementById(canvasId);
    const old = Chart.getChart(canvas);
    if (old) old.destroy();
    canvas.hidden = true;
    let msg = canvas.parentElement.querySelector(".empty");
    if (!msg) { msg = el("div", {class: "empty"}); canvas.parentElement.append(msg); }
    msg.textContent = message;
  }

  function chart(canvasId, type, labels, datasets, options) {
    const canvas = document.getElementById(canvasId);
    canvas.hidden = false;
    const msg = canvas.parentElement.querySelector(".empty");
    if (msg) msg.remove();
    const old = Chart.getChart(canvas);
    if (old && old.config.type === type) {
      old.data.labels = labels;
      old.data.datasets = datasets;
      old.update("none");
      return old;
    }
    if (old) old.destroy();
    return new Chart(canvas, {type, data: {labels, datasets},
      options: Object.assign({interaction: {mode: "index", intersect: false}, spanGaps: true,
                              elements: {point: {radius: 2}}}, options || {})});
  }

  function series(entries, kind) {
    return entries.map(([label, data], i) => (Object.assign({label, data, borderColor: color(i),
      backgroundColor: kind === "bar" ? color(i, 0.75) : color(i, 0.15), borderWidth: kind === "bar" ? 0 : 2},
      kind === "stack" ? {backgroundColor: color(i, 0.75), stack: "s"} : {})));
  }

  async function load(page) {
    const response = await fetch("api/" + page, {cache: "no-store"});
    if (!response.ok) throw new Error(`GET api/${page}: HTTP ${response.status}`);
    return response.json();
  }

  // fetch the page's JSON and render it, then every `everyMs` (if given); body[data-ready] after the first render
  function run(page, render, everyMs) {
    let busy = false;
    async function tick() {
      if (busy) return;
      busy = true;
      try {
        const data = await load(page);
        render(data);
        document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
        document.body.dataset.ready = "1";
      } catch (err) {
        console.error("dashboard:", err);
        document.body.dataset.error = String(err);
      } finally {
        busy = false;
      }
    }
    tick();
    if (everyMs) setInterval(tick, everyMs);
  }

  return {color, el, num, pct, clock, when, slug, card, table, fill, note, empty, chart, series, run};
})();
