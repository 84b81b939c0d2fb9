"""Prometheus metrics of one app (its own registry, so several apps in one process do not collide).

With several server processes (`streamrec serve --workers N`) each process counts into its own memory, and a scrape
reaches one of them at random. `serve` then sets PROMETHEUS_MULTIPROC_DIR before the workers start: prometheus_client
keeps every value in a per-process file there, and /metrics renders all of them together (MultiProcessCollector).
Gauges say how the processes' values combine (`multiprocess_mode`); counters and histograms are summed.

On the request path: one label lookup and increment per metric, and a dictionary store per title served (coverage)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


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
                              "duplicate: a repeated event_id within the batch)", ["outcome"], registry=r)
        self.rejected = Counter("streamrec_api_events_rejected", "events refused by /v1/events, by reason",
                                ["reason"], registry=r)
        self.reloads = Counter("streamrec_model_reloads", "model loads by outcome", ["outcome"], registry=r)
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

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess)
            return generate_latest(registry)
        return generate_latest(self.registry)
