"""Benchmark: validated, deduplicated ingestion of a 5M-event file vs DuckDB's own plain read of it.

Both sides load the same file into a fresh DuckDB database file in the same run:
  plain DuckDB : CREATE TABLE t AS SELECT * FROM read_csv / read_parquet (auto-detected types, no checks)
  streamrec    : checksum + manifest, staging with rejects, every validation rule, quarantine, dedup against the
                 store and within the file, one atomic transaction
Target (issue 2): streamrec's rate >= 0.5x DuckDB's rate. Run: .venv/bin/python bench/ingest.py [--events N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
from streamrec.storage.events.duckdb import DuckDBEventStore

TYPES = np.array(["impression", "play", "progress", "complete", "rating", "add_to_list"])


def make_events(n: int, seed: int = 0) -> pa.Table:
    """n events shaped like a streaming service's: mostly impressions and plays, 1% duplicates, 0.5% invalid."""
    rng = np.random.default_rng(seed)
    type_idx = rng.choice(len(TYPES), size=n, p=[0.55, 0.2, 0.12, 0.08, 0.03, 0.02])
    ids = np.arange(n)
    dup = rng.random(n) < 0.01
    ids[dup] = rng.integers(0, n, dup.sum())
    ts = np.datetime64("2024-01-01T00:00:00", "us") + rng.integers(0, 180 * 86400 * 10**6, n).astype("timedelta64[us]")
    position = np.where(type_idx == 0, rng.integers(0, 40, n), -1)
    fraction = np.where(np.isin(type_idx, [2, 3]), rng.random(n), np.nan)
    rating = np.where(type_idx == 4, rng.integers(1, 6, n).astype(float), np.nan)
    types = TYPES[type_idx].astype(object)
    bad = rng.random(n) < 0.005
    types[bad] = "bogus"
    return pa.table({
        "event_id": pa.array(np.char.add("e", ids.astype(str))),
        "user_id": pa.array(np.char.add("u", rng.zipf(1.3, n).clip(0, 200_000).astype(str))),
        "item_id": pa.array(np.char.add("t", rng.zipf(1.2, n).clip(0, 30_000).astype(str))),
        "type": pa.array(types, pa.string()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "request_id": pa.array(np.where(type_idx < 2, np.char.add("r", (ids // 10).astype(str)), None)),
        "position": pa.array(np.where(position >= 0, position, None), pa.int32()),
        "row": pa.array(np.where(type_idx == 0, "Top Picks", None)),
        "device": pa.array(rng.choice(["tv", "mobile", "web"], n)),
        "fraction": pa.array(fraction, pa.float64(), from_pandas=True),
        "rating": pa.array(rating, pa.float64(), from_pandas=True),
    })


def plain_duckdb(path: Path, workdir: Path, reader: str) -> float:
    db = workdir / "plain.duckdb"
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}('{path}')")
    con.close()
    return time.perf_counter() - started


def streamrec_ingest(path: Path, workdir: Path) -> tuple[float, dict]:
    db = workdir / "streamrec.duckdb"
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    with DuckDBEventStore(DuckDBEventStoreConfig(), db) as store:
        report = store.ingest_file(path, IngestConfig(unknown_titles="accept"))
    return time.perf_counter() - started, report.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="best of N for each side")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ingest.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        table = make_events(args.events)
        csv_path, parquet_path = workdir / "events.csv", workdir / "events.parquet"
        pacsv.write_csv(table, csv_path)
        pq.write_table(table, parquet_path)
        results = {"command": f"python bench/ingest.py --events {args.events}", "events": args.events,
                   "cores": os.cpu_count(), "duckdb": duckdb.__version__, "formats": {}}
        for fmt, path, reader in (("csv", csv_path, "read_csv"), ("parquet", parquet_path, "read_parquet")):
            plains, runs = [], []
            for _ in range(args.repeat):  # interleaved, so both sides see the same machine load
                plains.append(plain_duckdb(path, workdir, reader))
                runs.append(streamrec_ingest(path, workdir))
            plain = min(plains)
            ours, report = min(runs, key=lambda r: r[0])
            results["formats"][fmt] = {
                "file_mb": round(path.stat().st_size / 2**20, 1),
                "duckdb_plain_s": round(plain, 2), "streamrec_s": round(ours, 2),
                "duckdb_plain_events_per_s": round(args.events / plain), "streamrec_events_per_s": round(args.events / ours),
                "ratio_vs_duckdb": round(plain / ours, 3),
                "stored": report["stored"], "duplicates": report["duplicates"], "quarantined": report["quarantined"],
            }
            print(fmt, json.dumps(results["formats"][fmt]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
