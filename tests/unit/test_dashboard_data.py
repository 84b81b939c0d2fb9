"""The dashboard's JSON builders without a browser: the sampler's series from a real Prometheus registry (rates,
error classes, latency quantiles, the dashboard's own routes left out), histogram quantiles, JSON safety, the
experiments payload from an exposure log (served, unserved and empty experiments), the data payload from a real event
store, and the models payload from a real registry."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamrec.experiments.config import ExperimentConfig
from streamrec.experiments.exposure import SCHEMA
from streamrec.monitoring.dashboard import data, experiments, models
from streamrec.monitoring.dashboard.jsonable import jsonable
from streamrec.monitoring.dashboard.timeseries import Sampler, quantile
from streamrec.serving.metrics import ServingMetrics
from streamrec.settings import load_settings

RECS = "/v1/users/{user_id}/recommendations"


def test_quantile_interpolates_inside_the_bucket_like_prometheus():
    buckets = {0.01: 50.0, 0.1: 90.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.7, buckets) == pytest.approx(0.01 + 0.09 * 20 / 40)
    assert quantile(0.25, buckets) == pytest.approx(0.005)
    assert quantile(0.99, buckets) == pytest.approx(0.1)  # in the open top bucket: its lower bound
    assert quantile(0.5, {0.01: 0.0, math.inf: 0.0}) is None and quantile(0.5, {}) is None


def test_series_are_rates_and_quantiles_per_interval_without_the_dashboards_own_requests():
    metrics = ServingMetrics()
    now = [1000.0]
    sampler = Sampler(lambda: metrics.registry, interval_s=5, capacity=3, clock=lambda: now[0])
    sampler.sample()
    for _ in range(20):
        metrics.requests.labels(RECS, "200").inc()
        metrics.latency.labels(RECS, "treatment").observe(0.004)
    metrics.requests.labels(RECS, "500").inc(5)
    metrics.requests.labels("/v1/titles/{item_id}/similar", "404").inc(10)
    metrics.requests.labels("/dashboard/api/{page}", "200").inc(1000)
    metrics.latency.labels("/dashboard/api/{page}", "default").observe(2.0)
    metrics.fallback("cold_start")
    now[0] += 5
    sampler.sample()
    metrics.requests.labels(RECS, "200").inc(50)
    for _ in range(50):
        metrics.latency.labels(RECS, "control").observe(0.2)
    now[0] += 10
    sampler.sample()
    s = sampler.series()
    assert s["t"] == [1005_000, 1015_000] and s["samples"] == 3 and s["window_s"] == 15
    assert s["requests_per_s"] == {RECS: [5.0, 5.0], "/v1/titles/{item_id}/similar": [2.0, 0.0]}
    assert s["errors_per_s"] == {"4xx": [2.0, 0.0], "5xx": [1.0, 0.0]}
    assert s["fallbacks_per_s"] == {"cold_start": [0.2, 0.0]}
    assert 2.5 <= s["latency_ms"]["p50"][0] <= 5 and 100 < s["latency_ms"]["p99"][1] <= 250  # not the 2 s dashboard
    t = s["totals"]
    assert (t["requests"], t["errors_4xx"], t["errors_5xx"], t["fallbacks"], t["seconds"]) == (85, 10, 5, 1, 15.0)
    assert t["error_rate"] == pytest.approx(5 / 85)
    assert set(s["variants"]) == {"treatment", "control"} and s["variants"]["control"]["requests"] == 50
    assert [r["route"] for r in s["routes"]] == ["/v1/titles/{item_id}/similar", RECS]
    now[0] += 5
    sampler.sample()  # capacity 3: the oldest snapshot goes
    assert sampler.series()["t"] == [1015_000, 1020_000]
    json.dumps(jsonable(s), allow_nan=False)


def test_the_sampler_thread_samples_until_stopped():
    metrics = ServingMetrics()
    sampler = Sampler(lambda: metrics.registry, interval_s=0.01)
    sampler.start()
    deadline = time.monotonic() + 5
    while len(sampler.samples) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    held = len(sampler.samples)
    assert held >= 3 and sampler._thread is None
    time.sleep(0.05)
    assert len(sampler.samples) == held


def test_jsonable_makes_strict_json():
    value = {"nan": float("nan"), "inf": -math.inf, "at": datetime(2024, 1, 2, 3, 4), "n": np.float32(1.5),
             "k": np.int64(3), "rows": (1, 2)}
    assert jsonable(value) == {"nan": None, "inf": None, "at": "2024-01-02T03:04:00", "n": 1.5, "k": 3, "rows": [1, 2]}


def write_log(folder, experiment: str, variants: list[str], users: int = 80, days: int = 2) -> None:
    """An exposure log: each user exposed once a day; users of the variant 'treatment' play more."""
    rng = np.random.default_rng(0)
    start = datetime(2024, 3, 1, 10)
    rows = []
    for u in range(users):
        variant = variants[u % len(variants)]
        for d in range(days):
            ts = start + timedelta(days=d, minutes=u)
            rows.append({"ts": ts, "user_id": f"u{u}", "experiment": experiment, "variant": variant,
                         "type": "exposure", "item_id": None, "request_id": f"r{u}-{d}", "watched_s": None})
            if rng.random() < (0.7 if variant == "treatment" else 0.3):
                rows.append({"ts": ts + timedelta(minutes=1), "user_id": f"u{u}", "experiment": experiment,
                             "variant": variant, "type": "play", "item_id": "t1", "request_id": f"r{u}-{d}",
                             "watched_s": None})
    part = folder / "date=2024-03-01"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), part / f"part-{experiment}.parquet")


def test_experiments_payload_for_served_unserved_and_empty_experiments(tmp_path):
    folder = tmp_path / "exposures"
    assert experiments.build([], folder, {}) == {"experiments": [], "log": str(folder)}
    write_log(folder, "old-test", ["treatment", "control"])
    write_log(folder, "lonely", ["only"], users=5)
    served = ExperimentConfig(name="fresh", variants=[{"name": "a"}, {"name": "b"}])
    payload = experiments.build([served], folder, {"b": 12.5})
    json.dumps(payload, allow_nan=False)
    by_name = {x["name"]: x for x in payload["experiments"]}
    assert [x["name"] for x in payload["experiments"]] == ["fresh", "lonely", "old-test"]
    assert by_name["fresh"]["status"] == "no exposures" and by_name["fresh"]["configured"]
    assert by_name["lonely"]["status"] == "error" and "one variant" in by_name["lonely"]["message"]
    x = by_name["old-test"]
    assert x["status"] == "analysed" and not x["configured"] and "equal allocation" in x["note"]
    assert x["control"] == "control" and x["treatments"] == ["treatment"] and x["looks"] == 2
    assert {v["name"]: v["users"] for v in x["variants"]} == {"control": 40, "treatment": 40}
    play = next(c for c in x["comparisons"] if c["metric"] == "play_rate")
    assert play["diff"] > 0.2 and play["low"] < play["diff"] < play["high"]
    series = x["over_time"]["play_rate"]["treatment"]
    assert len(series["t"]) == 2 and series["diff"][-1] == pytest.approx(play["diff"])
    assert x["exposures"] == {"days": ["2024-03-01", "2024-03-02"], "by_variant": {"control": [40, 40],
                                                                                   "treatment": [40, 40]}}
    assert x["decision"]["verdict"] in ("ship", "don't ship", "keep running") and x["decision"]["reasons"]


def test_data_payload_reads_volumes_batches_and_drift_from_the_event_store(tiny_world_store, tmp_path):
    import duckdb

    payload = data.build(load_settings(data_dir=tiny_world_store.parent))
    json.dumps(payload, allow_nan=False)
    assert payload["error"] is None and payload["drift_error"] is None
    with duckdb.connect(str(tiny_world_store), read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM events").fetchone()[0]
        days = con.execute("SELECT count(DISTINCT CAST(ts AS DATE)) FROM events").fetchone()[0]
    assert sum(sum(v) for v in payload["volume"]["by_type"].values()) == stored
    assert len(payload["volume"]["days"]) == days
    [batch] = payload["batches"]
    assert batch["stored"] == stored and batch["max_null"]["column"] in ("event_id", "user_id", "item_id", "type", "ts")
    drift = payload["drift"]
    assert drift["features"] and drift["days"] == data.DRIFT_DAYS
    assert {f["status"] for f in drift["features"]} <= {"ok", "warn", "alert", "skipped"}
    assert any(f["psi"] is not None for f in drift["features"])
    assert drift["mode"] == "week" and drift["current"] == "the newest stored event"
    missing = data.build(load_settings(data_dir=tmp_path))
    assert missing["error"] and "event store" in missing["error"] and missing["batches"] == []


def test_models_payload_lists_versions_with_metrics_and_aliases(tmp_path):
    from streamrec.registry import Registry
    from streamrec.settings import RegistryConfig

    settings = load_settings(data_dir=tmp_path)
    registry = Registry(RegistryConfig(), tmp_path)
    for version, ndcg in ((1, 0.1), (2, 0.3)):
        folder = tmp_path / f"model{version}"
        folder.mkdir()
        np.savez(folder / "arrays.npz", weights_=np.ones(2, dtype=np.float32))
        (folder / "config.json").write_text(json.dumps({"model": "popularity", "config": {}}))
        (folder / "checksums.json").write_text("{}")
        run = registry.log_training_run(folder, data_snapshot=f"ix-{version:016d}", metrics={"NDCG@10": ndcg})
        registry.register(run.run_id)
    registry.promote(1)
    registry.promote(2)
    state = SimpleNamespace(settings=settings, holder=SimpleNamespace(current=None, problem="no model loaded"),
                            experiments=None, registry=lambda: registry)
    payload = models.build(state)
    json.dumps(payload, allow_nan=False)
    assert (payload["champion"], payload["challenger"]) == (2, 1) and payload["registry"]["error"] is None
    assert [v["version"] for v in payload["versions"]] == [2, 1]
    assert [v["metrics"]["NDCG_at_10"] for v in payload["versions"]] == [0.3, 0.1]
    assert payload["metric_names"] == ["NDCG_at_10"] and payload["served"] is None
    assert payload["versions"][0]["data_snapshot"] == "ix-0000000000000002"

    def down():
        raise ConnectionError("registry at http://mlflow:5000 refused")

    broken = models.build(SimpleNamespace(**{**vars(state), "registry": down}))
    assert "refused" in broken["registry"]["error"] and broken["versions"] == []


def test_drift_compares_against_the_served_models_training_reference_when_one_was_saved(tiny_world_store, tmp_path):
    import shutil

    from streamrec.features.snapshot import build_snapshot
    from streamrec.monitoring.reference import save_reference
    from streamrec.settings import DuckDBEventStoreConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    shutil.copy(tiny_world_store, tmp_path / "events.duckdb")
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "events.duckdb", read_only=True) as store:
        save_reference(tmp_path, tmp_path / "models" / "pipeline-1", "pipeline", None, version=1, con=store.con)
        build_snapshot(store.con, tmp_path / "features")  # the same data: nothing moved
    drift = data.build(load_settings(data_dir=tmp_path), served_version="1")["drift"]
    assert drift["mode"] == "training" and "pipeline-1 (v1)" in drift["reference"]
    measured = [f for f in drift["features"] if f["psi"] is not None]
    assert measured and all(f["psi"] == pytest.approx(0.0, abs=1e-9) and f["status"] == "ok" for f in measured)
    assert drift["alerts"] == []


def test_online_payload_has_play_rate_concentration_coverage_and_score_drift(tiny_world_store, tmp_path):
    import shutil

    import duckdb

    from streamrec.monitoring.config import MonitoringConfig
    from streamrec.monitoring.drift import score_drift
    from streamrec.monitoring.online import concentration_over_time, play_rate_by_variant
    from streamrec.monitoring.reference import SCORES_SCHEMA, save_reference
    from streamrec.monitoring.served import ServedLog, read_served, served_folder

    shutil.copy(tiny_world_store, tmp_path / "events.duckdb")
    with duckdb.connect(str(tmp_path / "events.duckdb"), read_only=True) as con:
        titles = [r[0] for r in con.execute("SELECT item_id FROM titles ORDER BY 1").fetchall()]
    write_log(tmp_path / "experiments" / "exposures", "ranker", ["control", "treatment"])
    rng = np.random.default_rng(1)
    log = ServedLog(served_folder(tmp_path), flush_rows=10_000)
    for day in range(3):  # lists narrowing onto a few titles day by day; scores a shift above the reference's
        pool = titles[: max(10, len(titles) // (day + 1) ** 2)]
        for i in range(60):
            items = list(rng.choice(pool, 10, replace=False))
            log.record(datetime(2024, 3, 1, 9) + timedelta(days=day, minutes=i), f"r{day}-{i}", "list", "7",
                       "ranker", "control", None, items, sorted(rng.normal(1.0, 1.0, 10), reverse=True))
    log.close()
    reference = pa.table({"user_id": [f"u{i}" for i in range(500)], "rank": [1] * 500,
                          "score": rng.normal(0.0, 1.0, 500)}, schema=SCORES_SCHEMA)
    save_reference(tmp_path, tmp_path / "models" / "pipeline-7", "pipeline", reference, version=7)

    payload = data.build(load_settings(data_dir=tmp_path))
    json.dumps(payload, allow_nan=False)
    assert payload["online_error"] is None
    online = payload["online"]
    config = MonitoringConfig()
    rates = play_rate_by_variant(pq.read_table(tmp_path / "experiments" / "exposures"))
    assert online["play_rate"]["days"] == ["2024-03-01", "2024-03-02"]
    for r in rates:
        day = online["play_rate"]["days"].index(r.day.isoformat())
        assert online["play_rate"]["by_variant"][f"ranker/{r.variant}"][day] == pytest.approx(r.play_rate)
        assert online["play_rate"]["responses"][f"ranker/{r.variant}"][day] == r.responses == 40
    treated, control = (online["play_rate"]["by_variant"][f"ranker/{v}"] for v in ("treatment", "control"))
    assert all(t > c for t, c in zip(treated, control))
    served = read_served(served_folder(tmp_path))
    assert online["served_lists"] == served.num_rows == 180 and online["catalog"] == len(titles)
    days = concentration_over_time(served, len(titles), config.online.top_fraction)
    conc = online["concentration"]
    assert conc["days"] == ["2024-03-01", "2024-03-02", "2024-03-03"] and conc["lists"] == [60, 60, 60]
    assert conc["coverage"] == [pytest.approx(c.coverage) for c in days]
    assert conc["gini"] == [pytest.approx(c.gini) for c in days] and conc["gini"][0] < conc["gini"][-1]
    assert conc["top_share"] == [pytest.approx(c.top_share) for c in days]
    assert conc["coverage"][0] > conc["coverage"][-1]
    scores = online["scores"]
    expected = score_drift(reference.column("score").to_numpy(), np.concatenate(
        [np.asarray(x) for x in served["scores"].to_pylist()]), config.drift)
    assert scores["psi"] == pytest.approx(expected.psi) and scores["ks_statistic"] == pytest.approx(expected.ks_statistic)
    assert (scores["n_reference"], scores["n_current"]) == (500, 1800) and scores["status"] == "alert"
    assert scores["reference"] == "pipeline pipeline-7 (registry v7)" and online["scores_note"] == ""
    assert {(a["kind"], a["name"]) for a in online["alerts"]} >= {("psi", "score"), ("ks", "score")}


def test_online_payload_without_logs_or_reference_is_empty_and_says_why(tiny_world_store, tmp_path):
    import shutil

    shutil.copy(tiny_world_store, tmp_path / "events.duckdb")
    online = data.build(load_settings(data_dir=tmp_path))["online"]
    assert online["play_rate"] == {"days": [], "by_variant": {}, "responses": {}} and online["served_lists"] == 0
    assert online["concentration"]["days"] == [] and online["scores"] is None and online["alerts"] == []
    assert "no training-time reference" in online["scores_note"]
    nothing = data.build(load_settings(data_dir=tmp_path / "nothing"))  # no event store either: still no error
    assert nothing["error"] and nothing["online_error"] is None and nothing["online"]["catalog"] is None
