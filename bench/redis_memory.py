"""Redis memory per user (issue 9, for docs/capacity.md): the online store's history, features and ranked pools of a
scale world in a real redis-server, measured with INFO memory (used_memory before and after each part) and
MEMORY USAGE of the keys.

The world comes from bench/scale.py: a data folder kept by `scale.py --keep` (`--work DIR`), or, without one, a 1M
world built here by scale.py's own stages (generate, ingest, preprocess, train). Parts, filled in this order:
  features   every user's and title's feature vector (materialize, features only)
  histories  every user's latest engagements (materialize; up to history_length = 200 per user)
  pools      the ranked pools of the most recently active users (the refresh path, pool of 100 titles)
  live       engagements recorded by the realtime worker's path (record): the dedup key per event, history growth
Writes bench/results/redis_memory.json.

    .venv/bin/python bench/redis_memory.py                                  # a 1M world built here
    .venv/bin/python bench/redis_memory.py --work /tmp/scale-runs/bench-scale-20M-XXXX
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # tests/redis_helpers.py: the same redis-server the tests start
sys.path.insert(0, str(BENCH))

import scale
from tests.redis_helpers import RedisServer

RESULT = BENCH / "results" / "redis_memory.json"
POOL_USERS = 2000
LIVE_EVENTS = 20_000


def used(client) -> int:
    return int(client.info("memory")["used_memory"])


def usage(client, keys: list[str]) -> dict:
    sizes = [int(client.memory_usage(k, samples=0)) for k in keys]
    return {"keys": len(sizes), "mean_bytes": round(sum(sizes) / max(len(sizes), 1), 1),
            "max_bytes": max(sizes, default=0)}


def measure(work: Path, url: str) -> dict:
    import numpy as np
    import redis

    from streamrec.features import events_relation
    from streamrec.features.materialize import ENGAGEMENTS, materialize
    from streamrec.pipeline.bundle import PipelineBundle
    from streamrec.pipeline.serving import OnlinePipeline, ServingCatalog
    from streamrec.settings import RedisOnlineStoreConfig
    from streamrec.storage.events import open_event_store
    from streamrec.storage.online import open_online_store
    from streamrec.storage.online.base import HistoryEntry, LiveEvent

    client = redis.Redis.from_url(url)
    client.flushall()
    config = RedisOnlineStoreConfig(url=url)
    store = open_online_store(config)
    settings = scale._settings(work)
    bundle = PipelineBundle.load(work / "bundle")
    out: dict = {"redis_version": client.info()["redis_version"], "history_length": config.history_length,
                 "seen_ttl_s": config.seen_ttl_s}
    with open_event_store(settings, read_only=True) as events_store:
        con = events_store.con
        events = events_relation(con)
        at = con.execute(f"SELECT max(ts) FROM {events}").fetchone()[0] + timedelta(seconds=1)
        out["events"] = con.execute(f"SELECT count(*) FROM {events}").fetchone()[0]
        kinds = ", ".join(f"'{t}'" for t in ENGAGEMENTS)  # what the realtime worker records (impressions are not)
        out["engagements"] = con.execute(f"SELECT count(*) FROM {events} WHERE type IN ({kinds})").fetchone()[0]
        out["engagement_share"] = round(out["engagements"] / out["events"], 4)
        base = used(client)
        features = materialize(con, store, at, events, bundle.definitions, histories=False)
        after_features = used(client)
        filled = materialize(con, store, at, events, bundle.definitions)  # features again (same size) + histories
        after_histories = used(client)
        catalog = ServingCatalog.from_store(con)
        recent = [r[0] for r in con.execute(
            f"SELECT user_id FROM {events} GROUP BY user_id ORDER BY max(ts) DESC, user_id LIMIT {POOL_USERS}"
        ).fetchall()]
        users = [r[0] for r in con.execute(f"SELECT DISTINCT user_id FROM {events} ORDER BY 1").fetchall()]
        items = [r[0] for r in con.execute(f"SELECT DISTINCT item_id FROM {events} ORDER BY 1").fetchall()]
    users_with_features, titles = features.rows["user"], features.rows["title"]
    feature_names = len(bundle.definitions)
    out["features"] = {"users": users_with_features, "titles": titles, "bytes": after_features - base,
                       "bytes_per_entity": round((after_features - base) / (users_with_features + titles), 1)}
    hist_keys = [k.decode() for k in client.scan_iter(match="streamrec:hist:*", count=10_000)]
    out["histories"] = {"users": filled.histories, "entries": filled.history_entries,
                        "bytes": after_histories - after_features,
                        "bytes_per_user": round((after_histories - after_features) / filled.histories, 1),
                        "bytes_per_entry": round((after_histories - after_features) / filled.history_entries, 1),
                        "entries_per_user": round(filled.history_entries / filled.histories, 1),
                        "sample": usage(client, hist_keys[:2000])}
    feat = {entity: int(client.memory_usage(f"streamrec:feat:{entity}", samples=0)) for entity in ("user", "title")}
    out["features"]["memory_usage"] = feat
    out["features"]["definitions"] = feature_names

    pipeline = OnlinePipeline(bundle, catalog, store, ranked_ttl_s=86_400.0, pool_size=settings.serving.ranked_pool,
                              name="capacity")
    before = used(client)
    began = time.perf_counter()
    for user in recent:
        pipeline.refresh(user, at)
    seconds = time.perf_counter() - began
    pool_keys = [k.decode() for k in client.scan_iter(match="streamrec:ranked:*", count=10_000)]
    out["pools"] = {"users": len(recent), "pool_size": pipeline.pool_size, "bytes": used(client) - before,
                    "bytes_per_pool": round((used(client) - before) / len(recent), 1), "sample": usage(client, pool_keys),
                    "refresh_users_per_s": round(len(recent) / seconds, 1)}

    rng = np.random.default_rng(0)
    live = [LiveEvent(f"live-{i:09d}", users[int(rng.integers(len(users)))],
                      HistoryEntry(items[int(rng.integers(len(items)))], at + timedelta(seconds=i), "play", None))
            for i in range(LIVE_EVENTS)]
    before = used(client)
    store.record(live)
    seen_keys = [k.decode() for k in client.scan_iter(match="streamrec:seen:*", count=10_000)]
    out["live"] = {"events": len(live), "bytes": used(client) - before,
                   "bytes_per_event": round((used(client) - before) / len(live), 1),
                   "seen_key": usage(client, seen_keys[:2000])}
    info = client.info("memory")
    out["used_memory"] = int(info["used_memory"])
    out["used_memory_rss"] = int(info["used_memory_rss"])
    out["keys"] = int(client.dbsize())
    store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="a data folder kept by `bench/scale.py --keep`")
    parser.add_argument("--size", default="1M", choices=list(scale.SIZES), help="world built here without --work")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    from streamrec.logs import configure_logging

    configure_logging("warning")
    tmp = Path(tempfile.mkdtemp(prefix="bench-redis-memory-"))
    try:
        work, size = args.work, None
        if work is None:
            work, size = tmp / "world", args.size
            work.mkdir()
            for stage in ("generate", "ingest", "preprocess", "train"):
                scale.run_child(stage, size, work)
        server = RedisServer(tmp / "redis").start()
        try:
            result = measure(work, server.url)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"benchmark": "Redis memory of the online store per user (bench/redis_memory.py)",
              "command": ".venv/bin/python bench/redis_memory.py" + (f" --work {args.work}" if args.work else ""),
              "world": size or args.work.name, "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
              **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("features", "histories", "pools", "live")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
