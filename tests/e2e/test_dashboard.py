"""The dashboard in a real headless Chromium (Debian's, through Playwright) against a real server over the tiny world:
two registered pipeline versions (champion and challenger), an experiment with three simulated days of viewers in its
exposure log, and live HTTP traffic (lists, a cold-start user, a 404). Each page loads without console or page errors,
each chart holds the API's numbers, and a full-page screenshot is saved under test-artifacts/dashboard/."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Self

import httpx2
import pytest
import uvicorn

from streamrec.data.dataset import Dataset
from streamrec.data.synthetic.taste import GroundTruth
from streamrec.registry import Registry
from streamrec.serving import build_state, create_app
from streamrec.settings import RegistryConfig, load_settings
from streamrec.simulation import InProcessTransport, SimulationConfig, simulate
from tests.helpers import event, served_world, users_and_regions, write_csv

KEY = "dashboard-key-1234"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn over an app in a thread of this process (so the test can reach the app's state), on a free port."""

    def __init__(self, app):
        self.app, self.port = app, free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def registered(root: Path) -> None:
    """v1 and v2 of the fitted bundles in the data dir's registry; v2 champion, v1 challenger."""
    registry = Registry(RegistryConfig(), root)
    for name, ndcg in (("v1", 0.21), ("v2", 0.25)):
        run = registry.log_training_run(root / name, data_snapshot=f"ix-{name:0>16}",
                                        metrics={"NDCG@10": ndcg, "recall@10": ndcg * 1.5})
        registry.register(run.run_id, description=f"bundle {name}")
    registry.promote(1)
    registry.promote(2)


def training_references(root: Path, settings, users: list[str]) -> None:
    """The training-time references of v1 and v2 (both variants serve), as a training run saves them: the scores
    serving answers with."""
    from streamrec.monitoring.reference import save_reference, serving_scores
    from streamrec.settings import DuckDBEventStoreConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb", read_only=True) as store:
        for version in (1, 2):
            scores = serving_scores(settings, store.con, root / f"v{version}", users, users=200)
            assert scores.num_rows > 0
            save_reference(root, root / f"v{version}", "pipeline", scores, version=version)


def later_batches(root: Path) -> None:
    """Two more ingestion batches into the data dir's store: a clean one, and one with a spike of broken rows."""
    from streamrec.events.runner import ingest_paths
    from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb") as store:
        pairs = store.con.execute("SELECT user_id, item_id, max(ts) FROM events WHERE type = 'play' GROUP BY ALL "
                                  "ORDER BY 3 DESC, 1, 2 LIMIT 30").fetchall()
        files = []
        for n, broken in ((1, 0), (2, 12)):
            rows = [event(f"late-{n}-{i}", user_id=u, item_id=t, ts=(ts - timedelta(hours=i)).isoformat() + "Z")
                    for i, (u, t, ts) in enumerate(pairs)]
            rows += [event(f"bad-{n}-{i}", user_id=pairs[0][0], item_id="no-such-title", ts=rows[0]["ts"])
                     for i in range(broken)]
            files.append(write_csv(root / f"batch-{n}.csv", rows))
        summary = ingest_paths(store, files, IngestConfig())
    assert [b.quarantined for b in summary.batches] == [0, 12]


@pytest.fixture(scope="module")
def world(tiny_world_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    served_world(tiny_world_store, root, {"v1": 6, "v2": 8})
    later_batches(root)
    registered(root)
    experiments = [{"name": "ranker-test", "variants": [{"name": "control"}, {"name": "treatment", "model": "1"}]}]
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "model": "champion",
                                                     "served_sample": 1.0}, experiments=experiments)
    users, _ = users_and_regions(root / "events.duckdb")
    training_references(root, settings, users)
    state = build_state(settings)
    folder = tiny_world_store.parent / "world"
    transport = InProcessTransport(state)  # three days of viewers through the whole app: the experiment's log
    try:
        simulate(GroundTruth.load(folder), Dataset.open(folder).table("users"), transport,
                 SimulationConfig(days=3, users=60, seed=2))
    finally:
        transport.close()
    state.experiments.log.flush()
    state.served.flush()
    assert state.served.written > 0  # the served-lists log of the three days
    return {"root": root, "settings": settings, "state": state, "users": users}


@pytest.fixture(scope="module")
def server(world):
    app = create_app(world["settings"], world["state"])
    app.state.dashboard.sampler.interval_s = 0.25
    with Server(app) as running:
        with httpx2.Client(base_url=running.url, timeout=10) as client:
            for i, user in enumerate(world["users"][:48]):  # lists over a couple of sampler intervals
                assert client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).status_code == 200
                if i % 8 == 0:
                    assert client.get("/v1/users/nobody-new/recommendations").json()["fallback"]  # cold start
                    assert client.get("/v1/titles/no-such-title/similar").status_code == 404
                time.sleep(0.03)
        time.sleep(0.6)
        app.state.dashboard.sampler.stop()  # the series stand still while the pages are compared with the API
        yield running


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str, name: str):
    """Load `url`, wait for the first render, fail on any console error or page error; save a screenshot."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(url)
    page.wait_for_selector("body[data-ready], body[data-error]", timeout=20_000)
    assert page.get_attribute("body", "data-error") is None, page.get_attribute("body", "data-error")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert problems == []
    return page


def chart(page, canvas_id: str) -> dict:
    """The Chart.js instance on a canvas: labels and each dataset's label and numeric points."""
    return page.evaluate("""(id) => {
        const c = Chart.getChart(document.getElementById(id));
        if (!c) return null;
        return {labels: c.data.labels.map(String), height: c.height,
                datasets: c.data.datasets.map((d) => ({label: d.label, data: d.data}))};
    }""", canvas_id)


def card(page, key: str) -> str:
    return page.inner_text(f'.card[data-key="{key}"] .value')


def points(ds: dict) -> list[float]:
    return [x for x in ds["data"] if x is not None]


def test_overview_shows_the_served_traffic_latency_errors_and_fallbacks(server, browser):
    api = httpx2.get(server.url + "/dashboard/api/overview").json()
    page = open_page(browser, server.url + "/dashboard", "overview")
    assert page.url.endswith("/dashboard/overview")
    n = len(api["t"])
    assert n >= 3, api
    traffic = chart(page, "chart-traffic")
    by_label = {d["label"]: d["data"] for d in traffic["datasets"]}
    assert by_label == api["requests_per_s"] and traffic["height"] > 100
    assert sum(by_label["/v1/users/{user_id}/recommendations"]) > 0
    assert not any(label.startswith("/dashboard") for label in by_label)  # its own polling is left out
    latency = {d["label"]: d["data"] for d in chart(page, "chart-latency")["datasets"]}
    assert set(latency) == {"p50", "p95", "p99"} and max(points({"data": latency["p99"]})) > 0
    assert all(a <= b for a, b in zip(points({"data": latency["p50"]}), points({"data": latency["p99"]})))
    errors = {d["label"]: d["data"] for d in chart(page, "chart-errors")["datasets"]}
    assert sum(errors["4xx"]) > 0 and errors == api["errors_per_s"]
    fallbacks = {d["label"]: d["data"] for d in chart(page, "chart-fallbacks")["datasets"]}
    assert fallbacks and sum(sum(v) for v in fallbacks.values()) > 0
    totals = api["totals"]
    assert totals["requests"] >= 48 + 12 and totals["errors_4xx"] == 6
    assert int(card(page, "requests").replace(",", "")) == totals["requests"]
    assert int(card(page, "fallbacks").replace(",", "")) == totals["fallbacks"] >= 6
    assert card(page, "model") == "2"
    routes = page.inner_text("#routes")
    assert "/v1/users/{user_id}/recommendations" in routes and "/v1/titles/{item_id}/similar" in routes


def test_models_page_shows_versions_metrics_lineage_champion_and_challenger(server, browser):
    api = httpx2.get(server.url + "/dashboard/api/models").json()
    assert (api["champion"], api["challenger"]) == (2, 1)
    page = open_page(browser, server.url + "/dashboard/models", "models")
    assert card(page, "champion") == "v2" and card(page, "challenger") == "v1" and card(page, "served") == "2"
    metrics = chart(page, "chart-metrics")
    assert metrics["labels"] == ["v1", "v2"]
    ndcg = next(d for d in metrics["datasets"] if d["label"] == "NDCG_at_10")
    assert ndcg["data"] == [0.21, 0.25]
    table = page.inner_text("#versions")
    for v in api["versions"]:
        assert v["data_snapshot"] in table and v["run_id"][:12] in table
    assert "ix-00000000000000v2" in table and "champion" in table and "challenger" in table and "served" in table
    variants = page.inner_text("#variants")
    assert "ranker-test" in variants and "treatment" in variants


def test_experiments_page_shows_variants_intervals_over_time_and_the_decision(server, browser):
    api = httpx2.get(server.url + "/dashboard/api/experiments").json()
    [x] = api["experiments"]
    assert x["name"] == "ranker-test" and x["status"] == "analysed" and x["looks"] >= 3
    page = open_page(browser, server.url + "/dashboard/experiments", "experiments")
    box = page.locator('section[data-experiment="ranker-test"]')
    assert x["decision"]["verdict"] in box.inner_text()
    for reason in x["decision"]["reasons"]:
        assert reason in box.inner_text()
    for metric in x["metrics_order"]:
        shown = chart(page, f"chart-x0-{metric.replace('_', '-')}")
        series = x["over_time"][metric]["treatment"]
        diff = next(d for d in shown["datasets"] if d["label"] == "treatment − control")
        assert diff["data"] == series["diff"] and len(diff["data"]) == x["looks"]
        low = next(d for d in shown["datasets"] if d["label"] == "95% interval")
        high = next(d for d in shown["datasets"] if d["label"] == "interval high")
        assert all(lo <= d <= hi for lo, d, hi in zip(points(low), points(diff), points(high)))
        assert any(v != 0 for v in points(diff))
    exposures = chart(page, "chart-x0-exposures")
    assert {d["label"] for d in exposures["datasets"]} == {"control", "treatment"}
    assert sum(sum(d["data"]) for d in exposures["datasets"]) > 0
    users = sum(v["users"] for v in x["variants"])
    assert int(page.inner_text('section[data-experiment="ranker-test"] .card[data-key="users"] .value')
               .replace(",", "")) == users > 0


def test_data_page_shows_volumes_batch_quality_and_drift(server, browser):
    api = httpx2.get(server.url + "/dashboard/api/data").json()
    assert api["error"] is None and len(api["batches"]) == 3 and api["drift"]["features"]
    assert [b["quarantined"] for b in api["batches"]] == [0, 0, 12]
    assert any(a["kind"] == "rejection_rate" and a["name"].startswith("batch 3") for a in api["alerts"])
    page = open_page(browser, server.url + "/dashboard/data", "data")
    volume = chart(page, "chart-volume")
    assert volume["labels"] == api["volume"]["days"]
    assert {d["label"]: d["data"] for d in volume["datasets"]} == api["volume"]["by_type"]
    stored = sum(sum(v) for v in api["volume"]["by_type"].values())
    assert int(card(page, "events").replace(",", "")) == stored > 0
    batches = {d["label"]: d["data"] for d in chart(page, "chart-batches")["datasets"]}
    assert batches["stored"] == [b["stored"] for b in api["batches"]] and sum(batches["stored"]) > 0
    quality = {d["label"]: d["data"] for d in chart(page, "chart-quality")["datasets"]}
    assert set(quality) == {"rejected", "late", "new titles", "worst null rate"}
    assert quality["rejected"] == [pytest.approx(100 * b["rejection_rate"]) for b in api["batches"]]
    assert quality["rejected"][-1] > 20
    assert int(card(page, "rejected").replace(",", "")) == 12
    assert "rejection_rate" in page.inner_text("#alerts") and "unknown_title" in page.inner_text("#batches")
    drift = chart(page, "chart-drift")
    psi = next(d for d in drift["datasets"] if d["label"] == "PSI")
    measured = [f for f in api["drift"]["features"] if f["psi"] is not None]
    assert drift["labels"] == [f["name"] for f in measured] and psi["data"] == [f["psi"] for f in measured]
    assert any(v > 0 for v in psi["data"])


def test_data_page_shows_play_rate_per_variant_concentration_coverage_and_score_drift(server, browser):
    api = httpx2.get(server.url + "/dashboard/api/data").json()
    assert api["online_error"] is None
    online = api["online"]
    rates, conc, scores = online["play_rate"], online["concentration"], online["scores"]
    assert len(rates["days"]) >= 3 and set(rates["by_variant"]) == {"ranker-test/control", "ranker-test/treatment"}
    assert len(conc["days"]) >= 3 and all(0 < c <= 1 for c in conc["coverage"]) and online["catalog"] > 0
    assert scores is not None and scores["n_current"] > 0 and scores["psi"] is not None
    page = open_page(browser, server.url + "/dashboard/data", "data-online")
    shown = chart(page, "chart-play-rate")
    assert shown["labels"] == rates["days"] and shown["height"] > 100
    by_label = {d["label"]: d["data"] for d in shown["datasets"]}
    assert by_label == {v: [None if x is None else pytest.approx(100 * x) for x in xs]
                        for v, xs in rates["by_variant"].items()}
    assert any(x > 0 for xs in by_label.values() for x in points({"data": xs}))
    shown = chart(page, "chart-concentration")
    assert shown["labels"] == conc["days"]
    by_label = {d["label"]: d["data"] for d in shown["datasets"]}
    assert by_label["coverage"] == [pytest.approx(100 * x) for x in conc["coverage"]]
    assert by_label["Gini"] == [pytest.approx(100 * x) for x in conc["gini"]] and min(by_label["Gini"]) > 0
    assert by_label["top 1% share"] == [pytest.approx(100 * x) for x in conc["top_share"]]
    drift = chart(page, "chart-scores")
    assert drift["labels"] == ["PSI", "KS statistic"]
    assert drift["datasets"][0]["data"] == [scores["psi"], scores["ks_statistic"]]
    assert scores["status"] in page.inner_text("#scores") and card(page, "scores") == scores["status"]
    assert f"{scores['n_current']:,}" in page.inner_text("#scores") and scores["reference"].startswith("pipeline v")
    assert card(page, "coverage") == f"{100 * conc['coverage'][-1]:.1f}%"
    alerts = page.inner_text("#alerts")
    assert all(a["detail"] in alerts for a in online["alerts"])


@pytest.fixture(scope="module")
def empty_server(tiny_world_store, tmp_path_factory):
    """A server with nothing yet: no registered model (trending titles), no experiment, no traffic sampled twice."""
    root = tmp_path_factory.mktemp("dashboard-empty")
    served_world(tiny_world_store, root, {})
    settings = load_settings(data_dir=root, serving={"clock": "data", "model": "champion"})
    app = create_app(settings, build_state(settings))
    app.state.dashboard.sampler.interval_s = 3600
    with Server(app) as running:
        yield running


def test_pages_without_data_say_so_without_errors(empty_server, browser):
    overview = open_page(browser, empty_server.url + "/dashboard/overview", "empty-overview")
    assert overview.is_visible("#waiting") and chart(overview, "chart-traffic") is None
    assert "collecting" in overview.inner_text("#chart-traffic >> xpath=..")
    assert card(overview, "model") == "none" and "no requests" in overview.inner_text("#routes")
    models = open_page(browser, empty_server.url + "/dashboard/models", "empty-models")
    assert "nothing registered yet" in models.inner_text("#registry-note") and chart(models, "chart-metrics") is None
    assert card(models, "champion") == "—"
    exps = open_page(browser, empty_server.url + "/dashboard/experiments", "empty-experiments")
    assert "No experiments yet" in exps.inner_text("#empty") and exps.locator("section.experiment").count() == 0
    assert httpx2.get(empty_server.url + "/dashboard/api/experiments").json()["experiments"] == []
    data = open_page(browser, empty_server.url + "/dashboard/data", "empty-data")
    online = httpx2.get(empty_server.url + "/dashboard/api/data").json()["online"]
    assert online["scores"] is None and online["play_rate"]["days"] == [] and online["concentration"]["days"] == []
    assert chart(data, "chart-play-rate") is None and chart(data, "chart-scores") is None
    assert "no served lists logged" in data.inner_text("#chart-concentration >> xpath=..")
    assert "no training-time reference" in data.inner_text("#online-note")
    assert httpx2.get(empty_server.url + "/dashboard/api/nothing").status_code == 404
    assert httpx2.get(empty_server.url + "/dashboard/nothing").status_code == 404
