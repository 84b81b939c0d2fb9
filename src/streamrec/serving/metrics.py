"""Prometheus metrics of one app (its own registry, so several apps in one process do not collide)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("streamrec_http_requests", "HTTP requests by route template and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("streamrec_http_request_seconds", "request latency by route template", ["route"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                                 registry=self.registry)
        self.fallbacks = Counter("streamrec_fallbacks", "responses served by a fallback, by fallback",
                                 ["fallback"], registry=self.registry)
        self.pipeline = Counter("streamrec_pipeline_events", "what the ranked pipeline counted (filtered titles, "
                                "missing features, ranker failures ...)", ["name"], registry=self.registry)
        self.events = Counter("streamrec_api_events", "events posted to /v1/events by outcome", ["outcome"],
                              registry=self.registry)
        self.reloads = Counter("streamrec_model_reloads", "model loads by outcome", ["outcome"],
                               registry=self.registry)
        self.model = Gauge("streamrec_model_info", "the served model (value 1)", ["version", "kind"],
                           registry=self.registry)

    def fallback(self, name: str | None) -> None:
        if name:
            self.fallbacks.labels(name).inc()

    def counts(self, counts: Mapping[str, int]) -> None:
        for name, n in counts.items():
            if n:
                self.pipeline.labels(name).inc(n)

    def served(self, version: str, kind: str) -> None:
        self.model.clear()
        self.model.labels(version, kind).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
