"""Benchmark of `streamrec data generate`: events per second and peak memory at 1M and 20M events.

Each size runs in its own subprocess (so its peak RSS is its own), and the same subprocess times a peer on the
same events: re-encoding the written Parquet parts with the same writer settings (pure Arrow/Parquet work).
On a shared machine wall time swings with other load; cpu_seconds and the ratio to the peer are steadier.
Writes bench/results/generate.json.

    .venv/bin/python bench/generate.py                 # 1M and 20M
    .venv/bin/python bench/generate.py --sizes 1M      # only 1M
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES: dict[str, dict[str, int]] = {
    "1M": {"users": 10_000, "titles": 5_000, "days": 60, "events": 1_000_000},
    "20M": {"users": 140_000, "titles": 27_000, "days": 90, "events": 20_000_000},  # the ml20m preset
}
RESULTS = Path(__file__).resolve().parent / "results" / "generate.json"


def child(size: str, out: Path) -> dict:
    """Generate one size here and report time, rate, peak RSS and the peer's time."""
    import pyarrow.parquet as pq

    from streamrec.data.synthetic import WorldConfig, generate_world

    config = WorldConfig(seed=0, **SIZES[size])
    began = time.perf_counter()
    info = generate_world(config, out, overwrite=True)
    seconds = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_generate = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime  # includes imports and set-up (about a second)

    began = time.perf_counter()
    for part in sorted((out / "events").glob("*.parquet")):
        source = pq.ParquetFile(part)
        with pq.ParquetWriter(out / "peer.parquet", source.schema_arrow, compression="zstd") as writer:
            for group in range(source.num_row_groups):
                writer.write_table(source.read_row_group(group))
    peer = time.perf_counter() - began
    events = info.counts["events"]
    return {
        "size": size,
        "config": config.model_dump(mode="json", include={"users", "titles", "days", "events", "seed"}),
        "events": events,
        "sessions": info.params["sessions"],
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "events_per_s": round(events / seconds),
        "peak_rss_mib": round(peak_generate, 1),
        "disk_mib": round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1),
        "peer": "re-encode the same events' Parquet parts (read row groups, write zstd)",
        "peer_seconds": round(peer, 2),
        "ratio_to_peer": round(seconds / peer, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--child", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.out)), flush=True)
        return

    results = []
    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        for size in args.sizes:
            cmd = [sys.executable, __file__, "--child", size, "--out", str(work / size)]
            began = time.perf_counter()
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["wall_s"] = round(time.perf_counter() - began, 2)
            row["children_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
            print(f"{size}: {row['events']:,} events in {row['seconds']} s = {row['events_per_s']:,}/s, "
                  f"peak RSS {row['peak_rss_mib']} MiB, peer {row['peer_seconds']} s (x{row['ratio_to_peer']})")  # fmt: skip
            results.append(row)
            shutil.rmtree(work / size, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    import numpy
    import pyarrow

    report = {
        "benchmark": "synthetic world generation (streamrec.data.synthetic.generate_world)",
        "command": ".venv/bin/python bench/generate.py " + " ".join(["--sizes", *args.sizes]),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "pyarrow": pyarrow.__version__,
            "env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ},
        },
        "targets": {"20M_seconds_max": 600, "20M_peak_rss_mib_max": 8192},
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
