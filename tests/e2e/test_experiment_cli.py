"""`streamrec experiment list|assign|analyze` on a real exposure log and a real MLflow registry: a clear lift ships,
and `--promote` moves the winner's model to champion with the old champion kept as challenger; guardrails that fail
or are unmeasured stop it. Without `--at`, a simulated log (days in the past) is analysed as of its end, one look per
simulated day."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.experiments.assign import Assigner
from streamrec.experiments.config import ExperimentConfig
from streamrec.experiments.exposure import ExposureLog, read_log
from streamrec.registry import Registry
from streamrec.settings import RegistryConfig
from tests.e2e.test_registry_cli import write_saved_model
from tests.helpers import served_world

runner = CliRunner()
START = datetime(2026, 5, 1)
EXPERIMENT = {"name": "ranker-v2", "start": START.isoformat(), "primary_metric": "play_rate",
              "variants": [{"name": "control"}, {"name": "treatment", "model": "2"}]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("experiment")
    registry = Registry(RegistryConfig(), data_dir)
    for version, weight in ((1, 7.0), (2, 30.0)):
        run = registry.log_training_run(write_saved_model(data_dir.parent / f"m{version}", weight),
                                        data_snapshot=f"ix-{version:016d}", metrics={"NDCG@10": weight / 100})
        registry.register(run.run_id)
    registry.promote(1)
    assigner = Assigner([ExperimentConfig(**EXPERIMENT)])
    log = ExposureLog(data_dir / "experiments" / "exposures", assigner, flush_rows=10**9)
    rng = np.random.default_rng(3)
    for i in range(6000):  # the treatment lifts the play rate from 30% to 40%
        user = f"u{i}"
        variant = assigner.assign(user, START)[0].variant
        ts = START + timedelta(minutes=int(rng.integers(0, 60 * 24 * 6)))
        log.exposure(ts, user, "ranker-v2", variant, f"r{i}")
        log([{"type": "impression", "user_id": user, "item_id": "t1", "ts": ts + timedelta(seconds=1),
              "request_id": f"r{i}"}])
        if rng.random() < (0.40 if variant == "treatment" else 0.30):
            log([{"type": "play", "user_id": user, "item_id": "t1", "ts": ts + timedelta(minutes=2),
                  "request_id": f"r{i}", "watched_s": float(rng.integers(300, 3000))}])
    log.close()
    (data_dir / "streamrec.toml").write_text("")
    return data_dir


def cli(data_dir, *args):
    env = {"COLUMNS": "200", "STREAMREC_EXPERIMENTS": json.dumps([EXPERIMENT])}
    return runner.invoke(app, ["--data-dir", str(data_dir), "experiment", *args], env=env)


def test_list_and_assign(data_dir):
    listed = cli(data_dir, "list")
    assert listed.exit_code == 0, listed.output
    assert "ranker-v2" in listed.output and "treatment 50%: 2" in listed.output
    assigned = cli(data_dir, "assign", "u1")
    assert "ranker-v2" in assigned.output and "variant" in assigned.output


def test_unmeasured_guardrails_keep_it_running_and_nothing_is_promoted(data_dir):
    r = cli(data_dir, "analyze", "ranker-v2", "--at", "2026-05-08T00:00:00", "--promote")
    assert r.exit_code == 0, r.output
    assert "decision: keep running" in r.output and "not measured" in r.output
    assert Registry(RegistryConfig(), data_dir).resolve("champion") == 1
    assert (data_dir / "reports" / "experiment-ranker-v2.html").is_file()


def test_a_clear_lift_with_guardrails_holding_ships_and_promotes_the_winner(data_dir, tmp_path):
    values = {v: {"latency_p99_ms": 40.0, "error_rate": 0.001} for v in ("control", "treatment")}
    bad = {**values, "treatment": {"latency_p99_ms": 900.0, "error_rate": 0.001}}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = cli(data_dir, "analyze", "ranker-v2", "--at", "2026-05-08T00:00:00", "--guardrail-values",
            str(tmp_path / "bad.json"), "--promote")
    assert "decision: don't ship" in r.output and "latency_p99_ms violated" in r.output
    assert Registry(RegistryConfig(), data_dir).resolve("champion") == 1
    (tmp_path / "good.json").write_text(json.dumps(values))
    r = cli(data_dir, "analyze", "ranker-v2", "--at", "2026-05-08T00:00:00", "--guardrail-values",
            str(tmp_path / "good.json"), "--promote", "--report", str(tmp_path / "r.html"))
    assert r.exit_code == 0, r.output
    assert "decision: ship (treatment)" in r.output and "promoted 2 (v2) to champion" in r.output
    registry = Registry(RegistryConfig(), data_dir)
    assert registry.resolve("champion") == 2 and registry.resolve("challenger") == 1
    assert (tmp_path / "r.html").read_text().count("<img") >= 1


SIMULATED = {"name": "diversity", "primary_metric": "play_rate",
             "variants": [{"name": "control"}, {"name": "treatment", "diversity": 0.5}]}


@pytest.fixture(scope="module")
def simulated_dir(tiny_world_store, tmp_path_factory):
    """Three simulated days (the tiny world's, in 2024) of viewers served under SIMULATED, in process."""
    root = tmp_path_factory.mktemp("simulated-ab")
    served_world(tiny_world_store, root, {"v1": 5})
    args = ["--data-dir", str(root), "simulate", "--days", "3", "--users", "80", "--seed", "1", "--world",
            str(tiny_world_store.parent / "world"), "--model", str(root / "v1"), "--out", str(root / "sim.parquet")]
    r = runner.invoke(app, args, env={"STREAMREC_EXPERIMENTS": json.dumps([SIMULATED])})
    assert r.exit_code == 0, r.output
    return root


def test_without_at_a_simulated_log_is_analysed_as_of_its_end_one_look_per_day_of_data(simulated_dir):
    def analyze(*at):
        env = {"COLUMNS": "200", "STREAMREC_EXPERIMENTS": json.dumps([SIMULATED])}
        r = runner.invoke(app, ["--data-dir", str(simulated_dir), "experiment", "analyze", "diversity", *at], env=env)
        assert r.exit_code == 0, r.output
        title, rest = r.output.split("\n", 1)  # the title names the analysis time
        return re.search(r"as of (\S+ \S+) \((\d+) looks of 14 planned\)", title).groups(), rest

    ts = read_log(simulated_dir / "experiments" / "exposures", "diversity")["ts"].to_pylist()
    days = sorted({t.date() for t in ts})  # the world's next 3 days, and late sessions spilling past midnight
    assert days[:3] == [datetime(2024, 1, 15 + d).date() for d in range(3)] and len(days) <= 4
    assert ts[-1] < datetime(2024, 1, 18, 6)
    looks = str(len(days))
    (when, counted), output = analyze()  # not years of daily looks up to today's wall clock
    assert when == f"{ts[-1]:%Y-%m-%d %H:%M}" and counted == looks
    end = (ts[-1] + timedelta(seconds=1)).replace(microsecond=0)
    assert analyze("--at", end.isoformat()) == ((f"{end:%Y-%m-%d %H:%M}", looks), output)
    assert analyze("--at", "2030-01-01T00:00:00") == (("2030-01-01 00:00", looks), output)  # no looks without data
