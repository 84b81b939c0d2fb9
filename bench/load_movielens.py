"""Benchmark: load a MovieLens release end to end into a data set folder.

    .venv/bin/python bench/load_movielens.py [PATH] [--fake-rows N]

PATH defaults to ../shared/data/ml-latest-small (relative to the repository root). --fake-rows N instead builds
an ML-25M-shaped folder of N random ratings (ratings.csv + movies.csv) in a temp dir, to check scale without the
real files. The peer, measured in the same run, is the least any loader must do: pyarrow reads ratings.csv and
writes it unchanged to Parquet (zstd). Each is run --repeat times (default 3) and the fastest run is reported
(the first run also pays one-time start-up costs). Results go to bench/results/load_movielens.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from streamrec.data.dataset import Dataset  # noqa: E402
from streamrec.data.movielens import movielens_to_dataset  # noqa: E402


def fake_release(folder: Path, rows: int, seed: int = 0) -> Path:
    """An ML-25M-shaped folder: ratings.csv sorted by user then movie, and a movies.csv for every movie."""
    rng = np.random.default_rng(seed)
    users, movies = max(rows // 150, 1), max(rows // 400, 1)
    ratings = pa.table(
        {
            "userId": np.sort(rng.integers(1, users + 1, rows)),
            "movieId": rng.integers(1, movies + 1, rows),
            "rating": rng.integers(1, 11, rows) / 2,
            "timestamp": rng.integers(789_652_009, 1_574_327_703, rows),
        }
    )
    folder.mkdir(parents=True)
    pacsv.write_csv(ratings, folder / "ratings.csv", pacsv.WriteOptions(quoting_style="none"))
    ids = np.arange(1, movies + 1)
    titles = pa.table(
        {
            "movieId": ids,
            "title": [f"Movie {i} ({1950 + i % 70})" for i in ids],
            "genres": np.where(ids % 7 == 0, "(no genres listed)", "Comedy|Drama"),
        }
    )
    pacsv.write_csv(titles, folder / "movies.csv")
    return folder


def check_output(folder: Path, rows: int) -> None:
    """The data set is complete and its events are in time order (checked outside the timed part)."""
    events = Dataset.open(folder).events()
    ts = events.column("ts")
    assert events.num_rows == rows, (events.num_rows, rows)
    assert rows < 2 or pc.all(pc.less_equal(ts.slice(0, rows - 1), ts.slice(1))).as_py(), "events out of time order"


def peer(ratings_csv: Path, out: Path) -> float:
    start = time.perf_counter()
    table = pacsv.read_csv(ratings_csv)
    pq.write_table(table, out, compression="zstd")
    return time.perf_counter() - start


def ingest_and_preprocess(dataset: Path, data_dir: Path) -> dict:
    """The rest of the path a user runs: ingest the data set into the event store, then preprocess it."""
    from streamrec.events.runner import ingest_paths
    from streamrec.preprocess.pipeline import run_preprocess
    from streamrec.settings import load_settings
    from streamrec.storage.events import open_event_store

    settings = load_settings(data_dir=data_dir)
    with open_event_store(settings) as store:
        start = time.perf_counter()
        summary = ingest_paths(store, [dataset], settings.ingest)
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        report = run_preprocess(store.con, settings.preprocess)
        preprocess_s = time.perf_counter() - start
    return {"ingest_s": round(ingest_s, 3), "stored": summary.total("stored"),
            "quarantined": summary.total("quarantined"), "preprocess_s": round(preprocess_s, 3),
            "interactions": report.interactions_out, "bot_users": report.bot_users}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(ROOT.parent / "shared" / "data" / "ml-latest-small"))
    parser.add_argument("--fake-rows", type=int, default=0, help="benchmark a generated ML-25M-shaped folder")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest is reported (all are listed)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load_movielens.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ml-") as tmp:
        path = fake_release(Path(tmp) / "ml-25m", args.fake_rows) if args.fake_rows else Path(args.path)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            info = movielens_to_dataset(path, Path(tmp) / "dataset", overwrite=True)
            times.append(time.perf_counter() - start)
        check_output(Path(tmp) / "dataset", info.counts["events"])
        end_to_end = ingest_and_preprocess(Path(tmp) / "dataset", Path(tmp) / "store")
        ratings_csv = path / "ratings.csv" if (path / "ratings.csv").is_file() else None
        peer_s = min(peer(ratings_csv, Path(tmp) / "peer.parquet") for _ in range(args.repeat)) if ratings_csv else None
    seconds = min(times)

    rows = info.counts["events"]
    result = {
        "benchmark": "load_movielens",
        "command": " ".join(["python", "bench/load_movielens.py", *sys.argv[1:]]),
        "source": info.source,
        "path": "fake (generated)" if args.fake_rows else str(path),
        "rows": rows,
        "counts": info.counts,
        "seconds": round(seconds, 3),
        "all_seconds": [round(t, 3) for t in times],
        "read_s": info.params.get("read_s"),
        "rows_per_s": round(rows / seconds),
        "peer": "pyarrow read_csv(ratings.csv) + write_parquet(zstd), no conversion",
        "peer_seconds": round(peer_s, 3) if peer_s else None,
        "ratio_vs_peer": round(seconds / peer_s, 2) if peer_s else None,
        "end_to_end": end_to_end,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
