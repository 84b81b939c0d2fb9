"""Prometheus metrics of `streamrec worker`, read from the worker when scraped (nothing is added to the apply loop):
events by outcome, polls, backend outages, the consumer group's lag on the bus and the freshness of the online store
(the newest event applied)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamrec.errors import BackendError
from streamrec.events.bus.base import EventBus
from streamrec.realtime.worker import Worker

OUTCOMES = ("applied", "duplicates", "ignored")


class WorkerCollector(Collector):
    """The counts of `worker` and the backlog of its consumer group on `bus`, as of each scrape."""

    def __init__(self, worker: Worker, bus: EventBus):
        self.worker, self.bus = worker, bus

    def collect(self) -> Iterator[Metric]:
        w = self.worker
        counts = w.counts
        events = CounterMetricFamily("streamrec_worker_events", "live events handled by outcome (applied: new to the "
                                     "online store; duplicates: an event_id applied before; ignored: not an "
                                     "engagement)", labels=["outcome"])
        for outcome in OUTCOMES:
            events.add_metric([outcome], counts.get(outcome, 0))
        yield events
        yield CounterMetricFamily("streamrec_worker_polls", "reads from the event bus that worked", value=w.polls)
        yield CounterMetricFamily("streamrec_worker_backend_outages", "polls that found the bus or the online store "
                                  "unreachable (the batch waits, nothing is lost)", value=w.outages)
        group = w.consumer.group
        up = GaugeMetricFamily("streamrec_worker_bus_up", "1 when the bus answered the lag query of this scrape",
                               labels=["group"])
        try:
            backlog = self.bus.backlog(group)
        except BackendError:
            up.add_metric([group], 0)
        else:
            up.add_metric([group], 1)
            lag = GaugeMetricFamily("streamrec_worker_consumer_lag", "entries of the consumer group not acknowledged "
                                    "yet: pending (delivered, in hand or of a dead member) plus not yet delivered",
                                    labels=["group"])
            lag.add_metric([group], backlog)
            yield lag
        yield up
        newest = w.applier.newest
        if newest is not None:
            ts = (newest if newest.tzinfo else newest.replace(tzinfo=UTC)).timestamp()
            yield GaugeMetricFamily("streamrec_worker_newest_event_timestamp_seconds", "event time (ts) of the newest "
                                    "engagement applied to the online store", value=ts)
            yield GaugeMetricFamily("streamrec_worker_freshness_seconds", "seconds from the newest engagement applied "
                                    "(its event time) to now: how far the online store is behind", value=max(
                                        time.time() - ts, 0.0))


def serve_worker_metrics(worker: Worker, bus: EventBus, port: int, addr: str = "127.0.0.1"):
    """/metrics of `worker` on `addr:port` from a daemon thread; returns the HTTP server (call `shutdown()`)."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker, bus))
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
