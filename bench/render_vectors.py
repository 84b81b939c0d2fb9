"""BENCHMARKS.md section for bench/vectors.py: exact numpy vs faiss top-k latency, HNSW recall vs exact.

Found by bench/render.py (it calls `section()` of every bench/render_*.py); reads bench/results/vectors.json.
"""

from __future__ import annotations

from render import load, table as _table  # bench/ is on sys.path under render.py


def section() -> str:
    r = load("vectors")
    if r is None:
        return ""
    m, p = r["machine"], r["params"]
    lines = [
        "## Vector index: exact numpy vs faiss HNSW (storage/vectors)",
        "",
        f"`{r['command'].strip()}` — {m['cores']} cores ({m.get('cpu', '')}), numpy {m['numpy']}, faiss {m['faiss']}; "
        f"load average {m['load_average_at_start'][0]} at the start, {m.get('load_average_at_end', ['?'])[0]} at "
        f"the end (shared machine). Whole run {r['wall_seconds']:.0f} s. Synthetic ALS-like vectors, d = {p['dim']}: "
        "cluster centres plus noise, a decaying spectrum over the dimensions and log-normal norms (no downloads). "
        f"Latency: {p['queries']} single-query `search(q, k={p['k']})` calls through streamrec's API on one thread "
        f"(p50 / p99); recall@{p['k']}: the HNSW top {p['k']} of the same {p['queries']} queries against the exact "
        f"top {p['k']}. HNSW M = {p['m']}, efConstruction = {p['ef_construction']}.",
        "",
    ]
    rows = []
    for s in r["sizes"]:
        n = s["items"]
        e, f = s["exact"], s["faiss_flat"]
        rows.append([n, "exact (numpy)", "", "—", 1.0, e["p50_ms"], e["p99_ms"]])
        rows.append([n, "faiss flat", "", f["build_s"], f["recall"], f["p50_ms"], f["p99_ms"]])
        for h in s["hnsw"]:
            rows.append([n, f"faiss HNSW, {h['metric'].replace('_', ' ')}", h["ef_search"], h["build_s"],
                         h["recall"], h["p50_ms"], h["p99_ms"]])
    lines += [_table(["items", "index", "efSearch", "build s", f"recall@{p['k']}", "p50 ms", "p99 ms"], rows), ""]
    notes = []
    for s in r["sizes"]:
        best = max(s["hnsw"], key=lambda h: (h["recall"], -h["p50_ms"]), default=None)
        if best:
            notes.append(f"{s['items']:,} items: exact p50 {s['exact']['p50_ms']} ms; best HNSW recall "
                         f"{best['recall']:.3f} ({best['metric'].replace('_', ' ')}, efSearch {best['ef_search']}) "
                         f"at p50 {best['p50_ms']} ms (exact ÷ HNSW p50 = {s['exact']['p50_ms'] / best['p50_ms']:.1f}×)")
    if notes:
        lines += ["- " + "; ".join(notes) + "."]
    lines += ["- p99 figures of a few ms at every size are the shared machine's scheduling (load average above the "
              "core count during the run), not the indexes; p50 is the figure to compare. These vectors are hard "
              "for a graph (anisotropic, norms varying): on isotropic Gaussian vectors (the contract suite, 5,000 × 64) "
              "HNSW inner product reaches recall@10 ≥ 0.95 at efSearch 128."]
    if p.get("l2_max_items") and any(s["items"] > p["l2_max_items"] for s in r["sizes"]):
        lines += [f"- The L2-reduction graph was built only up to {p['l2_max_items']:,} items (its build is about "
                  "twice as slow) to keep the run short on 2 cores."]
    lines += [
        "- The exact index is the default (`make_vector_index(\"exact\")`) and the reference in the contract tests "
        "(tests/contract/test_vectors.py), which every backend passes; `structure=\"auto\"` uses faiss's flat index "
        "below `flat_below` items.",
        "",
    ]
    return "\n".join(lines)
