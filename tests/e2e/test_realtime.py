"""Real-time processing on a real tiny world: the embedded worker beside the API, and the production path — POST
/v1/events → Redis Streams → `Worker` processes in one consumer group → the Redis online store → the next list —
with replays that change nothing, and Redis stopped and restarted mid-stream for real: no event lost, serving
answers from fallbacks while it is down (/readyz degraded), POST /v1/events holds what it accepts in its outbox, and
all recovers by itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from streamrec.errors import BackendError
from streamrec.events.bus import open_event_bus
from streamrec.realtime import Worker
from streamrec.serving import build_state, create_app
from streamrec.settings import DuckDBEventStoreConfig, load_settings
from streamrec.storage.events.duckdb import DuckDBEventStore
from streamrec.storage.online import open_online_store
from tests.helpers import served_world, wait_until
from tests.redis_helpers import free_port

KEY = "realtime-key-1234"


@pytest.fixture(scope="module")
def world(tiny_world_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("realtime")
    served_world(tiny_world_store, root, {"v1": 10})
    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb", read_only=True) as store:
        con = store.con
        users = [r[0] for r in con.execute("SELECT user_id FROM interactions GROUP BY 1 ORDER BY count(*) DESC, 1 "
                                           "LIMIT 10").fetchall()]
        items = [r[0] for r in con.execute("SELECT item_id FROM titles ORDER BY 1").fetchall()]
    return {"root": root, "users": users, "items": items}


def settings_for(world, url: str | None = None, **serving):
    extra = {}
    if url is not None:  # the production path: Redis Streams and the Redis online store
        extra = {"event_bus": {"type": "redis", "url": url, "claim_idle_ms": 300, "publish_timeout_s": 1.0},
                 "online_store": {"type": "redis", "url": url}}
    return load_settings(data_dir=world["root"], serving={"clock": "data", "api_keys": [KEY],
                                                          "model": str(world["root"] / "v1"), **serving}, **extra)


def top(client, user: str, k: int = 10) -> list[str]:
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": k})
    assert r.status_code == 200, r.text
    return [t["item_id"] for t in r.json()["items"]]


def finished(state, event_id: str, user: str, item: str) -> dict:
    ts = (state.world.clock() - timedelta(seconds=1)).isoformat() + "Z"
    return {"event_id": event_id, "user_id": user, "item_id": item, "type": "complete", "ts": ts, "fraction": 1.0}


def test_embedded_worker_applies_an_accepted_event_before_the_answer_and_a_replay_changes_nothing(world):
    settings = settings_for(world)
    state = build_state(settings)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    user = world["users"][0]
    before = top(client, user)
    event = finished(state, "rt-e1", user, before[0])
    assert client.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": KEY}).status_code == 202
    assert before[0] not in top(client, user)
    history = state.world.store.history(user)
    assert client.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": KEY}).status_code == 202
    assert state.world.store.history(user) == history  # the replay was recorded once
    assert state.world.applier.counts["applied"] == 1 and state.world.applier.counts["duplicates"] == 1


def test_the_worker_verb_refuses_the_in_process_bus_and_says_how(world):
    run = subprocess.run([sys.executable, "-m", "streamrec", "--data-dir", str(world["root"]), "worker",
                          "--seconds", "1"], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "event_bus.type" in run.stdout + run.stderr


def test_redis_path_an_event_reaches_the_next_list_through_the_stream_and_a_worker(world, redis_url):
    settings = settings_for(world, redis_url)
    state = build_state(settings)
    assert not state.world.apply_live  # on Redis Streams the serving process does not apply events itself
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    worker = Worker(open_event_bus(settings.event_bus), open_online_store(settings.online_store), "w1")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop, 50), daemon=True)
    thread.start()
    try:
        user = world["users"][1]
        before = top(client, user)
        event = finished(state, "rt-redis-1", user, before[0])
        assert client.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": KEY}).status_code == 202
        wait_until(lambda: before[0] not in top(client, user), what="the finished title left the list")
        client.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": KEY})  # a replay
        wait_until(lambda: worker.counts.get("duplicates", 0) == 1, what="the replay was seen")
        assert worker.counts["applied"] == 1
    finally:
        stop.set()
        thread.join(10)
        worker.close()


def live_batch(world, start: int, n: int, day_ts: str) -> list[dict]:
    users, items = world["users"], world["items"]
    return [{"event_id": f"load-{i}", "user_id": users[i % len(users)], "item_id": items[i % len(items)],
             "type": "play", "ts": day_ts} for i in range(start, start + n)]


def test_two_workers_in_one_group_apply_each_event_exactly_once(world, redis_url):
    settings = settings_for(world, redis_url)
    bus = open_event_bus(settings.event_bus)
    store = open_online_store(settings.online_store)
    events = live_batch(world, 0, 3000, "2026-05-01T10:00:00")
    for i in range(0, len(events), 500):
        bus.publish(events[i:i + 500])
    bus.publish(events[:200])  # replays, as an at-least-once producer sends them
    workers = [Worker(open_event_bus(settings.event_bus), open_online_store(settings.online_store), f"w{i}",
                      count=200) for i in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop, 50), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sum(w.counts.get("applied", 0) + w.counts.get("duplicates", 0) for w in workers) == 3200,
                   30, "every entry handled")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for w in workers:
            w.close()
    assert sum(w.counts["applied"] for w in workers) == 3000
    assert all(w.counts.get("applied", 0) > 0 for w in workers)  # the group shared the stream
    from datetime import date

    assert sum(store.title_counts([date(2026, 5, 1)]).values()) == 3000


def test_redis_stopped_and_restarted_mid_stream_loses_no_event_and_serving_recovers(world, own_redis):
    settings = settings_for(world, own_redis.url)
    state = build_state(settings)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    user = world["users"][2]
    assert client.get(f"/v1/users/{user}/recommendations").json()["fallback"] is None
    worker = Worker(open_event_bus(settings.event_bus), open_online_store(settings.online_store), "w-fault",
                    count=100)
    stop = threading.Event()
    consumer = threading.Thread(target=worker.run, args=(stop, 50), daemon=True)
    consumer.start()
    producer_bus = open_event_bus(settings.event_bus)
    events = live_batch(world, 0, 2000, "2026-05-02T10:00:00")
    refused = 0

    def produce() -> None:  # an at-least-once producer: a refused batch is sent again until the bus takes it
        nonlocal refused
        for i in range(0, len(events), 50):
            while True:
                try:
                    producer_bus.publish(events[i:i + 50])
                    break
                except BackendError:
                    refused += 1
                    time.sleep(0.05)
            time.sleep(0.005)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        wait_until(lambda: worker.counts.get("applied", 0) > 200, 20, "the worker is applying")
        own_redis.stop()  # Redis goes away mid-stream
        down = client.get(f"/v1/users/{user}/recommendations")
        assert down.status_code == 200 and down.json()["fallback"] == "store_unavailable" and down.json()["items"]
        home = client.get(f"/v1/users/{user}/home")
        assert home.status_code == 200 and home.json()["fallback"] == "store_unavailable"
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and any("online store" in r for r in ready["reasons"])
        held_event = finished(state, "rt-down", user, world["items"][0])
        posted = client.post("/v1/events", json={"events": [held_event]},
                             headers={"X-API-Key": KEY})  # accepted all the same: held in the outbox, on disk
        assert posted.status_code == 202 and posted.json()["accepted"] == 1 and posted.json()["held"] == 1
        assert any("event bus unavailable" in r for r in client.get("/readyz").json()["reasons"])
        time.sleep(1.0)
        own_redis.start()  # back on the same port, with its append-only file
        producer.join(60)
        assert not producer.is_alive()
        from datetime import date

        store = open_online_store(settings.online_store)
        wait_until(lambda: sum(store.title_counts([date(2026, 5, 2)]).values()) == len(events), 60,
                   "every event applied after the restart")
        time.sleep(0.5)
        assert sum(store.title_counts([date(2026, 5, 2)]).values()) == len(events)  # and none twice
        held_day = datetime.fromisoformat(held_event["ts"].removesuffix("Z")).date()  # no other live event that day
        wait_until(lambda: store.title_counts([held_day]).get(held_event["item_id"]) == 1, 30,
                   "the event held during the outage published from the outbox and applied")
        assert state.world.outbox.held() == 0
        assert refused > 0 or worker.outages > 0  # the outage was felt, not skipped
        wait_until(lambda: client.get(f"/v1/users/{user}/recommendations").json()["fallback"] is None, 30,
                   "serving recovered by itself")
        wait_until(lambda: client.get("/readyz").json()["status"] == "ready", 30, "/readyz ready again")
    finally:
        stop.set()
        consumer.join(10)
        worker.close()
        state.close()


def worker_metric(port: int, name: str, **labels: str) -> float | None:
    """One sample of the worker's /metrics (None when it has no such sample)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())), None)


def test_the_worker_verb_applies_events_and_stops_gracefully_on_sigterm(world, redis_url, tmp_path):
    import os
    import signal
    from datetime import date

    env = {**os.environ, "STREAMREC_EVENT_BUS__TYPE": "redis", "STREAMREC_EVENT_BUS__URL": redis_url,
           "STREAMREC_ONLINE_STORE__TYPE": "redis", "STREAMREC_ONLINE_STORE__URL": redis_url}
    settings = settings_for(world, redis_url)
    bus, store = open_event_bus(settings.event_bus), open_online_store(settings.online_store)
    bus.publish(live_batch(world, 0, 500, "2026-05-03T10:00:00"))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamrec", "--data-dir", str(world["root"]), "worker", "--name",
                             "cli-1", "--batch", "100", "--metrics-port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: sum(store.title_counts([date(2026, 5, 3)]).values()) == 500, 60, "the CLI worker applied")
        bus.publish(live_batch(world, 500, 100, "2026-05-03T10:00:00"))
        wait_until(lambda: sum(store.title_counts([date(2026, 5, 3)]).values()) == 600, 30, "and keeps applying")
        wait_until(lambda: worker_metric(port, "streamrec_worker_consumer_lag") == 0, 30, "the lag went to 0")
        assert worker_metric(port, "streamrec_worker_events_total", outcome="applied") == 600
        assert worker_metric(port, "streamrec_worker_newest_event_timestamp_seconds") == \
            datetime.fromisoformat("2026-05-03T10:00:00+00:00").timestamp()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "applied 600" in out and "stopped after" in out


def stored_ids(db, prefix: str) -> list[str]:
    with DuckDBEventStore(DuckDBEventStoreConfig(), db, read_only=True) as store:
        return [r[0] for r in store.con.execute("SELECT event_id FROM events WHERE event_id LIKE ? ORDER BY 1",
                                                [prefix + "%"]).fetchall()]


def ingest_landed(root, folder) -> None:
    from streamrec.events.runner import ingest_paths
    from streamrec.settings import IngestConfig

    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb") as store:
        ingest_paths(store, [folder], IngestConfig(unknown_titles="accept"))


def test_accepted_events_are_landed_and_ingested_into_the_event_store_exactly_once(world, tmp_path):
    root = tmp_path / "land"
    shutil.copytree(world["root"], root, ignore=shutil.ignore_patterns("incoming", "experiments"))
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "model": str(root / "v1")})
    state = build_state(settings)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    user = world["users"][4]
    batch = [finished(state, f"land-{i}", user, item) for i, item in enumerate(world["items"][:3])]
    for events in (batch, batch[:2]):  # the second post repeats two events (a client retry)
        assert client.post("/v1/events", json={"events": events}, headers={"X-API-Key": KEY}).status_code == 202
    folder = root / "incoming" / "live"
    assert len(list(folder.glob("date=*/part-*.parquet"))) == 2 and not list(folder.glob("date=*/.*"))
    ingest_landed(root, folder)
    ingest_landed(root, folder)  # again: the manifest skips the files
    assert stored_ids(root / "events.duckdb", "land-") == ["land-0", "land-1", "land-2"]


def test_the_worker_lands_each_batch_before_acknowledging_it(world, redis_url, tmp_path):
    from streamrec.realtime.landing import EventLanding

    root = tmp_path / "land-redis"
    shutil.copytree(world["root"], root, ignore=shutil.ignore_patterns("incoming", "experiments"))
    settings = settings_for(world, redis_url)
    bus = open_event_bus(settings.event_bus)
    events = live_batch(world, 0, 300, "2026-05-04T10:00:00")
    bus.publish(events)
    bus.publish(events[:50])  # delivered again: landed twice, stored once
    landing = EventLanding(root / "incoming" / "live")
    worker = Worker(open_event_bus(settings.event_bus), open_online_store(settings.online_store), "lander",
                    count=100, landing=landing)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop, 50), daemon=True)
    thread.start()
    try:
        wait_until(lambda: landing.written == 350, 30, "every delivered event landed")
    finally:
        stop.set()
        thread.join(10)
        worker.close()
    ingest_landed(root, root / "incoming" / "live")
    assert stored_ids(root / "events.duckdb", "load-") == sorted(e["event_id"] for e in events)
