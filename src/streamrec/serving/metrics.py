"""Prometheus metrics of one app (its own registry, so several apps in one process do not collide).

With several server processes (`streamrec serve --workers N`) each process counts into its own memory, and a scrape
reaches one of them at random. `serve` then sets PROMETHEUS_MULTIPROC_DIR before the workers start: prometheus_client
keeps every value in a per-process file there, and /metrics renders all of them together (MultiProcessCollector).
Gauges say how the processes' values combine (`multiprocess_mode`); counters and histograms are summed.

On the request path: one label lookup and increment per metric, and a dictionary store per title served (coverage)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
FOLLOW_OUTCOMES = ("current", "reloaded", "failed", "waiting", "registry_error")


def multiprocess_dir() -> str | None:
    """The folder of multi-process mode, when this process runs in it (set before prometheus_client was imported)."""
    return os.environ.get(MULTIPROC_VARIABLE) or None


class Coverage:
    """Distinct titles served in the last `window_s` seconds over the catalog's size. `seen` costs a dictionary store
    per title; the count (a pass over the titles seen) is taken at most every `every_s` seconds."""

    def __init__(self, window_s: float = 600.0, every_s: float = 10.0):
        self.window_s, self.every_s = window_s, every_s
        self.last: dict[str, float] = {}  # title → monotonic time it was last served
        self._next = 0.0

    def seen(self, items: Iterable[str], now: float) -> None:
        last = self.last
        for item in items:
            last[item] = now

    def due(self, now: float) -> bool:
        return now >= self._next

    def share(self, catalog_size: int, now: float) -> float:
        """The share now (old titles dropped); the next count is due `every_s` later."""
        self._next = now + self.every_s
        horizon = now - self.window_s
        self.last = {item: t for item, t in self.last.items() if t >= horizon}
        return len(self.last) / catalog_size if catalog_size else 0.0


NEWEST = "streamrec_worker_newest_event_timestamp_seconds"
FRESHNESS_HELP = ("seconds from the newest engagement applied (its event time) to now: how far the online store is "
                  "behind")


class _Freshness(Collector):
    """streamrec_worker_freshness_seconds as of the scrape, from the newest applied event time `newest()` gives."""

    def __init__(self, newest: Callable[[], float | None]):
        self.newest = newest

    def collect(self) -> Iterator[Metric]:
        ts = self.newest()
        if ts:
            yield GaugeMetricFamily("streamrec_worker_freshness_seconds", FRESHNESS_HELP,
                                    value=max(time.time() - ts, 0.0))


class _Collected(Collector):
    """Metrics collected once (the processes' files), handed to a registry for rendering."""

    def __init__(self, metrics: list[Metric]):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


class ServingMetrics:
    def __init__(self, coverage_window_s: float = 600.0) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess_dir()
        r = self.registry
        self.requests = Counter("streamrec_http_requests", "HTTP requests by route template and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("streamrec_http_request_seconds", "request latency by route template and experiment "
                                 "variant ('default' outside experiments)", ["route", "variant"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.fallbacks = Counter("streamrec_fallbacks", "responses served by a fallback, by fallback",
                                 ["fallback"], registry=r)
        self.pipeline = Counter("streamrec_pipeline_events", "what the ranked pipeline counted (candidates before the "
                                "filters, filtered titles by reason, missing features, ranker failures ...)", ["name"],
                                registry=r)
        self.events = Counter("streamrec_api_events", "events posted to /v1/events by outcome (accepted, rejected, "
                              "duplicate: a repeated event_id within the batch; held: accepted while the event bus was "
                              "down, kept in the outbox; republished: published from the outbox once it was back)",
                              ["outcome"], registry=r)
        self.rejected = Counter("streamrec_api_events_rejected", "events refused by /v1/events, by reason",
                                ["reason"], registry=r)
        self.reloads = Counter("streamrec_model_reloads", "model loads by outcome", ["outcome"], registry=r)
        self.follow_checks = Counter("streamrec_model_follow_checks", "looks at the registry alias the served model "
                                     "follows (serving.follow_alias_s) by outcome (current: it points at the served "
                                     "version; reloaded: a new version swapped in; failed: its load failed, the old "
                                     "model kept; waiting: a failed version not due for another try; registry_error: "
                                     "the registry could not be read)", ["outcome"], registry=r)
        for outcome in FOLLOW_OUTCOMES:  # every outcome from 0, so increase() sees the first one
            self.follow_checks.labels(outcome)
        # each process serves one version: 1 for it, 0 for those it served before; the highest across live processes
        self.model = Gauge("streamrec_model_info", "the served model (value 1)", ["version", "kind"], registry=r,
                           multiprocess_mode="livemax")
        self.coverage_share = Gauge("streamrec_recommendation_coverage", "distinct titles recommended in the last "
                                    f"{coverage_window_s:.0f} s over the catalog's titles (with several processes: the "
                                    "highest of the processes, each seeing a share of the traffic)", registry=r,
                                    multiprocess_mode="livemax")
        self.coverage = Coverage(coverage_window_s)
        self._catalog_size = 0
        self._served: tuple[str, str] | None = None
        self._applier: Any = None  # the embedded worker's applier (in-process bus), see `embedded_worker`
        self._worker_lock = threading.Lock()
        self._synced: dict[str, int] = {}
        self._newest_gauge: Gauge | None = None
        self._newest_ts: float | None = None

    def embedded_worker(self, applier: Any, bus: Any) -> None:
        """Export the worker beside the API (in-process bus: its applier is a subscriber of `bus`) under the names of
        `streamrec worker`'s metrics: events by outcome, consumer lag (0: events are applied inside the publish that
        accepts them) and freshness. Counted by a subscriber after the applier, so several processes add up."""
        from streamrec.realtime.metrics import OUTCOMES

        r = self.registry
        self.worker_events = Counter("streamrec_worker_events", "live events handled by outcome (applied: new to the "
                                     "online store; duplicates: an event_id applied before; ignored: not an "
                                     "engagement)", ["outcome"], registry=r)
        for outcome in OUTCOMES:
            self.worker_events.labels(outcome)
        lag = Gauge("streamrec_worker_consumer_lag", "entries of the consumer group not acknowledged yet (the worker "
                    "beside the API applies inside the publish: always 0)", ["group"], registry=r,
                    multiprocess_mode="livesum")
        lag.labels("embedded").set(0)
        self._applier = applier
        if not self.multiprocess:
            r.register(_Freshness(lambda: self._newest_ts))
        bus.subscribe(self._sync_worker)

    def _sync_worker(self, _events: object) -> None:
        applier = self._applier
        with self._worker_lock:
            for outcome, n in list(applier.counts.items()):
                delta = n - self._synced.get(outcome, 0)
                if delta > 0:
                    self.worker_events.labels(outcome).inc(delta)
                    self._synced[outcome] = n
            newest = applier.newest
            if newest is not None:
                if self._newest_gauge is None:  # created on the first event, so no 0 reads as "1970"
                    self._newest_gauge = Gauge(NEWEST, "event time (ts) of the newest engagement applied to the "
                                               "online store", registry=self.registry, multiprocess_mode="max")
                self._newest_ts = (newest if newest.tzinfo else newest.replace(tzinfo=UTC)).timestamp()
                self._newest_gauge.set(self._newest_ts)

    def fallback(self, name: str | None) -> None:
        if name:
            self.fallbacks.labels(name).inc()

    def counts(self, counts: Mapping[str, int]) -> None:
        for name, n in counts.items():
            if n:
                self.pipeline.labels(name).inc(n)

    def recommended(self, items: Iterable[str], catalog_size: int) -> None:
        """Titles shown in a response (for coverage)."""
        now = time.monotonic()
        self._catalog_size = catalog_size
        self.coverage.seen(items, now)
        if self.coverage.due(now):
            self.coverage_share.set(self.coverage.share(catalog_size, now))

    def served(self, version: str, kind: str) -> None:
        if self._served is not None and self._served != (version, kind):
            self.model.labels(*self._served).set(0)
        self._served = (version, kind)
        self.model.labels(version, kind).set(1)

    def render(self) -> bytes:
        if self._catalog_size:  # this process's coverage as of now (the others' as of their last count)
            self.coverage_share.set(self.coverage.share(self._catalog_size, time.monotonic()))
        if self.multiprocess:
            from prometheus_client import multiprocess

            metrics = list(multiprocess.MultiProcessCollector(None, path=self.multiprocess).collect())
            newest = max((s.value for m in metrics if m.name == NEWEST for s in m.samples), default=None)
            registry = CollectorRegistry()
            registry.register(_Collected(metrics + list(_Freshness(lambda: newest).collect())))
            return generate_latest(registry)
        return generate_latest(self.registry)
