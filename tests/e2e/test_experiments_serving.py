"""Experiments in serving on a real tiny world: each user's variant (sticky, by hashing) decides the model and the
pipeline settings of their lists; every response names experiment and variant (body and headers); exposures and the
outcome events posted afterwards land in the exposure log attributed to the variant; ineligible users and a broken
variant model are handled and said."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from streamrec.experiments.assign import Assigner
from streamrec.experiments.exposure import read_log
from streamrec.serving import build_state, create_app
from streamrec.settings import load_settings
from tests.helpers import served_world, users_and_regions

KEY = "experiments-key-1234"


@pytest.fixture(scope="module")
def served(tiny_world_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("experiments")
    served_world(tiny_world_store, root, {"v1": 10, "v2": 12})
    users, regions = users_and_regions(root / "events.duckdb")
    region = regions[users[0]]
    experiments = [{"name": "ranker-test", "regions": [region], "variants": [
        {"name": "control"}, {"name": "treatment", "model": str(root / "v2"), "diversity": 0.0}]}]
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "model": str(root / "v1")},
                             experiments=experiments)
    state = build_state(settings)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    return {"root": root, "settings": settings, "state": state, "client": client, "users": users,
            "regions": regions, "region": region}


def test_each_user_gets_the_model_of_their_sticky_variant_and_the_response_says_so(served):
    client, region = served["client"], served["region"]
    assigner = Assigner(served["settings"].experiments)
    seen = set()
    for user in [u for u in served["users"] if served["regions"][u] == region][:30]:
        want = assigner.variant_of(assigner.by_name["ranker-test"], user)
        for path in (f"/v1/users/{user}/recommendations", f"/v1/users/{user}/home"):
            for _ in range(2):  # sticky
                r = client.get(path)
                assert r.status_code == 200, r.text
                body = r.json()
                assert (body["experiment"], body["variant"]) == ("ranker-test", want)
                assert body["model_version"] == ("v2" if want == "treatment" else "v1")
                assert r.headers["x-experiment"] == "ranker-test" and r.headers["x-experiment-variant"] == want
                assert r.headers["x-model-version"] == body["model_version"]
        seen.add(want)
    assert seen == {"control", "treatment"}


def test_users_outside_the_eligible_region_are_in_no_experiment(served):
    client = served["client"]
    other = next(u for u in served["users"] if served["regions"][u] != served["region"])
    body = client.get(f"/v1/users/{other}/recommendations").json()
    assert body["experiment"] is None and body["variant"] == "default" and body["model_version"] == "v1"
    r = client.get(f"/v1/users/{other}/recommendations", params={"region": served["region"]})
    assert r.json()["experiment"] == "ranker-test"  # the request's region counts


def test_exposures_and_later_outcomes_land_in_the_log_attributed_to_the_variant(served):
    client, state = served["client"], served["state"]
    user = next(u for u in served["users"] if served["regions"][u] == served["region"])
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": 5})
    body = r.json()
    ts = (state.world.clock() - timedelta(seconds=1)).isoformat() + "Z"
    events = [{"event_id": "exp-imp-1", "user_id": user, "item_id": body["items"][0]["item_id"], "type": "impression",
               "ts": ts, "request_id": body["request_id"], "position": 0},
              {"event_id": "exp-play-1", "user_id": user, "item_id": body["items"][0]["item_id"], "type": "play",
               "ts": ts, "request_id": body["request_id"]}]
    assert client.post("/v1/events", json={"events": events}, headers={"X-API-Key": KEY}).status_code == 202
    state.experiments.log.flush()
    log = read_log(served["root"] / "experiments" / "exposures", "ranker-test").to_pylist()
    mine = [row for row in log if row["request_id"] == body["request_id"]]
    assert sorted(row["type"] for row in mine) == ["exposure", "impression", "play"]
    assert {row["variant"] for row in mine} == {body["variant"]} and {row["user_id"] for row in mine} == {user}


def test_a_variant_model_that_cannot_load_is_named_and_its_users_get_the_served_model(served, tmp_path):
    settings = served["settings"].model_copy(update={"experiments": [
        served["settings"].experiments[0].model_copy(update={"variants": [
            served["settings"].experiments[0].variants[0],
            served["settings"].experiments[0].variants[1].model_copy(update={"model": str(tmp_path / "missing")})]})]})
    state = build_state(settings)
    client = TestClient(create_app(settings, state), raise_server_exceptions=False)
    ready = client.get("/readyz").json()
    assert ready["status"] == "degraded" and any("experiment variant model" in r for r in ready["reasons"])
    for user in [u for u in served["users"] if served["regions"][u] == served["region"]][:10]:
        body = client.get(f"/v1/users/{user}/recommendations").json()
        assert body["model_version"] == "v1" and body["fallback"] is None


def test_definitions_are_listed_and_replaced_through_the_admin_api(served):
    client, state = served["client"], served["state"]
    listed = client.get("/v1/experiments").json()
    assert [e["name"] for e in listed["experiments"]] == ["ranker-test"]
    new = [{"name": "diversity-test", "variants": [{"name": "low", "diversity": 0.0}, {"name": "high",
                                                                                       "diversity": 0.8}]}]
    assert client.put("/v1/admin/experiments", json={"experiments": new}).status_code == 401
    bad = [new[0], {**new[0]}]  # a repeated name
    r = client.put("/v1/admin/experiments", json={"experiments": bad}, headers={"X-API-Key": KEY})
    assert r.status_code == 422 and "repeat" in r.json()["message"]
    r = client.put("/v1/admin/experiments", json={"experiments": [{"name": "x", "variants": [{"name": "a"}]}]},
                   headers={"X-API-Key": KEY})
    assert r.status_code == 422 and "variants" in r.json()["problems"][0]["where"]
    try:
        r = client.put("/v1/admin/experiments", json={"experiments": new}, headers={"X-API-Key": KEY})
        assert r.status_code == 200, r.text
        assert [e["name"] for e in client.get("/v1/experiments").json()["experiments"]] == ["diversity-test"]
        body = client.get(f"/v1/users/{served['users'][0]}/recommendations").json()
        assert body["experiment"] == "diversity-test" and body["variant"] in ("low", "high")
        assert body["model_version"] == "v1"
    finally:  # the module's other tests keep their experiment
        state.set_experiments(served["settings"].experiments)
