"""Prometheus metrics of the serving API on a real tiny world with an experiment: what is served moves the latency
histogram of the request's variant, the counters of requests, fallbacks, pipeline counts and events (rejected by
reason), the served model's info and recommendation coverage."""

from __future__ import annotations

import time
from datetime import UTC, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from streamrec.experiments.assign import Assigner
from streamrec.serving import build_state, create_app
from streamrec.serving.metrics import Coverage, ServingMetrics
from streamrec.settings import load_settings
from tests.helpers import served_world, users_and_regions

KEY = "metrics-key-1234"
LIST = "/v1/users/{user_id}/recommendations"


@pytest.fixture(scope="module")
def served(tiny_world_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    served_world(tiny_world_store, root, {"v1": 10, "v2": 12})
    users, regions = users_and_regions(root / "events.duckdb")
    region = regions[users[0]]
    experiments = [{"name": "ranker-test", "regions": [region], "variants": [
        {"name": "control"}, {"name": "treatment", "model": str(root / "v2")}]}]
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "model": str(root / "v1")},
                             experiments=experiments)
    state = build_state(settings)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    return {"settings": settings, "state": state, "client": client, "users": users, "regions": regions,
            "region": region}


def scrape(client) -> dict[tuple[str, frozenset], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples, metric: str, **labels) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def test_latency_is_recorded_per_variant_and_requests_per_status(served):
    client = served["client"]
    assigner = Assigner(served["settings"].experiments)
    inside = [u for u in served["users"] if served["regions"][u] == served["region"]][:20]
    outside = [u for u in served["users"] if served["regions"][u] != served["region"]][:5]
    assert outside, "the tiny world has users outside the experiment's region"
    want = {"control": 0, "treatment": 0, "default": 0}
    for user in inside:
        want[assigner.variant_of(assigner.by_name["ranker-test"], user)] += 1
    want["default"] = len(outside) + 1  # and the refused request below (answered before any experiment)
    assert want["control"] and want["treatment"]
    before = scrape(client)
    for user in inside + outside:
        assert client.get(f"/v1/users/{user}/recommendations?k=5").status_code == 200
    assert client.get("/v1/users/u1/recommendations?k=0").status_code == 422
    after = scrape(client)
    for variant, n in want.items():
        moved = value(after, "streamrec_http_request_seconds_count", route=LIST, variant=variant) - value(
            before, "streamrec_http_request_seconds_count", route=LIST, variant=variant)
        assert moved == n, variant
        assert value(after, "streamrec_http_request_seconds_bucket", route=LIST, variant=variant, le="+Inf") == \
            value(after, "streamrec_http_request_seconds_count", route=LIST, variant=variant)
    assert value(after, "streamrec_http_requests_total", route=LIST, status="200") - \
        value(before, "streamrec_http_requests_total", route=LIST, status="200") == len(inside) + len(outside)
    assert value(after, "streamrec_http_requests_total", route=LIST, status="422") - \
        value(before, "streamrec_http_requests_total", route=LIST, status="422") == 1
    # the ranked pipeline's candidates and filters, the served model, and the share of the catalog recommended
    assert value(after, "streamrec_pipeline_events_total", name="candidates") > \
        value(before, "streamrec_pipeline_events_total", name="candidates")
    assert any(n == "streamrec_pipeline_events_total" and dict(labels)["name"].startswith("filtered_") and v > 0
               for (n, labels), v in after.items())
    assert [dict(labels)["version"] for (n, labels), v in after.items() if n == "streamrec_model_info" and v == 1] \
        == ["v1"]
    coverage = value(after, "streamrec_recommendation_coverage")
    assert 0 < coverage <= 1
    assert coverage * len(served["state"].world.filter.index) >= 5  # at least one list's titles


def test_fallbacks_are_counted_by_kind(served):
    client = served["client"]
    before = scrape(client)
    assert client.get("/v1/users/never-seen-user/recommendations").json()["fallback"] == "cold_start"
    after = scrape(client)
    assert value(after, "streamrec_fallbacks_total", fallback="cold_start") - \
        value(before, "streamrec_fallbacks_total", fallback="cold_start") == 1


def test_posted_events_are_counted_accepted_duplicate_and_rejected_by_reason(served):
    client, state = served["client"], served["state"]
    user, item = served["users"][0], state.world.filter.item_ids[0]
    ts = (state.world.clock() - timedelta(minutes=1)).isoformat()
    good = {"event_id": "metrics-e1", "user_id": user, "item_id": item, "type": "play", "ts": ts}
    unknown = {**good, "event_id": "metrics-e2", "type": "teleport"}
    before = scrape(client)
    r = client.post("/v1/events", json={"events": [good, good, unknown]}, headers={"X-API-Key": KEY})
    assert r.status_code == 202, r.text
    reasons = [x["reason"] for x in r.json()["rejected"]]
    assert reasons
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("streamrec_api_events_total", outcome="accepted") == r.json()["accepted"] >= 1
    assert moved("streamrec_api_events_total", outcome="duplicate") == r.json()["duplicates"] == 1
    assert moved("streamrec_api_events_total", outcome="rejected") == len(reasons)
    for reason in set(reasons):
        assert moved("streamrec_api_events_rejected_total", reason=reason) == reasons.count(reason)


def test_the_model_info_keeps_one_served_version_at_1():
    m = ServingMetrics()
    m.served("v1", "pipeline")
    m.served("v2", "ease")
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in text_string_to_metric_families(m.render().decode()) for s in f.samples}
    assert value(samples, "streamrec_model_info", version="v2", kind="ease") == 1
    assert value(samples, "streamrec_model_info", version="v1", kind="pipeline") == 0


def test_coverage_counts_distinct_titles_within_its_window():
    c = Coverage(window_s=60, every_s=10)
    c.seen(["a", "b"], 0.0)
    c.seen(["b", "c"], 30.0)
    assert c.due(30.0)
    assert c.share(10, 30.0) == 0.3
    assert not c.due(35.0)
    assert c.share(10, 70.0) == 0.2  # "a" left the window
    assert c.share(0, 70.0) == 0.0


def test_the_worker_beside_the_api_is_counted_on_the_serving_metrics(served):
    """In-process bus: the applier runs inside POST /v1/events, and /metrics shows it as `streamrec worker` would."""
    client, state = served["client"], served["state"]
    user, item = served["users"][1], state.world.filter.item_ids[1]
    at = state.world.clock()
    play = {"event_id": "metrics-w1", "user_id": user, "item_id": item, "type": "play", "ts": at.isoformat()}
    shown = {"event_id": "metrics-w2", "user_id": user, "item_id": item, "type": "impression", "ts": at.isoformat(),
             "request_id": "r-w", "position": 0, "row": "top_picks"}
    before = scrape(client)
    assert client.post("/v1/events", json={"events": [play, shown]}, headers={"X-API-Key": KEY}).status_code == 202
    assert client.post("/v1/events", json={"events": [play]}, headers={"X-API-Key": KEY}).status_code == 202
    after = scrape(client)

    def moved(outcome):
        return value(after, "streamrec_worker_events_total", outcome=outcome) - value(
            before, "streamrec_worker_events_total", outcome=outcome)

    assert (moved("applied"), moved("ignored"), moved("duplicates")) == (1, 1, 1)  # the replay changed nothing
    assert ("streamrec_worker_consumer_lag", frozenset({("group", "embedded")})) in after
    newest = value(after, "streamrec_worker_newest_event_timestamp_seconds")
    assert newest >= at.replace(tzinfo=UTC).timestamp() - 1e-3
    assert value(after, "streamrec_worker_freshness_seconds") == pytest.approx(time.time() - newest, abs=30)
