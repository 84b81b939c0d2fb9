"""deploy/grafana/streamrec.json: an importable dashboard whose every PromQL expression names only metrics, and
groups and matches only on labels, that serving's registry or the worker's metrics expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from streamrec.events.bus.inprocess import InProcessEventBus
from streamrec.realtime.apply import EventApplier
from streamrec.serving.metrics import ServingMetrics
from streamrec.storage.online.memory import MemoryOnlineStore

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "streamrec.json"
SELECTOR = re.compile(r"\b(streamrec_[a-z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def exposed() -> dict[str, set[str]]:
    """Sample name → label names, for every metric registered by serving (whether or not it has been observed), and
    those of the worker (`streamrec worker`'s /metrics, as tests/unit/test_prometheus_alerts.py scrapes it)."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.unit.test_prometheus_alerts import worker_metrics

    samples: dict[str, set[str]] = {}
    for collector, names in ServingMetrics().registry._collector_to_names.items():
        labels = set(getattr(collector, "_labelnames", ()))
        for name in names:
            samples[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    for family in text_string_to_metric_families(worker_metrics()):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def graphs() -> list[dict]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def targets() -> list[tuple[str, dict]]:
    return [(p["title"], t) for p in graphs() for t in p["targets"]]


def test_the_dashboard_is_importable():
    doc = dashboard()
    assert doc["title"] and doc["uid"] and doc["schemaVersion"] >= 36
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in doc["templating"]["list"])
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in graphs():
        assert panel["title"] and panel["description"] and panel["datasource"]["uid"] == "${datasource}"
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]


def test_the_dashboard_covers_traffic_latency_errors_fallbacks_models_and_events():
    titles = " | ".join(p["title"] for p in graphs()).lower()
    for needed in ("traffic by endpoint", "p50", "p99", "errors by status", "fallbacks by kind", "model version",
                   "events accepted and rejected"):
        assert needed in titles, needed
    text = " ".join(t["expr"] for _, t in targets())
    for needed in ("histogram_quantile(0.5,", "histogram_quantile(0.99,", "sum by (le, route)", "sum by (status)",
                   "sum by (fallback)", "streamrec_model_info", "sum by (outcome) (rate(streamrec_api_events_total"):
        assert needed in text, needed


@pytest.mark.parametrize("target", targets(), ids=lambda t: f"{t[0]}/{t[1]['refId']}" if isinstance(t, tuple) else "")
def test_every_metric_and_label_exists_in_serving(target):
    title, t = target
    samples = exposed()
    found = SELECTOR.findall(t["expr"])
    assert found, f"{title}: no streamrec metric"
    labels: set[str] = set()
    for name, selector in found:
        assert name in samples, f"{title}: {name} is not exposed by serving ({sorted(samples)})"
        labels |= samples[name]
        for label, _op in MATCHER.findall(selector or ""):
            assert label in samples[name], f"{title}: {name} has no label '{label}'"
    for group in GROUPING.findall(t["expr"]):
        for label in filter(None, (x.strip() for x in group.split(","))):
            assert label in labels, f"{title}: grouped by '{label}', which none of {[n for n, _ in found]} has"
    for label in LEGEND.findall(t.get("legendFormat", "")):
        assert label in labels, f"{title}: the legend shows '{label}', which no referenced metric has"


def test_the_dashboard_covers_the_workers_lag_events_and_freshness():
    titles = " | ".join(p["title"] for p in graphs()).lower()
    for needed in ("consumer lag", "worker events by outcome", "freshness"):
        assert needed in titles, needed
    text = " ".join(t["expr"] for _, t in targets())
    for needed in ("streamrec_worker_consumer_lag", "sum by (outcome) (rate(streamrec_worker_events_total",
                   "streamrec_worker_freshness_seconds", "streamrec_worker_newest_event_timestamp_seconds"):
        assert needed in text, needed


def test_the_worker_panels_read_the_worker_beside_the_api_too():
    """The serving /metrics of an API with the embedded worker (in-process bus) carries the worker panels' names."""
    from datetime import datetime

    from prometheus_client.parser import text_string_to_metric_families

    metrics, bus = ServingMetrics(), InProcessEventBus()
    applier = EventApplier(MemoryOnlineStore())
    bus.subscribe(applier)
    metrics.embedded_worker(applier, bus)
    bus.publish([{"event_id": "e1", "user_id": "u1", "item_id": "t1", "type": "play", "ts": datetime(2026, 5, 1)}])
    served = {s.name for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}
    worker_panels = {name for _, t in targets() for name, _ in SELECTOR.findall(t["expr"])
                     if name.startswith("streamrec_worker_")}
    assert worker_panels - {"streamrec_worker_backend_outages_total", "streamrec_worker_bus_up"} <= served


def test_the_checks_catch_a_wrong_name():
    samples = exposed()
    assert "streamrec_http_requests_total" in samples and "streamrec_http_requests_totl" not in samples
    assert "le" in samples["streamrec_http_request_seconds_bucket"] and "le" not in samples["streamrec_fallbacks_total"]
