"""Online monitoring: play rate per variant from a real exposure log, concentration and coverage from a real served-lists
log, score drift of served lists against a training-time reference, and the alerts each raises."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamrec.experiments.assign import Assigner
from streamrec.experiments.config import ExperimentConfig
from streamrec.experiments.exposure import ExposureLog, read_log
from streamrec.monitoring import (
    DriftThresholds,
    OnlineThresholds,
    concentration_over_time,
    drift_alerts,
    gini,
    online_alerts,
    play_rate_by_variant,
    score_drift,
    served_scores,
)
from streamrec.monitoring.reference import find_reference, ranker_scores, read_scores, save_reference
from streamrec.monitoring.served import ServedLog, read_served

DAY0 = datetime(2026, 3, 1, 12, 0)


def exposure_log(tmp_path, play_every: dict[tuple[int, str], int], n: int = 200):
    """n responses per variant per day (3 days); every `play_every[(day, variant)]`-th is followed by a play carrying
    its request_id an hour later, and every response by an impression; a play of another request never counts."""
    experiment = ExperimentConfig(name="exp", variants=[{"name": "a"}, {"name": "b"}])
    assigner = Assigner([experiment])
    log = ExposureLog(tmp_path / "exposures", assigner, flush_rows=10**9, flush_s=10**9)
    users = {"a": [], "b": []}
    i = 0
    while min(len(v) for v in users.values()) < n:
        users[assigner.variant_of(experiment, f"u{i}")].append(f"u{i}")
        i += 1
    for day in range(3):
        for variant, names in users.items():
            every = play_every[(day, variant)]
            for j, user in enumerate(names[:n]):
                at = DAY0 + timedelta(days=day, seconds=j)
                rid = f"r{day}-{variant}-{j}"
                log.exposure(at, user, "exp", variant, rid)
                log([{"type": "impression", "user_id": user, "item_id": "t1", "ts": at, "request_id": rid}])
                if j % every == 0:
                    log([{"type": "play", "user_id": user, "item_id": "t1", "ts": at + timedelta(hours=1),
                          "request_id": rid}])
                if j == 1:  # a play 2 days later is outside the attribution window
                    log([{"type": "play", "user_id": user, "item_id": "t2", "ts": at + timedelta(days=2),
                          "request_id": rid}])
    log.close()
    return read_log(tmp_path / "exposures")


def test_play_rate_per_variant_and_day_joins_plays_by_request_id(tmp_path):
    every = {(d, v): 2 for d in range(3) for v in "ab"}
    every[(2, "b")] = 10
    rates = play_rate_by_variant(exposure_log(tmp_path, every))
    assert [(r.day.day, r.variant) for r in rates] == [(1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "a"), (3, "b")]
    for r in rates:
        assert r.responses == 200 and r.impressions == 200
        assert r.played == r.plays == (20 if (r.day.day, r.variant) == (3, "b") else 100)
    assert rates[-1].play_rate == pytest.approx(0.1)
    alerts = online_alerts(rates, [], OnlineThresholds())
    assert [(a.kind, a.name, a.severity) for a in alerts] == [("play_rate", "exp/b 2026-03-03", "alert")]
    assert alerts[0].threshold == pytest.approx(0.25)


def test_a_steady_play_rate_stays_quiet_and_small_days_are_not_judged(tmp_path):
    every = {(d, v): 2 for d in range(3) for v in "ab"}
    rates = play_rate_by_variant(exposure_log(tmp_path, every))
    assert online_alerts(rates, [], OnlineThresholds()) == []
    assert online_alerts(rates, [], OnlineThresholds(min_responses=500)) == []


def served_log(tmp_path, skewed_day: int | None = None, lists: int = 100, catalog: int = 400):
    log = ServedLog(tmp_path / "served", flush_rows=10**9, flush_s=10**9, seed=1)
    rng = np.random.default_rng(0)
    for day in range(3):
        for j in range(lists):
            if day == skewed_day:
                items = [f"t{i}" for i in range(10)]  # everyone gets the same ten titles
            else:
                items = [f"t{i}" for i in rng.choice(catalog, 10, replace=False)]
            scores = np.sort(rng.normal(2.0, 0.5, 10))[::-1].tolist()
            log.record(DAY0 + timedelta(days=day, seconds=j), f"r{j}", "list", "7", None, "default", None, items,
                       scores)
        log.record(DAY0 + timedelta(days=day), "fb", "list", "7", None, "default", "trending", ["t0"], [None])
    assert log.close() is None and log.written == 3 * (lists + 1)
    return read_served(tmp_path / "served")


def test_concentration_and_coverage_per_day(tmp_path):
    served = served_log(tmp_path, skewed_day=2)
    days = concentration_over_time(served, catalog_size=400)
    assert [d.day.day for d in days] == [1, 2, 3]
    even, skewed = days[0], days[2]
    assert even.lists == 101 and even.slots == 1001 and even.coverage > 0.9 and even.gini < 0.4  # Poisson noise of 2.5 slots a title
    assert even.top_share < 0.1  # the top 4 titles (1% of 400)
    assert skewed.titles == 10 and skewed.coverage == pytest.approx(10 / 400) and skewed.gini > 0.95
    assert skewed.top_share > 0.4
    alerts = online_alerts([], days, OnlineThresholds(max_top_share=0.3, min_coverage=0.05))
    assert [(a.kind, a.severity) for a in alerts] == [("concentration", "alert"), ("coverage", "warn")]
    assert online_alerts([], days[:2], OnlineThresholds(max_top_share=0.3, min_coverage=0.05)) == []
    assert gini(np.array([5, 5, 5])) == pytest.approx(0.0) and gini(np.array([0, 0, 9])) == pytest.approx(2 / 3)


def test_served_log_samples_and_reads_a_recent_window(tmp_path):
    assert read_served(tmp_path / "none").num_rows == 0
    log = ServedLog(tmp_path / "s", sample=0.25, seed=3)
    for j in range(2000):
        log.record(DAY0 + timedelta(hours=j // 100), "r", "list", "1", None, "default", None, ["t1"], [1.0])
    log.close()
    table = read_served(tmp_path / "s")
    assert 400 < table.num_rows < 600
    assert len(list((tmp_path / "s").glob("date=*"))) == 2  # 12:00 plus 20 hours: a part per day
    recent = read_served(tmp_path / "s", days=0.25)  # the last 6 of 20 hours
    assert recent.num_rows < table.num_rows / 2 and recent["ts"][0].as_py() >= DAY0 + timedelta(hours=13)


def test_served_score_drift_alerts_on_shifted_scores_only(tmp_path):
    served = served_log(tmp_path)
    scores = served_scores(served)
    assert scores.size == 3000  # the fallback list's missing score is left out
    assert served_scores(served, version="other").size == 0
    rng = np.random.default_rng(5)
    same = rng.normal(2.0, 0.5, 5000)
    assert drift_alerts([score_drift(same, scores, DriftThresholds())], DriftThresholds()) == []
    alerts = drift_alerts([score_drift(same + 1.0, scores, DriftThresholds())], DriftThresholds())
    assert {(a.kind, a.name, a.severity) for a in alerts} == {("psi", "score", "alert"), ("ks", "score", "alert")}


class _Ranker:
    def score(self, x):
        return x[:, 0] * 2.0


def test_reference_saved_and_found_by_served_version(tmp_path):
    features = np.arange(30, dtype=np.float64).reshape(-1, 1)
    rows = np.repeat(np.arange(3), 10)
    table = ranker_scores(_Ranker(), features, rows, np.array(["u0", "u1", "u2"], dtype=object), k=4)
    assert table.num_rows == 12 and table["rank"].to_pylist()[:4] == [1, 2, 3, 4]
    assert table["score"].to_pylist()[:4] == [18.0, 16.0, 14.0, 12.0]  # user u0's best four, best first
    old = save_reference(tmp_path, tmp_path / "models" / "ease-1", "ease", table, version=3)
    new = save_reference(tmp_path, tmp_path / "models" / "pipeline-2", "pipeline", table.slice(0, 4), version=4)
    assert find_reference(tmp_path, "3") == old and find_reference(tmp_path, "pipeline-2") == new
    assert find_reference(tmp_path, "99") == new  # unknown: the newest
    assert read_scores(new).tolist() == [18.0, 16.0, 14.0, 12.0] and not new.features
    assert pq.read_table(old.path / "scores.parquet").num_rows == 12
