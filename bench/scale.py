"""Scale benchmark (issue 9): synthetic worlds of 1M, 5M and 20M events (20M: ML-20M scale, 140k users, 27k titles)
through the embedded pipeline end to end, with time and peak memory per stage and the growth exponent between sizes.

Stages, each in its own subprocess (so its peak RSS is its own, read with os.wait4), sharing one data folder:
    generate    the synthetic world (streamrec.data.synthetic.generate_world)
    ingest      validate, dedup, store in DuckDB (streamrec ingest); peer: DuckDB's plain load of the same Parquet
    export      the event store as date-partitioned Parquet (streamrec store export): bytes per event
    preprocess  bots, sessions, weights, k-core (streamrec preprocess)
    features    the feature snapshot of every user and title (streamrec features build)
    evaluate    the ranked pipeline on the temporal split, stage by stage (streamrec pipeline's evaluation)
    train       the serving bundle on all data: ALS, EASE, LightGBM ranker (streamrec pipeline's fit), saved
    serve       load the bundle, fill the memory online store (features, histories), batch refresh of the ranked
                pools of a fixed sample of users, then the same small request load at every size: p50/p99 of the
                request path (kept pool) and of the whole pipeline per request (candidates through faiss HNSW)
The growth exponent of a stage between sizes a and b is log(t_b / t_a) / log(n_b / n_a), n = events (1: linear).
other_cores is the rest of the machine's CPU use while the stage ran (the machine is shared), from /proc/stat.

    .venv/bin/python bench/scale.py                        # 1M 5M 20M
    .venv/bin/python bench/scale.py --sizes tiny --out /tmp/scale.json   # a smoke test in seconds
    nice .venv/bin/python bench/scale.py --sizes 20M --merge              # add one size to the existing results
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's ALS and LightGBM bring their own threads

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"users": 300, "titles": 300, "days": 21, "events": 30_000},
    "1M": {"users": 10_000, "titles": 5_000, "days": 60, "events": 1_000_000},
    "5M": {"users": 40_000, "titles": 12_000, "days": 75, "events": 5_000_000},
    "20M": {"users": 140_000, "titles": 27_000, "days": 90, "events": 20_000_000},  # the ml20m preset
}
STAGES = ("generate", "ingest", "export", "preprocess", "features", "evaluate", "train", "serve")
REFRESH_USERS = 2000  # the same batch of pools refreshed at every size
REQUEST_USERS = 300  # the same small request load at every size
FAISS = {"type": "faiss", "structure": "hnsw", "metric": "l2_reduction", "ef_search": 512}
RESULT = Path(__file__).resolve().parent / "results" / "scale.json"
TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat, less idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK


def _settings(work: Path):
    from streamrec.settings import load_settings

    settings = load_settings(None, None, data_dir=work)
    pipeline = settings.pipeline.model_copy(update={"vector_index": FAISS})
    return settings.model_copy(update={"pipeline": pipeline})


def _bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


# --- the stages (each runs in a child process) ------------------------------------------------------------------------
def stage_generate(size: str, work: Path) -> dict:
    from streamrec.data.synthetic import WorldConfig, generate_world

    info = generate_world(WorldConfig(seed=0, **SIZES[size]), work / "world", overwrite=True)
    return {"events": info.counts["events"], "users": info.counts.get("users"), "titles": info.counts.get("titles"),
            "world_parquet_bytes": _bytes(work / "world" / "events", "*.parquet")}


def stage_ingest(size: str, work: Path) -> dict:
    from streamrec.events.runner import ingest_paths
    from streamrec.storage.events import open_event_store

    settings = _settings(work)
    with open_event_store(settings) as store:
        summary = ingest_paths(store, [work / "world"], settings.ingest)
        counts = store.counts()
    return {"stored": counts["events"], "quarantined": sum(b.quarantined for b in summary.batches),
            "duckdb_bytes": settings.event_store_path.stat().st_size}


def stage_peer_ingest(size: str, work: Path) -> dict:
    """The peer: DuckDB loading the same Parquet parts into a table, nothing checked."""
    import duckdb

    path = work / "peer.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{(work / 'world' / 'events').as_posix()}/*.parquet')")
    rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    con.close()
    path.unlink()
    return {"rows": rows}


def stage_export(size: str, work: Path) -> dict:
    from streamrec.storage.events import open_event_store

    with open_event_store(_settings(work), read_only=True) as store:
        out = store.export_parquet(work / "export")
        events = store.counts()["events"]
    size_bytes = _bytes(out, "*.parquet")
    shutil.rmtree(out)
    return {"events": events, "parquet_bytes": size_bytes, "parquet_bytes_per_event": round(size_bytes / events, 2)}


def stage_preprocess(size: str, work: Path) -> dict:
    from streamrec.cli import preprocess_cmds

    report = preprocess_cmds.run(_settings(work))
    return {"events_in": report.events_in, "sessions": report.sessions, "interactions": report.interactions_out}


def stage_features(size: str, work: Path) -> dict:
    from streamrec.cli import features_cmds

    report = features_cmds.build(_settings(work))
    return {"rows": dict(report.rows), "features": dict(report.features)}


def stage_evaluate(size: str, work: Path) -> dict:
    from streamrec.features import events_relation
    from streamrec.pipeline.stages import evaluate_pipeline
    from streamrec.storage.events import open_event_store
    from streamrec.training.sources import interactions_from_store

    settings = _settings(work)
    cfg = settings.pipeline
    table = interactions_from_store(settings)
    with open_event_store(settings, read_only=True) as store:
        report = evaluate_pipeline(store.con, table, settings.train.split, quotas=cfg.quotas, ranker=cfg.ranker,
                                   diversity=cfg.diversity, events=events_relation(store.con), policy=cfg.filters,
                                   vector_index=cfg.vector_index)
    best, _ = report.best_single
    return {"interactions": table.num_rows, "ndcg@10": {k: round(v, 4) for k, v in report.ndcg.items()},
            "best_single": best, "candidate_recall": round(report.recall["all"], 4),
            "counts": {k: int(v) for k, v in report.counts.items()}}


def stage_train(size: str, work: Path) -> dict:
    from streamrec.features import events_relation
    from streamrec.pipeline.bundle import fit_bundle
    from streamrec.storage.events import open_event_store
    from streamrec.training.sources import interactions_from_store

    settings = _settings(work)
    table = interactions_from_store(settings)
    with open_event_store(settings, read_only=True) as store:
        bundle = fit_bundle(store.con, table, events_relation(store.con), settings.pipeline, settings.train.split)
    folder = bundle.save(work / "bundle")
    return {"sources": list(bundle.models), "ranker_trees": int(bundle.ranker.trees_), "bundle_bytes": _bytes(folder),
            "counts": {k: int(v) for k, v in bundle.counts.items()}}


def stage_serve(size: str, work: Path) -> dict:
    import numpy as np

    from streamrec.features import events_relation
    from streamrec.features.materialize import materialize
    from streamrec.pipeline.bundle import PipelineBundle
    from streamrec.pipeline.serving import OnlinePipeline, ServingCatalog
    from streamrec.storage.events import open_event_store
    from streamrec.storage.online import MemoryOnlineStore

    settings = _settings(work)
    out: dict = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        out[f"{name}_s"] = round(now - clock, 2)
        clock = now

    bundle = PipelineBundle.load(work / "bundle")
    lap("load_bundle")
    store = MemoryOnlineStore()
    with open_event_store(settings, read_only=True) as events_store:
        con = events_store.con
        events = events_relation(con)
        at = con.execute(f"SELECT max(ts) FROM {events}").fetchone()[0] + timedelta(seconds=1)
        filled = materialize(con, store, at, events, bundle.definitions)
        lap("online_fill")
        catalog = ServingCatalog.from_store(con)
        recent = [r[0] for r in con.execute(
            f"SELECT user_id FROM {events} GROUP BY user_id ORDER BY max(ts) DESC, user_id LIMIT {REFRESH_USERS}"
        ).fetchall()]
    pipeline = OnlinePipeline(bundle, catalog, store, ranked_ttl_s=settings.serving.ranked_ttl_s,
                              pool_size=settings.serving.ranked_pool, name="scale")
    lap("pipeline_setup")
    out.update(histories=filled.histories, history_entries=filled.history_entries, online_rows=dict(filled.rows))
    for user in recent:  # the batch refresh path for the most recently active profiles
        pipeline.refresh(user, at)
    lap("refresh")
    out["refresh_users"] = len(recent)
    out["refresh_users_per_s"] = round(len(recent) / out["refresh_s"], 1)
    chosen = np.random.default_rng(0).choice(recent, min(REQUEST_USERS, len(recent)), replace=False).tolist()

    def load(label: str) -> None:
        for user in chosen[:20]:  # warm-up
            pipeline.recommend(user, at=at)
        times = []
        for user in chosen:
            began = time.perf_counter()
            pipeline.recommend(user, at=at)
            times.append((time.perf_counter() - began) * 1000)
        out[label] = {"requests": len(times), "p50_ms": round(float(np.percentile(times, 50)), 3),
                      "p99_ms": round(float(np.percentile(times, 99)), 3)}

    load("request_path")  # pools kept by the refresh above: what a request costs in serving
    pipeline.ranked_ttl_s = 0.0
    load("full_pipeline")  # candidates (faiss HNSW for ALS), filters, features, LightGBM, MMR for each request
    out["catalog_titles"] = int(pipeline.n_items)
    return out


CHILDREN = {"generate": stage_generate, "ingest": stage_ingest, "peer_ingest": stage_peer_ingest,
            "export": stage_export, "preprocess": stage_preprocess, "features": stage_features,
            "evaluate": stage_evaluate, "train": stage_train, "serve": stage_serve}


# --- the parent: one child per stage, timed and measured from outside -------------------------------------------------
def run_child(stage: str, size: str, work: Path) -> dict:
    """Run one stage in a child process; wall time, CPU, peak RSS (its own, from wait4) and the rest of the
    machine's load while it ran."""
    cmd = [sys.executable, __file__, "--child", stage, "--size", size, "--work", str(work)]
    busy = machine_busy_s()
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS), not all children's
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - began
        stdout.seek(0)
        stderr.seek(0)
        lines, errors = stdout.read().strip().splitlines(), stderr.read()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"stage {stage} ({size}) failed (exit {proc.returncode}):\n{errors[-4000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    other = max(machine_busy_s() - busy - cpu, 0.0)
    row = {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024),
           "other_cores": round(other / seconds, 2)}
    row.update(json.loads(lines[-1]))
    return row


def run_size(size: str, where: Path | None = None, keep: bool = False) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{size}-", dir=where))
    stages: dict[str, dict] = {}
    began = time.perf_counter()
    try:
        for stage in STAGES:
            stages[stage] = run_child(stage, size, work)
            if stage == "ingest":
                stages["peer_ingest"] = run_child("peer_ingest", size, work)
            print(f"{size} {stage}: {stages[stage]['seconds']} s, peak {stages[stage]['peak_rss_mib']} MiB, "
                  f"other cores {stages[stage]['other_cores']}", file=sys.stderr, flush=True)
        disk = _bytes(work)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    total = round(time.perf_counter() - began, 1)
    gen = stages["generate"]
    command = " ".join(["nice -n", str(os.nice(0))] if os.nice(0) else []
                       + [".venv/bin/python bench/scale.py --sizes", size])
    return {"size": size, "command": command, "config": SIZES[size], "events": gen["events"], "users": gen["users"],
            "titles": gen["titles"], "total_seconds": total, "disk_bytes_at_end": disk,
            "peak_rss_mib": max(s["peak_rss_mib"] for s in stages.values()),
            "ingest_ratio_to_duckdb": round(stages["ingest"]["seconds"] / stages["peer_ingest"]["seconds"], 2),
            "stages": stages}


def growth(results: list[dict]) -> list[dict]:
    """The growth exponent of each stage's time and peak memory between consecutive sizes (by events)."""
    out = []
    ordered = sorted(results, key=lambda r: r["events"])
    for a, b in itertools.pairwise(ordered):
        ratio = math.log(b["events"] / a["events"])
        row: dict = {"from": a["size"], "to": b["size"], "events_ratio": round(b["events"] / a["events"], 2),
                     "seconds": {}, "cpu_seconds": {}, "peak_rss": {}}
        for stage in STAGES:
            sa, sb = a["stages"][stage], b["stages"][stage]
            for key in ("seconds", "cpu_seconds"):  # CPU time is the steadier one on a shared machine
                row[key][stage] = round(math.log(max(sb[key], 0.01) / max(sa[key], 0.01)) / ratio, 2)
            row["peak_rss"][stage] = round(math.log(sb["peak_rss_mib"] / sa["peak_rss_mib"]) / ratio, 2)
        row["seconds"]["total"] = round(math.log(b["total_seconds"] / a["total_seconds"]) / ratio, 2)
        cpu_a, cpu_b = (sum(x["stages"][s]["cpu_seconds"] for s in STAGES) for x in (a, b))
        row["cpu_seconds"]["total"] = round(math.log(cpu_b / cpu_a) / ratio, 2)
        for path in ("request_path", "full_pipeline"):
            row[f"{path}_p99"] = round(math.log(b["stages"]["serve"][path]["p99_ms"]
                                                / a["stages"]["serve"][path]["p99_ms"]) / ratio, 2)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1M", "5M", "20M"], choices=list(SIZES))
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--merge", action="store_true", help="keep the other sizes already in --out")
    parser.add_argument("--work", type=Path, help="folder for the data (default: the system's temporary folder)")
    parser.add_argument("--combine", type=Path, nargs="+",
                        help="write --out from these result files only (runs nothing; the growth between them)")
    parser.add_argument("--keep", action="store_true", help="keep each size's data folder (to profile a stage)")
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=list(SIZES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from streamrec.logs import configure_logging

        configure_logging("warning")
        print(json.dumps(CHILDREN[args.child](args.size, args.work)), flush=True)
        return 0

    previous = json.loads(args.out.read_text()).get("results", []) if args.merge and args.out.is_file() else []
    for path in args.combine or []:  # sizes measured by other runs (e.g. the largest, run apart under nice)
        previous += json.loads(path.read_text())["results"]
    runs = args.sizes if not args.combine else []
    results = [r for r in previous if r["size"] not in runs]
    for size in runs:
        results.append(run_size(size, args.work, args.keep))
        print(f"{size}: {results[-1]['total_seconds']} s in all", file=sys.stderr, flush=True)
    results.sort(key=lambda r: r["events"])
    sizes = [r["size"] for r in results]
    report = {
        "benchmark": "the embedded pipeline end to end at growing scale (bench/scale.py)",
        "command": ".venv/bin/python bench/scale.py " + (f"--combine {' '.join(map(str, args.combine))}"
                                                          if args.combine else "--sizes " + " ".join(sizes)),
        "runs": {r["size"]: r.get("command", "not recorded") for r in results},
        "machine": {"cores": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                                                                  * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "platform": platform.platform(), "python": platform.python_version()},
        "refresh_users": REFRESH_USERS, "request_users": REQUEST_USERS, "vector_index": FAISS,
        "targets": {"20M_total_seconds_max": 45 * 60, "20M_peak_rss_mib_max": 12 * 1024},
        "results": results,
        "growth": growth(results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
