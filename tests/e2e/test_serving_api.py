"""The serving API on a real tiny world: lists, homepages, similar titles, events that change the next list, the
fallback chain (each named and counted), API keys and limits, hot swap under concurrent load with zero failed
requests, and a corrupted artifact that keeps the old model (schemathesis over every operation, 1,000+ cases:
tests/e2e/test_reliability_api.py)."""

from __future__ import annotations

import shutil
import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from streamrec.pipeline.filters import REASONS
from streamrec.serving import build_state, create_app
from streamrec.settings import load_settings

from tests.helpers import served_world, most_active_users

KEY = "test-key-1234"


@pytest.fixture(scope="module")
def world(tiny_world_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    served_world(tiny_world_store, root, {"v1": 10, "v2": 12})
    users = most_active_users(root / "events.duckdb", 20)
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "model": str(root / "v1"),
                                                     "max_batch": 50, "max_body_bytes": 100_000})
    return {"root": root, "settings": settings, "users": users}


@pytest.fixture(scope="module")
def api(world):
    state = build_state(world["settings"])
    client = TestClient(create_app(world["settings"], state), raise_server_exceptions=False)
    return {**world, "state": state, "client": client}


def attributed(body: dict, version: str | None = "v1") -> None:
    assert body["request_id"] and body["variant"] == "default" and body["experiment"] is None and body["model_version"] == version


def why(state, user: str, items: set[str], region=None) -> dict[str, str]:
    world = state.world
    _, reason = world.filter.allowed(world.context(user, region), world.clock())
    return {item: REASONS[reason[world.filter.index[item]]] for item in sorted(items)}


def forbidden(state, user: str, region=None) -> set[str]:
    world = state.world
    allowed, _ = world.filter.allowed(world.context(user, region), world.clock())
    return {item for item, ok in zip(world.filter.item_ids, allowed) if not ok}


def test_a_known_user_gets_a_ranked_list_attributed_to_the_model(api):
    client, state = api["client"], api["state"]
    for user in api["users"][:5]:
        r = client.get(f"/v1/users/{user}/recommendations", params={"k": 7, "explain": True})
        assert r.status_code == 200, r.text
        body = r.json()
        attributed(body)
        assert r.headers["x-request-id"] == body["request_id"] and r.headers["x-model-version"] == "v1"
        assert r.headers["x-experiment-variant"] == "default" and "x-experiment" not in r.headers
        assert body["fallback"] is None and 0 < len(body["items"]) <= 7
        items = [t["item_id"] for t in body["items"]]
        assert len(set(items)) == len(items) and not set(items) & forbidden(state, user)
        assert all(t["explanation"] for t in body["items"])


def test_an_unknown_user_gets_cold_start_titles_of_the_region(api):
    client, state = api["client"], api["state"]
    for region in ("US", "IN"):
        body = client.get("/v1/users/never-seen/recommendations", params={"k": 5, "region": region}).json()
        assert body["fallback"] == "cold_start" and body["region"] == region and len(body["items"]) == 5
        assert not {t["item_id"] for t in body["items"]} & forbidden(state, "never-seen", region)
    default = client.get("/v1/users/never-seen/recommendations").json()
    assert default["region"] == state.world.default_region
    assert "streamrec_fallbacks_total{fallback=\"cold_start\"}" in client.get("/metrics").text


def test_the_homepage_has_rows_without_repeats_in_a_per_user_order(api):
    client, state = api["client"], api["state"]
    orders = set()
    for user in api["users"][:10]:
        body = client.get(f"/v1/users/{user}/home").json()
        attributed(body)
        rows = body["rows"]
        assert {"top_picks", "trending"} <= {r["id"] for r in rows}
        items = [t["item_id"] for r in rows for t in r["items"]]
        assert len(items) == len(set(items)), "a title in two rows"
        for r in rows:  # continue watching shows started titles again: only the "watched" rule may not apply there
            bad = {t["item_id"] for t in r["items"]} & forbidden(state, user)
            reasons = why(state, user, bad)
            if r["id"] == "continue_watching":
                reasons = {item: reason for item, reason in reasons.items() if reason != "watched"}
            assert not reasons, f"row {r['id']} shows titles the filters forbid: {reasons}"
        assert all(0 < len(r["items"]) <= state.settings.serving.row_size for r in rows)
        if any(r["id"] == "continue_watching" for r in rows):
            assert rows[0]["id"] == "continue_watching"
        if any(r["id"] == "because_you_watched" for r in rows):
            assert next(r for r in rows if r["id"] == "because_you_watched")["title"].startswith("Because You Watched")
        orders.add(tuple(r["id"] for r in rows))
    assert len(orders) > 1, "every user got the same row order"
    cold = client.get("/v1/users/never-seen/home", params={"region": "GB"}).json()
    assert cold["fallback"] == "cold_start" and [r["id"] for r in cold["rows"]][0] == "trending"


def test_similar_titles_come_from_the_model_and_an_unknown_title_is_a_404(api):
    client = api["client"]
    item = api["state"].world.filter.item_ids[0]
    top = api["state"].holder.current.scorer().item_ids_[0]
    body = client.get(f"/v1/titles/{top}/similar", params={"k": 5}).json()
    attributed(body)
    assert body["fallback"] is None and 0 < len(body["items"]) <= 5 and top not in {t["item_id"] for t in body["items"]}
    missing = client.get("/v1/titles/no-such-title/similar")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert "no-such-title" in missing.json()["message"] and item


def test_posted_events_are_validated_as_ingestion_does_and_change_the_next_list(api):
    client, state = api["client"], api["state"]
    user = api["users"][6]
    before = [t["item_id"] for t in client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()["items"]]
    ts = (state.world.clock() - timedelta(seconds=5)).isoformat() + "Z"
    good = {"event_id": "api-e1", "user_id": user, "item_id": before[0], "type": "complete", "ts": ts, "fraction": 1}
    bad = [{"event_id": "api-e2", "user_id": user, "item_id": "no-such-title", "type": "play", "ts": ts},
           {"event_id": "api-e3", "user_id": user, "item_id": before[1], "type": "jump", "ts": ts},
           {"event_id": "api-e4", "user_id": user, "item_id": before[1], "type": "progress", "ts": "yesterday"}]
    assert client.post("/v1/events", json={"events": [good]}).status_code == 401
    assert client.post("/v1/events", json={"events": [good]}, headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.post("/v1/events", json={"events": [good, *bad, good]}, headers={"X-API-Key": KEY})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["duplicates"] == 1
    assert [(x["index"], x["field"], x["reason"]) for x in body["rejected"]] == [
        (1, "item_id", "unknown_title"), (2, "type", "bad_enum"), (3, "ts", "bad_type")]
    after = [t["item_id"] for t in client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()["items"]]
    assert before[0] not in after, "a title just finished is still recommended"
    only_bad = client.post("/v1/events", json={"events": bad}, headers={"X-API-Key": KEY})
    assert only_bad.status_code == 422 and only_bad.json()["problems"][0]["where"] == "events.0.item_id"
    many = client.post("/v1/events", json={"events": [good] * 51}, headers={"X-API-Key": KEY})
    assert many.status_code == 422 and "max_batch" in many.json()["message"]
    huge = client.post("/v1/events", content=b"{" + b" " * 200_000 + b"}", headers={"X-API-Key": KEY,
                                                                                    "Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"] == "too_large"
    assert KEY not in client.get("/metrics").text


def test_limits_and_bad_input_are_4xx_that_say_what_and_where(api):
    client = api["client"]
    r = client.get("/v1/users/u1/recommendations", params={"k": 10_000})
    assert r.status_code == 422 and r.json()["problems"][0]["where"] == "query.k"
    r = client.post("/v1/admin/reload", json={"model": "x"})
    assert r.status_code == 401 and r.json()["problems"][0]["where"] == "header.x-api-key"
    r = client.options("/v1/users/u1/recommendations", headers={"Origin": "https://evil.example",
                                                                "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers  # CORS is off by default
    r = client.post("/v1/events", content=b"not json", headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["problems"][0]["where"].startswith("body")


def test_a_failing_ranker_falls_back_to_candidate_scores_counted(api):
    client, state = api["client"], api["state"]
    ranker = state.holder.current.pipeline.bundle.ranker
    names = ranker.names_
    ranker.names_ = names[:-1]  # the ranker now rejects the rows: score() raises
    try:  # a device no earlier request used: no kept pool, so the refresh path ranks (and fails) now
        body = client.get(f"/v1/users/{api['users'][0]}/recommendations", params={"device": "brokenranker"}).json()
    finally:
        ranker.names_ = names
    assert body["fallback"] == "candidate_scores" and body["items"]
    assert not {t["item_id"] for t in body["items"]} & forbidden(state, api["users"][0])
    metrics = client.get("/metrics").text
    assert 'streamrec_fallbacks_total{fallback="candidate_scores"}' in metrics
    assert 'streamrec_pipeline_events_total{name="ranker_failed"}' in metrics


def test_without_a_model_known_users_get_trending_and_readyz_says_why(world):
    settings = world["settings"].model_copy(deep=True)
    settings.serving.model = str(world["root"] / "no-such-model")
    state = build_state(settings)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    body = client.get(f"/v1/users/{world['users'][0]}/recommendations").json()
    attributed(body, None)
    assert body["fallback"] == "trending" and body["items"]
    assert not {t["item_id"] for t in body["items"]} & forbidden(state, world["users"][0])
    ready = client.get("/readyz").json()
    assert ready["status"] == "degraded" and "no-such-model" in ready["reasons"][0]
    assert 'streamrec_fallbacks_total{fallback="trending"}' in client.get("/metrics").text


def test_hot_swap_under_concurrent_load_fails_no_request(api):
    client, root = api["client"], api["root"]
    users = api["users"]
    failures, versions, stop = [], set(), threading.Event()

    def load(n: int) -> None:
        i = n
        while not stop.is_set():
            r = client.get(f"/v1/users/{users[i % len(users)]}/recommendations", params={"k": 10})
            i += 1
            if r.status_code != 200 or r.json()["fallback"] is not None:
                failures.append((r.status_code, r.text[:200]))
            else:
                versions.add(r.json()["model_version"])

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for ref in ("v2", "v1", "v2"):
            r = client.post("/v1/admin/reload", json={"model": str(root / ref)}, headers={"X-API-Key": KEY})
            assert r.status_code == 200 and r.json()["served"]["version"] == ref
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures and versions == {"v1", "v2"}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": "v2", "reasons": []}
    client.post("/v1/admin/reload", json={"model": str(root / "v1")}, headers={"X-API-Key": KEY})


def test_a_corrupted_artifact_keeps_the_old_model_and_readyz_says_degraded(api):
    client, root = api["client"], api["root"]
    broken = root / "v3"
    shutil.copytree(root / "v2", broken, dirs_exist_ok=True)
    definitions = broken / "definitions.json"
    definitions.write_text(definitions.read_text().replace("user_plays", "user_pleys"))
    r = client.post("/v1/admin/reload", json={"model": str(broken)}, headers={"X-API-Key": KEY})
    assert r.status_code == 422 and "checksum" in r.json()["message"].lower()
    assert "Traceback" not in r.text
    ready = client.get("/readyz").json()
    assert ready["status"] == "degraded" and ready["model_version"] == "v1" and "v3" in ready["reasons"][0]
    assert client.get(f"/v1/users/{api['users'][0]}/recommendations").json()["model_version"] == "v1"
    assert client.post("/v1/admin/reload", json={}, headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"


def test_the_registry_champion_is_served_and_promote_swaps_it(api):
    client, root, state = api["client"], api["root"], api["state"]
    registry = state.registry()
    numbers = [registry.register(registry.log_training_run(root / name, data_snapshot="tiny").run_id)
               for name in ("v1", "v2")]
    registry.promote(numbers[0])
    r = client.post("/v1/admin/reload", json={"model": "champion"}, headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json()["served"]["version"] == str(numbers[0])
    listed = client.get("/v1/models").json()
    assert {v["version"]: v["aliases"] for v in listed["registry"]}[numbers[0]] == ["champion"]
    assert listed["served"]["kind"] == "pipeline" and listed["model_version"] == str(numbers[0])
    r = client.post("/v1/admin/promote", json={"version": str(numbers[1])}, headers={"X-API-Key": KEY})
    assert r.status_code == 200, r.text
    assert (r.json()["champion"], r.json()["previous"]) == (numbers[1], numbers[0])
    assert r.json()["served"]["version"] == str(numbers[1]) == r.headers["x-model-version"]
    missing = client.post("/v1/admin/promote", json={"version": "99"}, headers={"X-API-Key": KEY})
    assert missing.status_code in (404, 422) and "99" in missing.json()["message"]


def test_the_serve_verb_builds_the_app_and_prints_where_it_listens(world, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from streamrec.cli.app import app

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: seen.update(target=target, **kwargs))
    result = CliRunner().invoke(app, ["--data-dir", str(world["root"]), "serve", "--model", str(world["root"] / "v2"),
                                      "--port", "8123", "--clock", "data"])
    assert result.exit_code == 0, result.output
    assert seen["port"] == 8123 and seen["host"] == "127.0.0.1"
    assert seen["target"].state.serving.holder.current.version == "v2"
    assert "serving model version v2 (pipeline) on http://127.0.0.1:8123" in result.output and "curl" in result.output


def test_warm_pools_rank_active_users_at_load_so_their_first_request_only_reads(world):
    settings = world["settings"].model_copy(update={"serving": world["settings"].serving.model_copy(
        update={"warm_pools": 5})})
    state = build_state(settings)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    served = state.world.store
    active = sorted((u for u in state.world.profiles if served.history(u)), key=lambda u: (served.history(u)[-1].ts, u),
                    reverse=True)[:5]
    for user in active:
        assert client.get(f"/v1/users/{user}/recommendations").status_code == 200
    metrics = client.get("/metrics").text
    hits = [line for line in metrics.splitlines() if line.startswith('streamrec_pipeline_events_total{name="ranked_pool_hit"}')]
    assert hits and float(hits[0].split()[-1]) == 5
    assert 'streamrec_pipeline_events_total{name="ranked_pool_refresh"}' not in metrics


def test_only_a_data_clock_can_be_moved_and_only_with_a_key(world):
    settings = world["settings"]
    state = build_state(settings, load_model=False)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    at = "2030-01-02T03:04:05"
    assert client.post("/v1/admin/clock", json={"at": at}).status_code == 401
    r = client.post("/v1/admin/clock", json={"at": at}, headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json()["now"].startswith("2030-01-02T03:04")
    wall = settings.model_copy(update={"serving": settings.serving.model_copy(update={"clock": "now"})})
    client = TestClient(create_app(wall, build_state(wall, load_model=False)), raise_server_exceptions=False)
    r = client.post("/v1/admin/clock", json={"at": at}, headers={"X-API-Key": KEY})
    assert r.status_code == 422 and "wall clock" in r.json()["message"]
