"""Model zoo speed: ALS through streamrec vs bare implicit, EASE fit time and peak memory, batch top-k scoring.

(a) ALS: `streamrec.models.als.ALS` and a bare `implicit.cpu.als.AlternatingLeastSquares` fit the same matrix with
    the same parameters in the same run, interleaved (bare, streamrec, bare, streamrec ...); the best of each is
    compared (target: streamrec ≤ 1.15 × bare), and the two factor matrices must agree.
(b) EASE on the `--ease-items` most popular titles, in a subprocess (its peak RSS is its own: resource.getrusage).
(c) Batch scoring of every user for top-k (seen titles excluded) in chunks of `--chunk` rows on `--threads`
    threads, for ALS (known users' factors) and EASE: users/s (target ≥ 5k on 2 cores), and users per CPU-second,
    which is steadier on a shared machine.
Data: a synthetic users × titles matrix (default ML-20M-like: 138k × 27k, 20M distinct pairs,
Zipf title popularity, log-normal user activity), or `--world DIR`: a generated data set's play/progress/complete
events counted per (user, title). Writes bench/results/train_speed.json.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/train_speed.py
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/train_speed.py --users 20000 --items 8000 --nnz 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402

from streamrec.data.interactions import Interactions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "train_speed.json"


def synthetic(users: int, items: int, nnz: int, zipf: float, seed: int) -> Interactions:
    """`nnz` distinct (user, title) pairs: Zipf title popularity (popular titles first), log-normal user activity.

    Pairs are drawn until `nnz` distinct ones exist (repeats merge, their weights summed), then cut to `nnz`.
    """
    rng = np.random.default_rng(seed)
    item_p = 1.0 / (1.0 + np.arange(items)) ** zipf
    user_p = rng.lognormal(0.0, 1.0, users)
    item_p, user_p = item_p / item_p.sum(), user_p / user_p.sum()
    matrix = sparse.csr_matrix((users, items), dtype=np.float32)
    draws = nnz
    while matrix.nnz < nnz:
        rows = rng.choice(users, size=draws, p=user_p).astype(np.int32)
        cols = rng.choice(items, size=draws, p=item_p).astype(np.int32)
        weights = rng.uniform(0.1, 1.0, draws).astype(np.float32)
        before = matrix.nnz
        matrix = matrix + sparse.csr_matrix((weights, (rows, cols)), shape=(users, items), dtype=np.float32)
        gained = max(matrix.nnz - before, 1)
        draws = min(int((nnz - matrix.nnz) * draws / gained * 1.1) + 1000, 4 * nnz)
    if matrix.nnz > nnz:  # drop a random surplus
        coo = matrix.tocoo()
        keep = np.sort(rng.choice(coo.nnz, size=nnz, replace=False))
        matrix = sparse.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=coo.shape)
    matrix.sort_indices()
    return Interactions(matrix, np.array([f"u{i}" for i in range(users)], dtype=object),
                        np.array([f"t{i}" for i in range(items)], dtype=object))


def from_world(folder: Path) -> Interactions:
    """Plays, progress and completions of a generated data set, counted per (user, title)."""
    import duckdb

    parts = str(Path(folder) / "events" / "*.parquet")
    table = duckdb.sql(
        f"SELECT user_id, item_id, count(*)::FLOAT AS weight FROM read_parquet('{parts}') "
        "WHERE type IN ('play', 'progress', 'complete') GROUP BY ALL").arrow()
    return Interactions.from_table(table, ts_col=None)


def load_data(args: argparse.Namespace) -> Interactions:
    if args.world:
        return from_world(args.world)
    return synthetic(args.users, args.items, args.nnz, args.zipf, args.seed)


def top_titles(data: Interactions, n_items: int) -> Interactions:
    """The `n_items` titles with the most users (a catalog cut), users without any of them dropped."""
    counts = np.diff(data.matrix.tocsc().indptr)
    keep = np.sort(np.argsort(-counts, kind="stable")[:n_items])
    matrix = data.matrix[:, keep].tocsr()
    active = np.flatnonzero(np.diff(matrix.indptr) > 0)
    return Interactions(matrix[active], data.user_ids[active], data.item_ids[keep])


def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds of all threads) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def score_all(model, matrix: sparse.csr_matrix, k: int, chunk: int, threads: int, max_users: int | None) -> dict:
    """Top-k of every user (seen excluded), chunk by chunk on `threads` threads."""
    n = matrix.shape[0] if max_users is None else min(max_users, matrix.shape[0])
    starts = range(0, n, chunk)

    def one(start: int) -> int:
        stop = min(n, start + chunk)
        items, _ = model.recommend(matrix[start:stop], k=k, users=np.arange(start, stop))
        return items.shape[0]

    def run() -> None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            assert sum(pool.map(one, starts)) == n

    wall, cpu = timed(run)
    result = {"users": n, "k": k, "chunk": chunk, "threads": threads, "seconds": round(wall, 2),
              "cpu_seconds": round(cpu, 2), "users_per_s": round(n / wall), "users_per_cpu_s": round(n / cpu),
              "target_users_per_s_min": 5_000, "met": bool(n / wall >= 5_000)}
    result["one_chunk_breakdown_s"] = _breakdown(model, matrix[: min(n, chunk)], k)
    return result


def _breakdown(model, history: sparse.csr_matrix, k: int) -> dict:
    """Where one chunk's time goes on one thread: the scores, then seen-exclusion and top-k (best of 3)."""
    from streamrec.models.base import top_k

    users = np.arange(history.shape[0])
    score_s, select_s = [], []
    for _ in range(3):
        began = time.perf_counter()
        scores = model.score(history, users)
        score_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        coo = history.tocoo()
        scores[coo.row, coo.col] = -np.inf
        top_k(scores, k)
        select_s.append(time.perf_counter() - began)
        del scores
    return {"users": history.shape[0], "score": round(min(score_s), 3), "exclude_seen_and_top_k": round(min(select_s), 3)}


def bench_als(data: Interactions, args: argparse.Namespace) -> dict:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from streamrec.models import create_model

    params = {"factors": args.factors, "regularization": args.regularization, "alpha": args.alpha,
              "iterations": args.iterations, "seed": args.seed, "num_threads": args.threads}
    matrix = data.matrix
    bare_times, ours_times, ours, bare = [], [], None, None

    def fit_bare() -> None:
        nonlocal bare
        with threadpool_limits(1, "blas"):
            bare = AlternatingLeastSquares(
                factors=args.factors, regularization=args.regularization, alpha=args.alpha,
                iterations=args.iterations, random_state=args.seed, num_threads=args.threads)
            bare.fit(matrix, show_progress=False)

    def fit_ours() -> None:
        nonlocal ours
        ours = create_model("als", params).fit(data)

    for repeat in range(args.repeats):  # interleaved, the side that goes first alternating (drift cancels)
        if repeat % 2 == 0:
            bare_times.append(timed(fit_bare))
            ours_times.append(timed(fit_ours))
        else:
            ours_times.append(timed(fit_ours))
            bare_times.append(timed(fit_bare))
        print(f"  ALS repeat {repeat}: bare {bare_times[-1][0]:.1f}s, streamrec {ours_times[-1][0]:.1f}s", flush=True)
    best_bare, best_ours = min(t[0] for t in bare_times), min(t[0] for t in ours_times)
    result = {
        "params": params,
        "bare_implicit_seconds": [round(t[0], 2) for t in bare_times],
        "streamrec_seconds": [round(t[0], 2) for t in ours_times],
        "bare_implicit_cpu_seconds": [round(t[1], 2) for t in bare_times],
        "streamrec_cpu_seconds": [round(t[1], 2) for t in ours_times],
        "ratio_best": round(best_ours / best_bare, 3),
        "ratio_cpu_best": round(min(t[1] for t in ours_times) / min(t[1] for t in bare_times), 3),
        "target_ratio_max": 1.15,
        "met": bool(best_ours / best_bare <= 1.15),
        "same_factors": bool(np.allclose(ours.item_factors_, bare.item_factors, rtol=1e-4, atol=1e-6)
                             and np.allclose(ours.user_factors_, bare.user_factors, rtol=1e-4, atol=1e-6)),
        "max_abs_factor_difference": float(max(np.abs(ours.item_factors_ - bare.item_factors).max(),
                                               np.abs(ours.user_factors_ - bare.user_factors).max())),
    }
    print(f"  ALS scoring top-{args.k} ...", flush=True)
    result["scoring"] = score_all(ours, matrix, args.k, args.chunk, args.score_threads, args.score_users)
    return result


def ease_child(args: argparse.Namespace) -> dict:
    """Runs in its own process: EASE fit time and peak RSS, then batch scoring.

    The matrix comes from the parent through an .npz file (`--child-data`), so the child's peak RSS is the
    catalog cut, the fit and the scoring, not the synthetic generator.
    """
    from streamrec.models import create_model

    data = top_titles(_read_matrix(args.child_data) if args.child_data else load_data(args), args.ease_items)
    rss_before = _current_rss_mib()
    model = create_model("ease", l2=args.ease_l2, max_items=max(args.ease_items, 1))
    wall, cpu = timed(lambda: model.fit(data))
    peak_fit = _peak_rss_mib()
    n = data.n_items
    estimate = 12 * n * n  # bytes: float64 gram inverted in place (8·n²) + float32 weights (4·n²)
    result = {
        "items": n, "users": data.n_users, "nnz": data.nnz, "l2": args.ease_l2,
        "fit_seconds": round(wall, 2), "fit_cpu_seconds": round(cpu, 2),
        "rss_before_fit_mib": round(rss_before, 1), "peak_rss_fit_mib": round(peak_fit, 1),
        "peak_rss_fit_gib": round(peak_fit / 1024, 2), "fit_extra_mib": round(peak_fit - rss_before, 1),
        "formula": "12·n² bytes = 8·n² (float64 gram XᵀX+λI, Cholesky-inverted in place by LAPACK dpotrf/dpotri) "
                   "+ 4·n² (float32 weights, filled from the inverse in row blocks)",
        "formula_gib": round(estimate / 2**30, 2),
        "largest_catalog_in_24_gib": int((24 * 2**30 / 12) ** 0.5),
        "target_peak_rss_gib_max": 24,
        "met": bool(peak_fit / 1024 <= 24),
    }
    result["scoring"] = score_all(model, data.matrix, args.k, args.chunk, args.score_threads, args.score_users)
    result["peak_rss_with_scoring_gib"] = round(_peak_rss_mib() / 1024, 2)
    return result


def _write_matrix(path: Path, data: Interactions) -> None:
    m = data.matrix
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.asarray(m.shape))


def _read_matrix(path: Path) -> Interactions:
    with np.load(path) as f:
        shape = tuple(int(x) for x in f["shape"])
        matrix = sparse.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=shape)
    return Interactions(matrix, np.array([f"u{i}" for i in range(shape[0])], dtype=object),
                        np.array([f"t{i}" for i in range(shape[1])], dtype=object))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _machine() -> dict:
    import implicit
    import scipy

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "cpu": model, "arch": platform.machine(), "memory_gib": round(memory, 1),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "implicit": implicit.__version__, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _targets(report: dict) -> dict:
    """Each issue-3 target with its measured value and whether it is met (absent parts are left out)."""
    out = {}
    if "als" in report:
        out["als_fit_ratio_max_1.15"] = {"value": report["als"]["ratio_best"], "met": report["als"]["met"]}
        out["als_scoring_users_per_s_min_5000"] = {"value": report["als"]["scoring"]["users_per_s"],
                                                    "met": report["als"]["scoring"]["met"]}
    if "ease" in report:
        out["ease_20k_peak_rss_gib_max_24"] = {"value": report["ease"]["peak_rss_fit_gib"],
                                               "met": report["ease"]["met"]}
        out["ease_scoring_users_per_s_min_5000"] = {"value": report["ease"]["scoring"]["users_per_s"],
                                                     "met": report["ease"]["scoring"]["met"]}
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=138_000)
    parser.add_argument("--items", type=int, default=27_000)
    parser.add_argument("--nnz", type=int, default=20_000_000, help="distinct (user, title) pairs")
    parser.add_argument("--zipf", type=float, default=1.0, help="title popularity exponent")
    parser.add_argument("--world", type=Path, help="a generated data set folder instead of the synthetic matrix")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--regularization", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=cores, help="OpenMP threads of both ALS fits")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved ALS fits per side")
    parser.add_argument("--ease-items", type=int, default=20_000)
    parser.add_argument("--ease-l2", type=float, default=300.0)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=2_000)
    parser.add_argument("--score-threads", type=int, default=cores)
    parser.add_argument("--score-users", type=int, help="score only the first N users (default: all)")
    parser.add_argument("--parts", default="als,ease", help="comma list of: als, ease")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child-ease", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-data", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.child_ease:
        print(json.dumps(ease_child(args)))
        return
    parts = set(args.parts.split(","))
    began = time.perf_counter()
    data = load_data(args)
    print(f"data: {data.n_users} users × {data.n_items} titles, {data.nnz} pairs "
          f"({time.perf_counter() - began:.1f}s to build)", flush=True)
    report: dict = {
        "benchmark": "model zoo training and scoring speed",
        "command": " ".join(["OPENBLAS_NUM_THREADS=1", ".venv/bin/python", "bench/train_speed.py", *(argv or sys.argv[1:])]),
        "machine": _machine(),
        "data": {"source": str(args.world) if args.world else "synthetic", "users": data.n_users,
                 "items": data.n_items, "nnz": data.nnz},
    }
    with tempfile.TemporaryDirectory(prefix="train_speed_") as tmp:
        matrix_file = Path(tmp) / "matrix.npz"
        if "ease" in parts:
            _write_matrix(matrix_file, data)
        if "als" in parts:
            print("ALS: bare implicit vs streamrec ...", flush=True)
            report["als"] = bench_als(data, args)
            print(f"  ratio {report['als']['ratio_best']}, scoring {report['als']['scoring']['users_per_s']} users/s",
                  flush=True)
        del data
        if "ease" in parts:
            print(f"EASE on the {args.ease_items} most popular titles (subprocess) ...", flush=True)
            child_argv = [*(argv if argv is not None else sys.argv[1:]), "--child-ease", "--child-data", str(matrix_file)]
            done = subprocess.run([sys.executable, __file__, *child_argv], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"EASE child failed ({done.returncode}):\n{done.stderr[-4000:]}")
            report["ease"] = json.loads(done.stdout.strip().splitlines()[-1])
    report["targets"] = _targets(report)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_seconds"] = round(time.perf_counter() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
