"""Write BENCHMARKS.md from the result files in bench/results/ (numbers are never typed by hand).

Run: .venv/bin/python bench/render.py   (each bench script writes its own JSON first)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"{c:,}" if isinstance(c, int) else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def ingest() -> str:
    r = load("ingest")
    if not r:
        return ""
    rows, verdicts = [], []
    for fmt, f in r["formats"].items():
        rows.append([fmt, f["file_mb"], f["duckdb_plain_s"], f["streamrec_s"], f["duckdb_plain_events_per_s"],
                     f["streamrec_events_per_s"], f"**{f['ratio_vs_duckdb']:.2f}×**", f["stored"], f["duplicates"],
                     f["quarantined"]])
        verdicts.append(f"{fmt}: {verdict(f['ratio_vs_duckdb'] >= 0.5)}")
    return "\n".join([
        "## Ingestion: validated, deduplicated, atomic vs DuckDB's plain load (issue 2)",
        "",
        f"`{r['command']}` — {r['events']:,} events ({r.get('cores')} cores, DuckDB {r.get('duckdb')}). Both sides "
        "load the same file into a fresh DuckDB database file in the same run, interleaved, best of the repeats. "
        "DuckDB's side is `CREATE TABLE AS SELECT * FROM read_csv/read_parquet` (auto-detected types, no checks); "
        "streamrec's side is the whole `ingest_file`: checksum and manifest, every validation rule, quarantine, "
        "dedup within the file and against the store, one transaction.",
        "",
        table(["format", "MB", "DuckDB s", "streamrec s", "DuckDB ev/s", "streamrec ev/s", "ratio", "stored",
                "duplicates", "quarantined"], rows),
        "",
        f"Target ≥ 0.5× DuckDB's rate — {'; '.join(verdicts)}.",
        "",
    ])


def generate() -> str:
    r = load("generate")
    if not r:
        return ""
    rows = [[x["size"], x["events"], x["seconds"], x["events_per_s"], x["peak_rss_mib"], x["disk_mib"],
             x["peer_seconds"], x["ratio_to_peer"]] for x in r["results"]]
    big = next((x for x in r["results"] if x["size"] == "20M"), None)
    summary = (f"20M events in {big['seconds']:.0f} s (target < 600 s: {verdict(big['seconds'] < 600)}), peak "
               f"{big['peak_rss_mib']:.0f} MiB (target < 8192 MiB: {verdict(big['peak_rss_mib'] < 8192)})."
               if big else "")
    return "\n".join([
        "## Synthetic world generation (issue 2)",
        "",
        f"`{r['command']}` ({r['machine']['cores']} cores). Peer: re-encoding the same events' Parquet parts, "
        "measured in the same run (the ratio is steadier than wall time on a shared machine).",
        "",
        table(["size", "events", "seconds", "events/s", "peak RSS MiB", "disk MiB", "peer s", "× peer"], rows),
        "",
        summary,
        "",
    ])


def movielens() -> str:
    r = load("load_movielens")
    if not r:
        return ""
    e2e = r.get("end_to_end") or {}
    rows = [["load (MovieLens files → data set)", r["seconds"], r["rows_per_s"]]]
    if e2e:
        rows += [["ingest (validate, dedup, store)", e2e["ingest_s"], round(r["rows"] / e2e["ingest_s"])],
                 ["preprocess (bots, sessions, weights, k-core)", e2e["preprocess_s"],
                  round(r["rows"] / e2e["preprocess_s"])]]
    return "\n".join([
        "## Loading ml-latest-small end to end (issue 2)",
        "",
        f"`{r['command']}` — {r['rows']:,} ratings, {r['counts']['titles']:,} titles, {r['counts']['users']:,} users, "
        f"{r['counts']['tags']:,} tags. Peer: pyarrow reading ratings.csv and writing it as Parquet unchanged: "
        f"{r['peer_seconds']} s (load = {r['ratio_vs_peer']}× peer).",
        "",
        table(["stage", "seconds", "rows/s"], rows),
        "",
        (f"Stored {e2e['stored']:,}, quarantined {e2e['quarantined']:,}; {e2e['interactions']:,} interactions, "
         f"{e2e['bot_users']} bot users." if e2e else ""),
        "",
    ])


SECTIONS = [ingest, generate, movielens]


def extra_sections() -> list:
    """Sections other modules add (bench/render_*.py define `section() -> str`)."""
    import importlib.util

    found = []
    for path in sorted((ROOT / "bench").glob("render_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # dataclasses in a render module look their module up by name
        spec.loader.exec_module(module)
        found.append(module.section)
    return found


def main() -> None:
    parts = [
        "# Benchmarks",
        "",
        "Generated by `bench/render.py` from `bench/results/*.json`; each section names the command that made "
        "its numbers. Machine: 2 cores, 24 GiB, shared with other work, so every speed figure is paired with a "
        "peer measured in the same run and the ratio is the number to read.",
        "",
    ]
    for section in SECTIONS + extra_sections():
        text = section()
        if text:
            parts.append(text)
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    import readme_table

    if readme_table.update():
        print(f"wrote the key table of {ROOT / 'README.md'}")


if __name__ == "__main__":
    main()
