"""The README's key benchmark table, between its `<!-- key-benchmarks -->` markers, from bench/results/*.json.

Called by bench/render.py (so the README's numbers are rendered like BENCHMARKS.md's, never typed by hand).
"""

from __future__ import annotations

import re
from pathlib import Path

from render import ROOT, load, table, verdict  # bench/ is on sys.path under render.py

START, END = "<!-- key-benchmarks:start -->", "<!-- key-benchmarks:end -->"


def rows() -> list[list[object]]:
    out: list[list[object]] = []
    if (r := load("serving")) is not None:
        hot = r["at_70"]["recommendations"]
        out.append(["serving: recommendations vs the bare web framework (`/healthz`)",
                    f"{r['ratio']:.0%} ({r['max_rps']['recommendations']:,.0f} vs {r['max_rps']['healthz']:,.0f} "
                    f"req/s); p99 {hot['p99_ms']:.1f} ms at 70% load", verdict(r["ratio_met"] and r["p99_met"])])
    if (r := load("realtime")) is not None:
        best = max(w["events_per_s"] for w in r["worker_throughput"])
        out.append(["real time: a play to a changed list (p99)",
                    f"{r['freshness_embedded']['p99_ms']:.1f} ms embedded, {r['freshness_redis']['p99_ms']:.1f} ms "
                    f"Redis; worker {best:,.0f} events/s", verdict(all(r["met"].values()))])
    if (r := load("ingest")) is not None:
        ratios = {fmt: f["ratio_vs_duckdb"] for fmt, f in r["formats"].items()}
        out.append(["ingestion (validated, deduplicated, atomic) vs DuckDB's plain load",
                    ", ".join(f"{fmt} {x:.2f}×" for fmt, x in ratios.items()),
                    verdict(all(x >= 0.5 for x in ratios.values()))])
    if (r := load("pipeline")) is not None:
        best = r["best_single"]
        out.append(["accuracy: ranked pipeline vs the best single model (NDCG@10)",
                    f"{r['ndcg@10']['ranked pipeline']:.3f} vs {best['ndcg@10']:.3f} ({best['source']}), "
                    f"+{r['gain_vs_best_single']:.0%}", "measured"])
    if (r := load("scale")) is not None:
        big = max(r["results"], key=lambda x: x["events"])
        limit = r["targets"]["20M_total_seconds_max"]
        out.append([f"scale: {big['events'] / 1e6:.0f}M events end to end on 2 cores",
                    f"{big['total_seconds'] / 60:.1f} min, peak {big['peak_rss_mib'] / 1024:.1f} GiB",
                    verdict(big["total_seconds"] <= limit)])
    if (r := load("reliability")) is not None:
        s = r["summary"]
        out.append(["reliability: faults survived, events lost",
                    f"{s['faults']['survived']} faults, {s['bad_inputs']['files']} malformed files, "
                    f"{s['bad_inputs']['api_cases']:,} fuzzed requests; {s['events_lost']} events lost",
                    verdict(s["events_lost"] == 0)])
    return out


def update(readme: Path = ROOT / "README.md") -> bool:
    """Rewrite the table between the markers; False when the README has no markers."""
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    body = table(["what", "measured", "target"], rows())
    new = re.sub(re.escape(START) + ".*?" + re.escape(END),
                 lambda _: f"{START}\n{body}\n\nFrom `bench/results/` (see BENCHMARKS.md for each command and "
                           f"its peer).\n{END}", text, flags=re.S)
    readme.write_text(new)
    return True
