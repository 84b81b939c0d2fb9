"""deploy/prometheus/alerts.yml: well-formed rules, and every metric and label they reference exists in serving or the
worker."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamrec.events.bus.inprocess import InProcessEventBus
from streamrec.realtime.metrics import WorkerCollector
from streamrec.realtime.worker import Worker
from streamrec.serving.metrics import ServingMetrics
from streamrec.storage.online.memory import MemoryOnlineStore

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
SELECTOR = re.compile(r"\b(streamrec_[a-z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"')


def exposed() -> dict[str, set[str]]:
    """Sample name → label names, from a registry where every serving metric has seen one observation."""
    m = ServingMetrics()
    m.requests.labels("/v1/users/{user_id}/recommendations", "200").inc()
    m.latency.labels("/v1/users/{user_id}/recommendations", "default").observe(0.01)
    m.fallback("trending")
    m.counts({"filtered_watched": 1})
    m.events.labels("accepted").inc()
    m.reloads.labels("failed").inc()
    m.served("v1", "pipeline")
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(m.render().decode() + worker_metrics()):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def worker_metrics() -> str:
    """The worker's /metrics after it applied one event."""
    bus = InProcessEventBus()
    worker = Worker(bus, MemoryOnlineStore(), "w1")
    bus.publish([{"event_id": "e1", "user_id": "u1", "item_id": "t1", "type": "play", "ts": datetime(2026, 5, 1)}])
    worker.consumer.poll_once()
    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker, bus))
    return generate_latest(registry).decode()


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_are_well_formed():
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert doc["groups"] and all(g["name"] and g["rules"] for g in doc["groups"])
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names)) >= 4
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_the_worker_rules_cover_lag_stalls_freshness_and_the_bus():
    names = {r["alert"] for r in rules()}
    assert {"StreamrecWorkerLagging", "StreamrecWorkerStalled", "StreamrecOnlineStoreStale",
            "StreamrecWorkerBusDown"} <= names
    text = " ".join(r["expr"] for r in rules())
    for needed in ("streamrec_worker_consumer_lag", "streamrec_worker_events_total", "streamrec_worker_freshness_seconds",
                   "streamrec_worker_bus_up"):
        assert needed in text


def test_the_rules_cover_latency_errors_fallbacks_and_model_loads():
    text = " ".join(r["expr"] for r in rules())
    for needed in ("streamrec_http_request_seconds_bucket", 'status=~"5..', "streamrec_fallbacks_total",
                   'streamrec_model_reloads_total{outcome="failed"}'):
        assert needed in text


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_referenced_metric_and_label_exists_in_serving(rule):
    samples = exposed()
    found = SELECTOR.findall(rule["expr"])
    assert found, f"{rule['alert']} references no streamrec metric"
    for name, selector in found:
        assert name in samples, f"{rule['alert']}: {name} is not exposed by serving ({sorted(samples)})"
        for label, _op in MATCHER.findall(selector or ""):
            assert label in samples[name], f"{rule['alert']}: {name} has no label '{label}'"
    for label in re.findall(r"\$labels\.([a-zA-Z_]+)", str(rule["annotations"])):
        assert label == "instance" or any(label in samples[n] for n, _ in found), label
