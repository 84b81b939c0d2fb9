"""Serving benchmark (issue 5): `streamrec serve` under wrk on loopback — /healthz, one ranked list
(/v1/users/{id}/recommendations?k=20, the full pipeline) and a whole homepage (/v1/users/{id}/home), the same server
and settings for all three, requests spread over many users; then the p99 at 70% of the maximum throughput, and a
py-spy profile of the server's processes under that load.

World: `streamrec demo --size SIZE --no-serve` in a temporary folder (synthetic world, ingest, preprocess, features,
model zoo, the ranked pipeline registered as champion); the server serves the champion with the data clock (just
after the newest event). wrk (Debian package, installed with apt-get when missing) runs bench/serving.lua: random
paths from a list of users, and for the 70% runs a fixed request rate (wrk2's -R is not packaged in Debian, so the
script schedules requests itself; latency is counted from the send, as wrk does). py-spy comes from PyPI.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/serving.py                     # small world, 2 workers
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/serving.py --workers 1 --seconds 10
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

BENCH = Path(__file__).resolve().parent
RESULT = BENCH / "results" / "serving.json"
LUA = BENCH / "serving.lua"
BIN = Path(sys.executable).parent
ENDPOINTS = {"healthz": "/healthz", "recommendations": "/v1/users/{user}/recommendations?k=20",
             "home": "/v1/users/{user}/home"}
RATIO_TARGET, P99_TARGET_MS, LOAD_SHARE = 0.40, 25.0, 0.70


# --- tools -----------------------------------------------------------------------------------------------------------
def ensure_wrk() -> str:
    """wrk from PATH, else installed from Debian's packages (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is missing: apt-get install wrk (as root), then run again")
    print("installing wrk (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True)
    return shutil.which("wrk") or sys.exit("wrk did not install")


def ensure_py_spy() -> str:
    """py-spy beside this Python, installed from PyPI when missing."""
    path = BIN / "py-spy"
    if not path.exists():
        print("installing py-spy (pip)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(path)


# --- the world and the server ----------------------------------------------------------------------------------------
def build_world(root: Path, size: str, seed: int, log: Path) -> Path:
    """The demo's data folder (its pipeline registered as champion); returns the data dir the server reads."""
    with log.open("w") as out:
        subprocess.run([str(BIN / "streamrec"), "--data-dir", str(root), "--log-level", "warning", "demo", "--size",
                        size, "--seed", str(seed), "--no-serve"], stdout=out, stderr=subprocess.STDOUT, check=True,
                       cwd=root)
    return root / "demo"


def world_info(data: Path, users: int, seed: int) -> tuple[dict, list[str]]:
    import duckdb
    import numpy as np

    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    try:
        counts = {name: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for name, table in (("events", "events"), ("users", "users"), ("titles", "titles"))}
        known = [r[0] for r in con.execute("SELECT DISTINCT user_id FROM interactions ORDER BY 1").fetchall()]
    finally:
        con.close()
    chosen = np.random.default_rng(seed).choice(known, min(users, len(known)), replace=False)
    return counts, [str(u) for u in chosen]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamrec serve` in its own process group, ready once /readyz says so; stopped with SIGINT."""

    def __init__(self, data: Path, workers: int, port: int, log: Path, env: dict[str, str] | None = None):
        self.data, self.workers, self.port, self.log, self.env = data, workers, port, log, env or {}
        self.base = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Server:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "STREAMREC_LOGGING__LEVEL": "warning", **self.env}
        self.out = self.log.open("w")
        self.proc = subprocess.Popen(
            [str(BIN / "streamrec"), "--data-dir", str(self.data), "--log-level", "warning", "serve", "--port",
             str(self.port), "--workers", str(self.workers), "--clock", "data", "--model", "champion"],
            stdout=self.out, stderr=subprocess.STDOUT, env=env, cwd=self.data, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"the server stopped (exit {self.proc.returncode}); see {self.log}")
            try:
                ready = self.get("/readyz")
                if ready.get("status") == "ready":
                    # every worker has built its state once as many /readyz answered as there are workers
                    if all(self.get("/readyz").get("status") == "ready" for _ in range(4 * self.workers)):
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        sys.exit(f"the server was not ready within 300 s; see {self.log}")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return json.loads(response.read())

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()


# --- CPU accounting (the machine is shared: what others used during a run is recorded beside it) -------------------
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of process `root` and its descendants (alive now), from /proc."""
    parents, cpu = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(cpu.get(pid, 0.0) for pid in tree)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK  # less idle and iowait


# --- load -----------------------------------------------------------------------------------------------------------
def run_wrk(wrk: str, url: str, paths: Path, connections: int, seconds: float, rate: float = 0.0,
            server_pid: int | None = None) -> dict:
    """One wrk run of bench/serving.lua (rate 0: as fast as the connections go); rps, latency percentiles, errors,
    and CPU: the server's per request, wrk's, and the rest of the machine's (other work on the shared machine)."""
    env = {**os.environ, "WRK_PATHS": str(paths), "WRK_RATE": f"{rate:.3f}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = tree_cpu_s(server_pid) if server_pid else 0.0
    busy_before = machine_busy_s()
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "10s", "-s", str(LUA), url],
                         env=env, capture_output=True, text=True, check=True).stdout
    busy = machine_busy_s() - busy_before
    server = tree_cpu_s(server_pid) - server_before if server_pid else 0.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = json.loads(out.strip().splitlines()[-1])
    client = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    stats["rps"] = round(stats["requests"] / stats["seconds"], 1)
    stats["server_cpu_ms_per_request"] = round(1000 * server / max(stats["requests"], 1), 3)
    stats["server_cores"] = round(server / stats["seconds"], 2)
    stats["wrk_cores"] = round(client / stats["seconds"], 2)
    stats["other_cores"] = round(max(busy - server - client, 0.0) / stats["seconds"], 2)
    return stats


def profile(py_spy: str, server: Server, seconds: float, out: Path, load) -> Path:
    """py-spy (every worker process, idle threads left out) for `seconds` while `load()` runs."""
    spy = subprocess.Popen([py_spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--rate", "200",
                            "--nonblocking", "--format", "raw", "--duration", str(int(seconds)), "--output",
                            str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    result = load()
    spy.wait(60)
    return out, result


# Where a sample's time goes: the deepest frame that is one of these (function name, file), else "server framework".
STAGES = [
    ("handler: answers and response objects", "recommendations", "serving/routes.py"),
    ("handler: homepage rows", "homepage", "serving/routes.py"),
    ("pipeline: other (result lists, counters)", "recommend", "pipeline/serving.py"),
    ("pipeline: history row", "_history", "pipeline/serving.py"),
    ("pipeline: user context (watched, hidden)", "_context", "pipeline/serving.py"),
    ("pipeline: candidates (EASE, ALS, trending, ...)", "_candidates", "pipeline/serving.py"),
    ("pipeline: catalog filters", "_filter", "pipeline/serving.py"),
    ("pipeline: feature rows (online store, genre match, similarity)", "features", "pipeline/serving.py"),
    ("pipeline: LightGBM ranker", "score", "pipeline/ranker.py"),
    ("pipeline: MMR rerank", "_pick", "pipeline/serving.py"),
    ("pipeline: request path over the kept pool (exclusions, hidden)", "_from_pool", "pipeline/serving.py"),
    ("pipeline: kept pool lookup (online store, history fingerprint)", "_pool", "pipeline/serving.py"),
    ("FastAPI: request parsing and validation", "solve_dependencies", "fastapi/"),
    ("FastAPI: response validation and JSON", "serialize_response", "fastapi/"),
]
FRAMEWORK = "server framework (uvicorn, h11, starlette, anyio thread pool, middleware)"
IDLE = (".select (selectors.py)", ".wait (threading.py)", "._wait_for_tstate_lock (threading.py)")
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(frame: str) -> tuple[str, str]:
    """(qualified function, file below site-packages/ or src/) of a py-spy frame."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    file = m["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1].lstrip("/0123456789.")
            break
    return m["func"], file


def summarize_profile(raw: Path, top: int = 15) -> dict:
    """Shares of busy samples (threads waiting in select or on a condition left out) by stage (STAGES), by own
    time (leaf function) and by total time (anywhere on the stack), from py-spy's collapsed stacks."""
    stages, own, total = collections.Counter(), collections.Counter(), collections.Counter()
    samples = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if not f.startswith(("process ", "thread ", " spawn_main"))]
        frames = [f for f in frames if f[1]]
        if not frames:
            continue
        names = [f"{func} ({file})" for func, file in frames]
        if names[-1].endswith(IDLE):
            idle += n
            continue
        samples += n
        stage = FRAMEWORK
        for func, file in frames:
            for label, name, where in STAGES:
                if func.rsplit(".", 1)[-1] == name and where in file:
                    stage = label
        stages[stage] += n
        own[names[-1]] += n
        for name in set(names):
            total[name] += n

    def shares(counter: collections.Counter, limit: int | None = None) -> list[dict]:
        return [{"name": name, "share": round(c / max(samples, 1), 4)} for name, c in counter.most_common(limit)]

    return {"samples": samples, "idle_samples": idle, "stages": shares(stages), "top_own": shares(own, top),
            "top_total": shares(total, top)}


# --- main -----------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", help="world preset")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 32],
                        help="wrk connections tried for the maximum throughput (the best counts)")
    parser.add_argument("--load-connections", type=int, default=64, help="wrk connections of the fixed-rate runs")
    parser.add_argument("--seconds", type=int, default=15, help="length of each measured wrk run")
    parser.add_argument("--users", type=int, default=1500, help="distinct users the requests are spread over")
    parser.add_argument("--data", type=Path, help="reuse a data folder made by the demo (default: a fresh world)")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--keep-profile", type=Path, help="also copy py-spy's raw collapsed stacks here")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    wrk, py_spy = ensure_wrk(), ensure_py_spy()
    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.split(" [")[0].strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world_began = time.perf_counter()
        data = args.data or build_world(tmp, args.size, args.seed, tmp / "demo.log")
        world_seconds = time.perf_counter() - world_began
        counts, users = world_info(data, args.users, args.seed)
        paths = {}
        for name, template in ENDPOINTS.items():
            paths[name] = tmp / f"{name}.paths"
            paths[name].write_text("\n".join(template.format(user=u) for u in users) + "\n")
        runs: list[dict] = []
        # the serving path of DESIGN.md: every profile's ranked pool is made at load (the batch refresh path) and
        # requests read it; a pool is ranked again when its user's history changes or its TTL passes
        pooled = {"STREAMREC_SERVING__WARM_POOLS": str(counts["users"])}
        with Server(data, args.workers, free_port(), tmp / "server.log", pooled) as server:
            served = server.get("/v1/models")["served"]
            sample = server.get(ENDPOINTS["recommendations"].format(user=users[0]))
            if served is None or served["kind"] != "pipeline" or sample["fallback"] is not None \
                    or len(sample["items"]) != 20:
                sys.exit(f"not the ranked pipeline's answer: served {served}, fallback {sample.get('fallback')}")

            def measure(endpoint: str, mode: str, connections: int, rate: float = 0.0, seconds=args.seconds) -> dict:
                stats = run_wrk(wrk, server.base, paths[endpoint], connections, seconds, rate, server.proc.pid)
                row = {"endpoint": endpoint, "mode": mode, "connections": connections,
                       "target_rps": round(rate, 1) if rate else None, **stats}
                print(json.dumps({k: row[k] for k in ("endpoint", "mode", "connections", "target_rps", "rps",
                                                      "p50_ms", "p90_ms", "p99_ms", "server_cpu_ms_per_request",
                                                      "server_cores", "wrk_cores", "other_cores")}), flush=True)
                return row

            for endpoint in ENDPOINTS:  # warm-up: every worker has seen every endpoint and many users
                run_wrk(wrk, server.base, paths[endpoint], 8, 3)
            for endpoint in ENDPOINTS:
                for c in args.connections:
                    runs.append(measure(endpoint, "max", c))
            best = {e: max((r for r in runs if r["endpoint"] == e and r["mode"] == "max"), key=lambda r: r["rps"])
                    for e in ENDPOINTS}
            for endpoint in ("recommendations", "home"):
                runs.append(measure(endpoint, "70%", args.load_connections, LOAD_SHARE * best[endpoint]["rps"],
                                    seconds=2 * args.seconds))
            rate = LOAD_SHARE * best["recommendations"]["rps"]
            raw, under_profile = profile(py_spy, server, args.seconds, tmp / "profile.txt", lambda: run_wrk(
                wrk, server.base, paths["recommendations"], args.load_connections, args.seconds + 2, rate))
            prof = summarize_profile(raw)
            if args.keep_profile:
                shutil.copyfile(raw, args.keep_profile)
            prof.update({"tool": "py-spy record --subprocesses --nonblocking at 200 Hz (threads waiting in select or on a condition left out)",
                         "endpoint": "recommendations", "target_rps": round(rate, 1), "rps": under_profile["rps"],
                         "p99_ms": under_profile["p99_ms"], "seconds": args.seconds})
        # the refresh path alone, for comparison: no kept pools, every request runs the whole pipeline
        with Server(data, args.workers, free_port(), tmp / "server-refresh.log",
                    {"STREAMREC_SERVING__RANKED_TTL_S": "0"}) as server:
            for endpoint in ("recommendations", "home"):
                run_wrk(wrk, server.base, paths[endpoint], 8, 3)
                c = best[endpoint]["connections"]
                stats = run_wrk(wrk, server.base, paths[endpoint], c, args.seconds, 0.0, server.proc.pid)
                runs.append({"endpoint": endpoint, "mode": "max, refresh path on every request",
                             "connections": c, "target_rps": None, **stats})
                print(json.dumps({"endpoint": endpoint, "mode": runs[-1]["mode"], "rps": stats["rps"],
                                  "p99_ms": stats["p99_ms"]}), flush=True)
    at70 = {r["endpoint"]: r for r in runs if r["mode"] == "70%"}
    ratio = best["recommendations"]["rps"] / best["healthz"]["rps"]
    result = {
        "command": "python bench/serving.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "load_avg_at_start": os.getloadavg()},
        "world": {"size": args.size if args.data is None else f"data folder {args.data}", "seed": args.seed,
                  **counts, "build_seconds": round(world_seconds, 1)},
        "server": {"command": "streamrec serve --workers N --clock data --model champion", "workers": args.workers,
                   "settings": "STREAMREC_SERVING__WARM_POOLS=<all users> (pools ranked at load), ranked_ttl_s and "
                               "ranked_pool at their defaults; the refresh-path rows: STREAMREC_SERVING__RANKED_TTL_S=0",
                   "model_version": served["version"], "model_kind": served["kind"]},
        "load": {"tool": wrk_version, "threads": 1, "seconds": args.seconds, "users": len(users),
                 "fixed_rate": "bench/serving.lua delay(): a schedule of 1/rate seconds per request, catching up "
                               "when late; latency from the send"},
        "runs": runs,
        "max_rps": {e: r["rps"] for e, r in best.items()},
        "max_connections": {e: r["connections"] for e, r in best.items()},
        "ratio": round(ratio, 4), "ratio_target": RATIO_TARGET, "ratio_met": ratio >= RATIO_TARGET,
        "at_70": {e: {k: r[k] for k in ("target_rps", "rps", "connections", "p50_ms", "p90_ms", "p99_ms")}
                  for e, r in at70.items()},
        "p99_target_ms": P99_TARGET_MS, "p99_met": at70["recommendations"]["p99_ms"] <= P99_TARGET_MS,
        "profile": prof,
        "seconds": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("max_rps", "ratio", "ratio_met", "at_70", "p99_met")}, indent=2))
    print(json.dumps(prof["stages"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
