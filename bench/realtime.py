"""Real-time benchmark (issue 6): freshness — from POST /v1/events until a recommendations response reflects the
event — on the embedded path (in-process bus, the worker beside the API, memory online store) and the Redis path
(Redis Streams → a `streamrec worker` process → the Redis online store → `streamrec serve`); worker throughput on
Redis (1 and 2 worker processes in one consumer group); and online-store reads per request, memory vs Redis.

World: `streamrec demo --size SIZE --no-serve` in a temporary folder (as bench/serving.py). Redis: Debian's
redis-server on a free loopback port (tests/redis_helpers.py installs it when missing).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/realtime.py
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/realtime.py --trials 100 --events 100000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # tests/redis_helpers.py: the same redis-server the tests start
from serving import BIN, Server, build_world, free_port  # noqa: E402  (bench/ is on sys.path)

from tests.redis_helpers import RedisServer  # noqa: E402

RESULT = BENCH / "results" / "realtime.json"
KEY = "bench-realtime-key"
TARGETS_MS = {"embedded": 50.0, "redis": 500.0}
WORKER_TARGET = 20_000.0


def percentiles(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3)}


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        # no Nagle: a small POST must not wait for the server's delayed ACK (40 ms on Linux)
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"X-API-Key": KEY}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())


def newest_event(data: Path) -> datetime:
    import duckdb

    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    try:
        return con.execute("SELECT max(ts) FROM events").fetchone()[0]
    finally:
        con.close()


def active_users(data: Path, n: int) -> list[str]:
    import duckdb

    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT user_id FROM interactions GROUP BY 1 ORDER BY count(*) DESC, 1 "
                                          "LIMIT ?", [n]).fetchall()]
    finally:
        con.close()


def freshness(port: int, users: list[str], ts: datetime, trials: int, tag: str, timeout_s: float = 5.0) -> dict:
    """Per trial: a user's top title, a `complete` of it posted, then lists read until it is gone; the time from
    sending the POST to receiving the first list without it."""
    client, times, polls = Client(port), [], []
    for i in range(trials):
        user = users[i % len(users)]
        status, body = client.call("GET", f"/v1/users/{user}/recommendations?k=10")
        assert status == 200 and body["fallback"] is None, body
        target = body["items"][0]["item_id"]
        event = {"event_id": f"fresh-{tag}-{i}", "user_id": user, "item_id": target, "type": "complete",
                 "ts": (ts + timedelta(milliseconds=i)).isoformat() + "Z", "fraction": 1.0}
        began = time.perf_counter()
        status, body = client.call("POST", "/v1/events", {"events": [event]})
        assert status == 202 and body["accepted"] == 1, body
        n = 0
        while True:
            n += 1
            status, body = client.call("GET", f"/v1/users/{user}/recommendations?k=10")
            if target not in [t["item_id"] for t in body["items"]]:
                break
            if time.perf_counter() - began > timeout_s:
                raise SystemExit(f"{tag}: trial {i} not reflected within {timeout_s} s")
            time.sleep(0.002)
        times.append((time.perf_counter() - began) * 1000)
        polls.append(n)
    return {**percentiles(times), "mean_reads_until_fresh": round(float(np.mean(polls)), 2)}


def redis_env(url: str) -> dict[str, str]:
    return {"STREAMREC_EVENT_BUS__TYPE": "redis", "STREAMREC_EVENT_BUS__URL": url,
            "STREAMREC_EVENT_BUS__MAXLEN": "2000000", "STREAMREC_ONLINE_STORE__TYPE": "redis",
            "STREAMREC_ONLINE_STORE__URL": url}


def start_workers(data: Path, env: dict[str, str], n: int, log: Path, batch: int = 1000) -> list[subprocess.Popen]:
    return [subprocess.Popen([str(BIN / "streamrec"), "--data-dir", str(data), "--log-level", "warning", "worker",
                              "--name", f"bench-{i}", "--batch", str(batch)], env={**os.environ, **env},
                             stdout=log.open("a"), stderr=subprocess.STDOUT) for i in range(n)]


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def worker_throughput(data: Path, url: str, n_events: int, workers: int, users: list[str], items: list[str],
                      log: Path) -> dict:
    """`n_events` engagements published first, then `workers` worker processes drain them: applied events per
    second between the first and the last progress seen (process start-up left out)."""
    import redis

    from streamrec.events.bus import open_event_bus
    from streamrec.settings import load_settings
    from streamrec.storage.online import open_online_store

    redis.Redis.from_url(url).flushall()
    settings = load_settings(data_dir=data, event_bus={"type": "redis", "url": url, "maxlen": 2_000_000},
                             online_store={"type": "redis", "url": url})
    bus, store = open_event_bus(settings.event_bus), open_online_store(settings.online_store)
    day = date(2030, 1, 1)
    for start in range(0, n_events, 5000):
        bus.publish([{"event_id": f"w{workers}-{i}", "user_id": users[i % len(users)], "item_id": items[i % len(items)],
                      "type": "play", "ts": datetime(2030, 1, 1, 12) + timedelta(milliseconds=i)}
                     for i in range(start, min(start + 5000, n_events))])
    procs = start_workers(data, redis_env(url), workers, log)
    samples: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = sum(store.title_counts([day]).values())
            samples.append((time.perf_counter(), done))
            if done >= n_events:
                break
            time.sleep(0.1)
    finally:
        stop_all(procs)
        bus.close()
        store.close()
    moving = [(t, d) for t, d in samples if d > 0]
    if len(moving) < 2 or moving[-1][1] < n_events:
        raise SystemExit(f"workers did not drain {n_events} events: {samples[-1]}")
    (t0, d0), (t1, d1) = moving[0], moving[-1]
    return {"workers": workers, "events": n_events, "seconds": round(t1 - t0, 2),
            "events_per_s": round((d1 - d0) / (t1 - t0), 1)}


def store_reads(data: Path, url: str, users: list[str], repeats: int) -> dict:
    """Per request reads of the online store, memory vs Redis, both filled by materialize from the event store:
    one user's history, 500 titles' feature vectors, and a ranked pool."""
    from streamrec.features import events_relation
    from streamrec.features.definitions import BUILTIN
    from streamrec.features.materialize import materialize
    from streamrec.settings import RedisOnlineStoreConfig
    from streamrec.storage.events import open_event_store
    from streamrec.settings import load_settings
    from streamrec.storage.online import MemoryOnlineStore, RankedPool, open_online_store

    settings = load_settings(data_dir=data)
    stores = {"memory": MemoryOnlineStore(), "redis": open_online_store(RedisOnlineStoreConfig(url=url,
                                                                                             namespace="reads"))}
    with open_event_store(settings, read_only=True) as events:
        con = events.con
        at = con.execute("SELECT max(ts) FROM events").fetchone()[0] + timedelta(seconds=1)
        titles = [r[0] for r in con.execute("SELECT item_id FROM titles ORDER BY 1 LIMIT 500").fetchall()]
        for store in stores.values():
            materialize(con, store, at, events_relation(con), list(BUILTIN), histories=True)
    pool = RankedPool(tuple(titles[:100]), tuple(float(i) for i in range(100)), ("ease",) * 100, "s", 0.0)
    out = {}
    for name, store in stores.items():
        for u in users:
            store.put_ranked(u, "k", pool, 600)
        laps: dict[str, list[float]] = {"history": [], "title_features_500": [], "ranked_pool": []}
        for i in range(repeats):
            user = users[i % len(users)]
            for what, call in (("history", lambda: store.history(user)),
                               ("title_features_500", lambda: store.get_features("title", titles)),
                               ("ranked_pool", lambda: store.get_ranked(user, "k"))):
                began = time.perf_counter()
                call()
                laps[what].append((time.perf_counter() - began) * 1000)
        out[name] = {what: percentiles(v) for what, v in laps.items()}
        store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trials", type=int, default=200, help="freshness trials per path")
    parser.add_argument("--events", type=int, default=200_000, help="events drained per worker throughput run")
    parser.add_argument("--data", type=Path, help="reuse a data folder made by the demo")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    result: dict = {"command": "python bench/realtime.py " + " ".join(sys.argv[1:] if argv is None else argv),
                    "machine": {"cores": os.cpu_count(), "platform": platform.platform()}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data or build_world(tmp, args.size, args.seed, tmp / "demo.log")
        users = active_users(data, 300)
        ts = newest_event(data) + timedelta(milliseconds=100)  # before the server's data clock, after every event
        env = {"STREAMREC_SERVING__API_KEYS": json.dumps([KEY]), "STREAMREC_SERVING__MAX_FEATURE_AGE_S": "99999999"}
        result["world"] = {"size": args.size, "seed": args.seed}

        with Server(data, 1, free_port(), tmp / "embedded.log", env) as server:
            result["freshness_embedded"] = freshness(server.port, users, ts, args.trials, "embedded")
            print("embedded", result["freshness_embedded"], flush=True)

        redis = RedisServer(tmp / "redis").start()
        try:
            import redis as redis_py

            redis_py.Redis.from_url(redis.url).flushall()
            renv = {**env, **redis_env(redis.url)}
            workers = start_workers(data, renv, 1, tmp / "workers.log")
            try:
                with Server(data, 1, free_port(), tmp / "redis-server.log", renv) as server:
                    result["freshness_redis"] = freshness(server.port, users, ts, args.trials, "redis")
                    print("redis", result["freshness_redis"], flush=True)
            finally:
                stop_all(workers)
            import duckdb

            con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
            items = [r[0] for r in con.execute("SELECT item_id FROM titles ORDER BY 1").fetchall()]
            con.close()
            result["worker_throughput"] = [worker_throughput(data, redis.url, args.events, n, users, items,
                                                             tmp / "workers.log") for n in (1, 2)]
            print("workers", result["worker_throughput"], flush=True)
            redis_py.Redis.from_url(redis.url).flushall()
            result["store_reads"] = store_reads(data, redis.url, users, 2000)
            print("reads", json.dumps(result["store_reads"]), flush=True)
            result["redis_version"] = redis_py.Redis.from_url(redis.url).info()["redis_version"]
        finally:
            redis.stop()
    result["targets"] = {"freshness_p99_ms": TARGETS_MS, "worker_events_per_s": WORKER_TARGET}
    result["met"] = {"embedded": result["freshness_embedded"]["p99_ms"] <= TARGETS_MS["embedded"],
                     "redis": result["freshness_redis"]["p99_ms"] <= TARGETS_MS["redis"],
                     "worker": max(w["events_per_s"] for w in result["worker_throughput"]) >= WORKER_TARGET}
    result["seconds"] = round(time.perf_counter() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["met"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
