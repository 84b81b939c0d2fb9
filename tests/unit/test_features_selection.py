"""Feature selection on a small world with one planted signal: it finds the signal, keeps to the training period
(changing everything after the test cut changes nothing), and the selected set survives a save/load round trip."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from streamrec.errors import ConfigError, NotFound
from streamrec.evaluation.splits import temporal_split
from streamrec.features import BUILTIN
from streamrec.features.selection import SelectionConfig, load_selection, save_selection, select_features
from streamrec.features.templates import candidates

START = datetime(2026, 1, 1)
CONFIG = SelectionConfig(max_tries=6, max_selected=3, n_estimators=40, num_threads=1)


def planted_world(seed: int = 0, users: int = 80, titles: int = 300, days: int = 30, block: int = 3):
    """Every `block` days ten new titles are the hot ones: users mostly play those. The only sign of the next
    block's hot titles is that people add them to their lists during the block before: a title-level
    add_to_list feature sees it, none of the built-in features (plays, completions, recency) can."""
    rng = np.random.default_rng(seed)
    hot = [rng.choice(titles, 10, replace=False) for _ in range(days // block + 1)]
    rows = []
    for b in range(days // block):
        for t in hot[b + 1]:  # the coming block's titles, listed during this one
            for _ in range(6):
                at = START + timedelta(days=b * block, seconds=int(rng.integers(0, block * 86_400)))
                rows.append((f"u{rng.integers(users)}", f"t{t}", "add_to_list", at))
        for u in range(users):
            for _ in range(3 * block):
                title = rng.choice(hot[b]) if rng.random() < 0.8 else rng.integers(titles)
                at = START + timedelta(days=b * block, seconds=int(rng.integers(0, block * 86_400)))
                rows.append((f"u{u}", f"t{title}", "play", at))
    events = pa.table({"event_id": [f"e{i}" for i in range(len(rows))], "user_id": [r[0] for r in rows],
                       "item_id": [r[1] for r in rows], "type": [r[2] for r in rows],
                       "ts": pa.array([r[3] for r in rows], pa.timestamp("us")),
                       **{c: pa.nulls(len(rows), pa.float64()) for c in ("watched_s", "fraction", "rating")}})
    plays = events.filter(pc.equal(events.column("type"), "play"))
    table = plays.group_by(["user_id", "item_id"]).aggregate([("ts", "count"), ("ts", "max")])
    table = pa.table({"user_id": table.column("user_id"), "item_id": table.column("item_id"),
                      "weight": table.column("ts_count").cast(pa.float64()), "last_ts": table.column("ts_max")})
    return events, table


def connect(events: pa.Table) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events", events)
    return con


@pytest.fixture(scope="module")
def world():
    events, table = planted_world()
    report = select_features(connect(events), table, config=CONFIG)
    return events, table, report


def test_the_planted_signal_is_selected_and_raises_validation_ndcg(world):
    _, _, report = world
    assert len(report.candidates) == len(candidates()) and report.steps
    assert report.selected, [vars(s) for s in report.steps]
    assert any("add_to_list" in f.name and f.entity == "title" for f in report.selected)
    assert report.selected_ndcg > report.base_ndcg and report.gain > 0
    kept = [s.name for s in report.steps if s.kept]
    assert kept == [f.name for f in report.selected]
    assert not {f.name for f in report.selected} & {f.name for f in BUILTIN}


def test_selection_reads_nothing_from_the_test_period(world):
    events, table, report = world
    cut = temporal_split(table).params["at"]
    periods = report.periods
    assert periods["fit_cut"] < periods["validation_cut"] < periods["validation_end"] < periods["test_cut"]
    assert periods["test_cut"].isoformat() == datetime.fromisoformat(cut).replace(tzinfo=None).isoformat()
    # Everything from the test cut on is changed: its events are dropped, its interactions point at other titles
    # (same times, so the cut stays where it was). A selection that read any of it would come out different.
    ts = pa.scalar(periods["test_cut"], pa.timestamp("us"))
    early_events = events.filter(pc.less(events.column("ts"), ts))
    late = pc.greater_equal(table.column("last_ts"), ts).to_numpy(zero_copy_only=False)
    items = np.asarray(table.column("item_id").to_pylist(), dtype=object)
    items[late] = np.random.default_rng(1).permutation(items[late])
    poisoned = table.set_column(1, "item_id", pa.array(items.tolist()))
    assert early_events.num_rows < events.num_rows and late.sum() > 0
    again = select_features(connect(early_events), poisoned, config=CONFIG)
    first, second = report.summary(), again.summary()
    first.pop("seconds"), second.pop("seconds")
    assert first == second


def test_the_selected_set_round_trips_and_bad_files_are_clear_errors(world, tmp_path):
    _, _, report = world
    path = save_selection(tmp_path / "sel" / "selected.json", report)
    assert load_selection(path) == tuple(report.selected)
    doc = json.loads(path.read_text())
    assert doc["report"]["selected"] == [f.name for f in report.selected]
    with pytest.raises(NotFound):
        load_selection(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"features": [{"name": "x"}]}')
    with pytest.raises(ConfigError, match="not a feature selection file"):
        load_selection(tmp_path / "bad.json")
    clash = {"features": [BUILTIN[0].model_dump(mode="json")]}
    (tmp_path / "clash.json").write_text(json.dumps(clash))
    with pytest.raises(ConfigError, match="used twice"):
        load_selection(tmp_path / "clash.json")


def test_a_candidate_named_like_a_base_feature_is_refused(world):
    events, table, _ = world
    with pytest.raises(ConfigError, match="named like base features"):
        select_features(connect(events), table, candidates=[BUILTIN[0]], config=CONFIG)
