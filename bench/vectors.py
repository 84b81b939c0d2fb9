"""Vector index: single-query top-k latency of exact numpy search vs faiss (HNSW, flat), and HNSW recall vs exact.

Synthetic ALS-like item vectors (no downloads): cluster centres plus noise, scaled by a decaying spectrum over the
dimensions (factor models concentrate variance in a few directions) and by a log-normal norm per item (popular
titles get longer factors), which makes maximum-inner-product search harder for a graph than isotropic noise.
Queries are drawn the same way (user factors live in the same space).

For each catalog size: build each index through streamrec's API (ExactIndex, FaissIndex flat, FaissIndex HNSW on
inner products and on L2 after the MIPS reduction), time `--queries` single-query `search(q, k)` calls on one
thread (p50/p99 ms), and HNSW recall@k against the exact top k for several efSearch values. Writes
bench/results/vectors.json.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/vectors.py
    .venv/bin/python bench/vectors.py --sizes 10000,100000 --queries 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from streamrec.storage.vectors import make_vector_index  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "vectors.json"


def als_like(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """`n` vectors around random centres, decaying spectrum over dimensions, log-normal norms."""
    spectrum = (1.0 / np.sqrt(1.0 + np.arange(dim))).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in chunks: no float64 temporaries of the whole catalog
        m = min(100_000, n - start)
        x = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.standard_normal((m, dim), dtype=np.float32)
        x *= spectrum
        x *= rng.lognormal(0.0, 0.3, m).astype(np.float32)[:, None]
        out[start:start + m] = x
    return out


def latencies(index, queries: np.ndarray, k: int) -> dict:
    """Single-query search times (ms): p50, p99, mean; a few warm-up calls first."""
    for q in queries[:5]:
        index.search(q[None, :], k)
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        index.search(q[None, :], k)
        times[i] = time.perf_counter() - start
    ms = times * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f, t, assume_unique=True)) for f, t in zip(found, truth, strict=True))
    return round(hits / truth.size, 4)


def one_size(n: int, args: argparse.Namespace, rng: np.random.Generator) -> dict:
    centres = rng.standard_normal((max(100, n // 1000), args.dim), dtype=np.float32)
    vectors, queries = als_like(n, args.dim, rng, centres), als_like(args.queries, args.dim, rng, centres)
    row: dict = {"items": n}
    exact = make_vector_index("exact").build(vectors)
    start = time.perf_counter()
    truth, _ = exact.search(queries, args.k)  # batch: the reference top k
    row["exact_batch_s"] = round(time.perf_counter() - start, 2)
    row["exact"] = latencies(exact, queries, args.k)
    print(f"{n:>9,} exact {row['exact']}", flush=True)

    start = time.perf_counter()
    flat = make_vector_index("faiss", structure="flat", threads=args.threads).build(vectors)
    row["faiss_flat"] = {"build_s": round(time.perf_counter() - start, 2), **latencies(flat, queries, args.k),
                         "recall": recall(flat.search(queries, args.k)[0], truth)}
    print(f"{n:>9,} faiss flat {row['faiss_flat']}", flush=True)
    del flat

    row["hnsw"] = []
    for metric in args.metrics.split(","):
        if metric == "l2_reduction" and n > args.l2_max_items:
            continue
        start = time.perf_counter()
        hnsw = make_vector_index("faiss", structure="hnsw", metric=metric, m=args.m,
                                 ef_construction=args.ef_construction, threads=args.threads).build(vectors)
        build_s = round(time.perf_counter() - start, 2)
        for ef in (int(e) for e in args.ef_search.split(",")):
            hnsw.tune(ef_search=ef)
            result = {"metric": metric, "m": args.m, "ef_construction": args.ef_construction, "ef_search": ef,
                      "build_s": build_s, "recall": recall(hnsw.search(queries, args.k)[0], truth),
                      **latencies(hnsw, queries, args.k)}
            row["hnsw"].append(result)
            print(f"{n:>9,} hnsw {result}", flush=True)
        del hnsw
    return row


def machine() -> dict:
    import faiss

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "numpy": np.__version__,
            "faiss": faiss.__version__, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="catalog sizes, comma-separated")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=500, help="single queries timed (and recall queries)")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--m", type=int, default=32, help="HNSW M")
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", default="128,256,512", help="efSearch values measured on each HNSW index")
    parser.add_argument("--metrics", default="inner_product,l2_reduction")
    parser.add_argument("--l2-max-items", type=int, default=100_000,
                        help="build the l2_reduction HNSW only up to this many items (its build is ~2x slower)")
    parser.add_argument("--threads", type=int, default=0, help="faiss threads for builds and batch search (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    wall = time.perf_counter()
    report = {"command": "python bench/vectors.py " + " ".join(sys.argv[1:]), "machine": machine(),
              "params": {k: v for k, v in vars(args).items() if k != "out"}, "sizes": []}
    for n in (int(s) for s in args.sizes.split(",")):
        report["sizes"].append(one_size(n, args, rng))
    report["wall_seconds"] = round(time.perf_counter() - wall, 1)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} in {report['wall_seconds']} s")


if __name__ == "__main__":
    main()
