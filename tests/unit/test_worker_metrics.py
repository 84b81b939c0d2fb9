"""The worker's Prometheus metrics over its own HTTP port: events by outcome, the consumer group's lag on the bus and
the freshness of the online store move as the worker applies a batch."""

from __future__ import annotations

import socket
import time
import urllib.request
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from streamrec.events.bus.inprocess import InProcessEventBus
from streamrec.realtime.metrics import serve_worker_metrics
from streamrec.realtime.worker import Worker
from streamrec.storage.online.memory import MemoryOnlineStore

NEWEST = datetime(2026, 5, 1, 10, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def events() -> list[dict]:
    plays = [{"event_id": f"p{i}", "user_id": f"u{i % 4}", "item_id": f"t{i}", "type": "play",
              "ts": NEWEST - timedelta(minutes=i)} for i in range(6)]
    shown = [{"event_id": f"i{i}", "user_id": "u0", "item_id": f"t{i}", "type": "impression",
              "ts": NEWEST - timedelta(minutes=i), "request_id": "r", "position": i, "row": "top"} for i in range(3)]
    return plays + shown + plays[:2]  # two replays


def test_worker_metrics_move_as_a_batch_is_applied():
    bus = InProcessEventBus()
    worker = Worker(bus, MemoryOnlineStore(), "w1", count=100)
    port = free_port()
    server = serve_worker_metrics(worker, bus, port)
    try:
        bus.publish(events())
        before = scrape(port)
        group = worker.consumer.group
        assert before[("streamrec_worker_consumer_lag", frozenset({("group", group)}))] == 11
        assert before[("streamrec_worker_events_total", frozenset({("outcome", "applied")}))] == 0
        assert before[("streamrec_worker_bus_up", frozenset({("group", group)}))] == 1
        assert not any(name == "streamrec_worker_freshness_seconds" for name, _ in before)  # nothing applied yet
        worker.consumer.poll_once()
        after = scrape(port)
        assert after[("streamrec_worker_events_total", frozenset({("outcome", "applied")}))] == 6
        assert after[("streamrec_worker_events_total", frozenset({("outcome", "duplicates")}))] == 2
        assert after[("streamrec_worker_events_total", frozenset({("outcome", "ignored")}))] == 3
        assert after[("streamrec_worker_consumer_lag", frozenset({("group", group)}))] == 0
        newest = NEWEST.replace(tzinfo=UTC).timestamp()
        assert after[("streamrec_worker_newest_event_timestamp_seconds", frozenset())] == newest
        assert abs(after[("streamrec_worker_freshness_seconds", frozenset())] - (time.time() - newest)) < 60
    finally:
        server.shutdown()
        server.server_close()
