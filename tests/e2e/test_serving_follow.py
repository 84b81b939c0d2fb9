"""Following the registry's champion (serving.follow_alias_s) on a real tiny world and a real MLflow store: a version
promoted in the registry directly (not through the API) is served by itself; a version pinned by number stays; a
broken artifact for the new champion keeps the old model with the problem named, logged once; a registry that
cannot be reached neither stops the loop nor fills the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from streamrec.registry import open_registry
from streamrec.serving import build_state, create_app
from streamrec.settings import load_settings

from tests.e2e.test_serve_workers import free_port, get
from tests.helpers import served_world

KEY = "test-key-follow"
INTERVAL = 0.1


@pytest.fixture(scope="module")
def world(tiny_world_store, tmp_path_factory):
    """Two pipeline bundles registered as versions a and b of one MLflow sqlite store."""
    root = tmp_path_factory.mktemp("follow")
    served_world(tiny_world_store, root, {"a": 10, "b": 12})
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "follow_alias_s": INTERVAL})
    registry = open_registry(settings)
    a, b = (registry.register(registry.log_training_run(root / name, data_snapshot="tiny").run_id) for name in "ab")
    return {"root": root, "settings": settings, "registry": registry, "a": str(a), "b": str(b)}


@contextmanager
def serving(settings):
    """The app with its lifespan running (the follower starts with it and stops after)."""
    app = create_app(settings, build_state(settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, app.state.follower
    assert not app.state.follower.running


def wait_for(read: Callable[[], dict], done: Callable[[dict], bool], timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = read()
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s; last seen: {seen}")
        time.sleep(INTERVAL / 2)


def follow_checks(client) -> dict[str, float]:
    """streamrec_model_follow_checks_total by outcome, from /metrics."""
    text = client.get("/metrics").text
    return {s.labels["outcome"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "streamrec_model_follow_checks_total"}


def served_version(client) -> str | None:
    served = client.get("/v1/models").json()["served"]
    return served["version"] if served else None


def test_a_champion_promoted_in_the_registry_is_served_without_a_reload(world):
    registry = world["registry"]
    registry.promote(world["a"])
    with serving(world["settings"]) as (client, follower):
        assert follower.running and served_version(client) == world["a"]
        wait_for(lambda: follow_checks(client), lambda seen: seen["current"] >= 2)  # nothing moved: nothing loaded
        registry.promote(world["b"])
        models = wait_for(lambda: client.get("/v1/models").json(), lambda m: m["served"]["version"] == world["b"])
        assert models["served"]["ref"] == "champion" and models["problem"] is None
        listed = client.get("/v1/users/u000001/recommendations")
        assert listed.status_code == 200 and listed.headers["x-model-version"] == world["b"]
        assert client.get("/readyz").json() == {"status": "ready", "model_version": world["b"], "reasons": []}
        checks = follow_checks(client)
        assert checks["reloaded"] == 1 and checks["failed"] == checks["registry_error"] == 0
        assert 'streamrec_model_reloads_total{outcome="ok"} 2.0' in client.get("/metrics").text


def test_a_version_pinned_by_number_is_not_followed_until_a_reload_chooses_an_alias(world):
    registry = world["registry"]
    registry.promote(world["b"])
    pinned = world["settings"].model_copy(update={"serving": world["settings"].serving.model_copy(
        update={"model": world["a"]})})
    with serving(pinned) as (client, follower):
        assert follower.running and served_version(client) == world["a"]
        time.sleep(INTERVAL * 10)
        assert served_version(client) == world["a"] and set(follow_checks(client).values()) == {0.0}
        reloaded = client.post("/v1/admin/reload", json={"model": "champion"}, headers={"X-API-Key": KEY})
        assert reloaded.status_code == 200 and reloaded.json()["served"]["version"] == world["b"]
        registry.promote(world["a"])  # now chosen by the alias: followed
        wait_for(lambda: {"version": served_version(client)}, lambda seen: seen["version"] == world["a"])


def test_a_broken_new_champion_keeps_the_old_model_names_the_problem_and_is_logged_once(world):
    registry = world["registry"]
    registry.promote(world["a"])
    run = registry.log_training_run(world["root"] / "b", data_snapshot="tiny")
    broken = str(registry.register(run.run_id))
    definitions = Path(run.artifact_uri.removeprefix("file://")) / "model" / "definitions.json"
    definitions.write_text(definitions.read_text().replace("user_plays", "user_pleys"))
    with serving(world["settings"]) as (client, follower):
        assert served_version(client) == world["a"]
        with capture_logs() as logged:
            registry.promote(broken)
            ready = wait_for(lambda: client.get("/readyz").json(), lambda r: r["status"] == "degraded")
            wait_for(lambda: follow_checks(client), lambda seen: seen["failed"] >= 3 and seen["waiting"] >= 2)
        assert ready["model_version"] == world["a"] and "checksum mismatch" in ready["reasons"][0]
        assert "definitions.json" in ready["reasons"][0] and f"still serving version {world['a']}" in ready["reasons"][0]
        models = client.get("/v1/models").json()
        assert models["served"]["version"] == world["a"] and "checksum mismatch" in models["problem"]
        assert client.get("/v1/users/u000001/recommendations").headers["x-model-version"] == world["a"]
        failures = [e for e in logged if e["event"] in ("model.follow_failed", "model.load_failed")]
        assert [(e["event"], e["version"]) for e in failures] == [("model.follow_failed", int(broken))]
        registry.promote(world["a"])  # rolled back to what is served: the stale problem goes, nothing is loaded
        wait_for(lambda: client.get("/readyz").json(), lambda r: r["status"] == "ready")
        assert served_version(client) == world["a"] and follow_checks(client)["reloaded"] == 0


def test_an_unreachable_registry_neither_stops_the_loop_nor_fills_the_log(world, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # restored after the test (connecting sets them)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = world["settings"].model_copy(update={"registry": world["settings"].registry.model_copy(update={
        "tracking_uri": "http://127.0.0.1:9", "http_max_retries": 0, "http_timeout_s": 2})})
    with serving(down) as (client, follower):
        with capture_logs() as logged:
            wait_for(lambda: follow_checks(client), lambda seen: seen["registry_error"] >= 5)
        assert follower.running and served_version(client) is None
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and "127.0.0.1:9" in ready["reasons"][0]
        warned = [e for e in logged if e["event"] == "model.follow_registry_error"]
        assert len(warned) == 1 and warned[0]["alias"] == "champion" and "127.0.0.1:9" in warned[0]["detail"]
        assert not [e for e in logged if e["log_level"] == "error"]
        assert client.get("/healthz").status_code == 200


def test_every_worker_process_of_a_server_follows_the_champion(world, tmp_path):
    """`serve --workers 2` as a real process tree: a promotion in the registry reaches both processes (each counts one
    reload into the shared multi-process metrics), where /v1/admin/reload would reach only the one that answers."""
    registry = world["registry"]
    registry.promote(world["a"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamrec", "--data-dir", str(world["root"]), "serve", "--workers", "2",
             "--port", str(port), "--clock", "data", "--model", "champion"], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "STREAMREC_SERVING__FOLLOW_ALIAS_S": "0.2",
                 "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")})
    try:
        def models() -> dict:
            try:
                return get(f"{base}/v1/models")[1]
            except OSError:
                assert proc.poll() is None, log.read_text()[-3000:]
                return {}

        wait_for(models, lambda m: m.get("model_version") == world["a"], timeout_s=120)
        registry.promote(world["b"])

        def reloads() -> dict:
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
                text = response.read().decode()
            return {s.labels["outcome"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
                    if s.name == "streamrec_model_follow_checks_total"}

        wait_for(reloads, lambda seen: seen.get("reloaded") == 2, timeout_s=60)
        assert all(models()["model_version"] == world["b"] for _ in range(20))
        assert reloads()["failed"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-3000:]
