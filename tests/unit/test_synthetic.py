"""The synthetic streaming world: determinism, schemas, realism properties, ground truth, and the CLI verb."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError as PydanticValidationError
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.data.catalog import MATURITY_LEVELS, SCHEMAS
from streamrec.data.dataset import Dataset
from streamrec.data.synthetic import GroundTruth, WorldConfig, generate_world
from streamrec.errors import ChecksumError, NotFound
from streamrec.events.schema import EVENT_ARROW_SCHEMA, EVENT_COLUMNS, EVENT_TYPES, Event

SMALL = {"users": 150, "titles": 200, "days": 10, "events": 12_000}


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "dataset.json"
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Dataset:
    out = tmp_path_factory.mktemp("world") / "tiny"
    calls: list[tuple[int, int]] = []
    generate_world(WorldConfig.preset("tiny", seed=3), out, on_progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (14, 14) and len(calls) == 14
    return Dataset.open(out)


@pytest.fixture(scope="module")
def frames(world: Dataset) -> dict[str, pd.DataFrame]:
    return {name: world.table(name).to_pandas() for name in ("titles", "availability", "users")} | {
        "events": world.events().to_pandas()
    }


@pytest.fixture(scope="module")
def truth(world: Dataset) -> GroundTruth:
    return GroundTruth.load(world)


def plays(frames) -> pd.DataFrame:
    ev = frames["events"]
    return ev[ev["type"] == "play"]


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    generate_world(WorldConfig(seed=11, **SMALL), tmp_path / "a")
    generate_world(WorldConfig(seed=11, **SMALL), tmp_path / "b")
    generate_world(WorldConfig(seed=12, **SMALL), tmp_path / "c")
    a, b, c = (file_digests(tmp_path / x) for x in "abc")
    assert a == b
    assert "events/part-00000.parquet" in a and "truth/user_factors.npy" in a
    for name in ("events/part-00000.parquet", "titles.parquet", "users.parquet", "truth/user_factors.npy"):
        assert a[name] != c[name]
    ea, ec = (Dataset.open(tmp_path / x).events() for x in "ac")
    assert ea.column("event_id")[0].as_py() != ec.column("event_id")[0].as_py()


def test_event_target_sets_volume(tmp_path):
    info = generate_world(WorldConfig(users=100, titles=120, days=6, events=5_000, seed=1), tmp_path / "w")
    assert 4_000 <= info.counts["events"] <= 6_000
    more = generate_world(WorldConfig(users=100, titles=120, days=6, activity=2.0, seed=1), tmp_path / "x")
    less = generate_world(WorldConfig(users=100, titles=120, days=6, activity=0.5, seed=1), tmp_path / "y")
    assert more.counts["events"] > 2.5 * less.counts["events"]


def test_config_rejects_unknown_keys_and_presets_scale():
    with pytest.raises(PydanticValidationError):
        WorldConfig(userz=3)
    assert WorldConfig.preset("tiny").events == 20_000
    assert WorldConfig.preset("tiny", users=400).events == 40_000  # same activity per user
    assert WorldConfig.preset("ml20m").users == 140_000
    assert WorldConfig.preset("tiny", activity=1.0).events is None  # explicit activity wins
    with pytest.raises(ValueError):
        WorldConfig.preset("huge")


# ------------------------------------------------------------------------------------------ schemas
def test_tables_conform_to_their_schemas(world, frames):
    for name in ("titles", "availability", "users"):
        assert world.table(name).schema.equals(SCHEMAS[name]), name
    for path in world.event_files:
        assert pq.read_schema(path).equals(EVENT_ARROW_SCHEMA)
    ev = frames["events"]
    assert set(ev["type"]) == set(EVENT_TYPES)
    for column in EVENT_COLUMNS:
        values = ev[column.name]
        if column.required:
            assert values.notna().all(), column.name
        if column.min_value is not None:
            assert (values.dropna() >= column.min_value).all() and (values.dropna() <= column.max_value).all()
    assert ev.loc[ev["type"] == "impression", ["position", "row", "request_id"]].notna().all().all()
    assert ev.loc[ev["type"] == "progress", "fraction"].notna().all()
    assert set(ev.loc[ev["type"] == "rating", "rating"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    for row in world.events().slice(0, 300).to_pylist():
        Event(**row)  # the one-at-a-time model accepts them too
    titles = frames["titles"]
    assert set(titles["maturity"]) <= set(MATURITY_LEVELS)
    assert titles["genres"].map(len).between(1, 3).all()
    series = titles["kind"] == "series"
    assert 0.1 < series.mean() < 0.3
    assert titles.loc[series, "episodes"].gt(0).all() and titles.loc[~series, "episodes"].isna().all()
    assert frames["availability"]["region"].nunique() == 6


def test_event_ids_unique_and_parts_time_ordered(world, frames):
    assert frames["events"]["event_id"].is_unique
    for path in world.event_files:
        ts = pq.read_table(path, columns=["ts"]).column("ts").to_numpy()
        assert (np.diff(ts.astype(np.int64)) >= 0).all()


def test_timestamps_within_period_and_utc(world, frames):
    params = world.info.params
    start, end = (datetime.fromisoformat(params[k]) for k in ("start", "end"))
    assert start.tzinfo == UTC
    ts = frames["events"]["ts"]
    assert ts.min() >= pd.Timestamp(start.replace(tzinfo=None)) and ts.max() < pd.Timestamp(end.replace(tzinfo=None))
    assert world.events().schema.field("ts").type == pa.timestamp("us")  # naive = UTC by convention


# ------------------------------------------------------------------------------------------ realism
def test_plays_have_a_long_tail(frames):
    counts = plays(frames)["item_id"].value_counts().to_numpy()
    n_titles = len(frames["titles"])
    top = counts[: int(np.ceil(0.1 * n_titles))].sum() / counts.sum()
    assert top > 0.4  # a uniform world gives ~0.15


def test_user_activity_is_heavy_tailed(frames, truth):
    per_user = frames["events"]["user_id"].value_counts().to_numpy()
    assert per_user[: len(per_user) // 10].sum() / per_user.sum() > 0.25  # Poisson-equal users give ~0.13
    assert per_user.max() > 5 * np.median(per_user)
    assert np.percentile(truth.user_activity, 99) > 4 * np.median(truth.user_activity)


def test_plays_respect_release_availability_and_maturity(frames):
    ev, titles, users, av = frames["events"], frames["titles"], frames["users"], frames["availability"]
    shown = ev[ev["type"].isin(["impression", "play", "progress", "complete"])]
    merged = shown.merge(users, on="user_id").merge(titles, on="item_id")
    assert (merged["ts"] >= pd.to_datetime(merged["release_date"])).all()
    rank = {m: i for i, m in enumerate(MATURITY_LEVELS)}
    assert (merged["maturity"].map(rank) <= merged["maturity_limit"].map(rank)).all()
    windows = merged.merge(av, on=["item_id", "region"], how="left")
    inside = (windows["ts"] >= windows["start_ts"]) & (windows["end_ts"].isna() | (windows["ts"] < windows["end_ts"]))
    assert inside.all() and len(windows) == len(merged)  # one window per title and region
    assert (av["end_ts"].notna()).any()  # some windows close during the period
    kids = users["maturity_limit"].isin(["all", "7+"])
    assert kids.any() and merged["maturity_limit"].isin(["all", "7+"]).any()


def test_nobody_acts_before_signup(frames, world):
    merged = frames["events"].merge(frames["users"], on="user_id")
    assert (merged["ts"] >= merged["signup_ts"]).all()
    start = pd.Timestamp(world.info.params["start"][:19])
    new_users = frames["users"].loc[frames["users"]["signup_ts"] >= start, "user_id"]
    assert len(new_users) > 0 and frames["events"]["user_id"].isin(new_users).any()


def test_new_releases_arrive_and_get_played(frames, world):
    start = pd.Timestamp(world.info.params["start"][:10]).date()
    titles = frames["titles"]
    new = titles.loc[titles["release_date"] >= start, "item_id"]
    assert 0.05 < len(new) / len(titles) < 0.2
    played_new = plays(frames)["item_id"].isin(new)
    assert played_new.sum() > 0
    shown = frames["events"]
    assert (shown.loc[shown["type"] == "impression", "row"] == "New Releases").any()


def test_plays_follow_true_utility(frames, truth):
    ev = frames["events"]
    imps = ev[ev["type"] == "impression"]
    recs = ev[(ev["type"] == "play") & ev["request_id"].notna()]
    assert len(imps) > 3 * len(ev[ev["type"] == "play"])
    # every play from a recommendation was shown in that request, before the play
    joined = recs.merge(imps, on=["request_id", "item_id"], suffixes=("", "_imp"))
    assert recs["event_id"].isin(joined["event_id"]).all() and (joined["ts"] > joined["ts_imp"]).all()
    played = imps.set_index(["request_id", "item_id"]).index.isin(recs.set_index(["request_id", "item_id"]).index)
    days = (imps["ts"] - pd.Timestamp(truth.start)).dt.total_seconds().to_numpy() / 86_400
    util = truth.utility(imps["user_id"].tolist(), imps["item_id"].tolist(), None) + truth.novelty(
        truth.item_index(imps["item_id"].tolist()), days
    )
    assert util[played].mean() > util[~played].mean() + 0.5
    low, high = np.quantile(util, [1 / 3, 2 / 3])
    assert played[util >= high].mean() > 3 * played[util <= low].mean()


def test_watching_depends_on_utility_and_series_continue(frames, truth):
    ev = frames["events"]
    done = ev[ev["type"] == "complete"]
    started = ev[ev["type"] == "play"]
    assert 0.2 < len(done) / len(started) < 0.95
    surplus = lambda df: truth.surplus_idx(
        truth.user_index(df["user_id"].tolist()), truth.item_index(df["item_id"].tolist())
    )
    partial = ev[(ev["type"] == "progress") & (ev["fraction"] < 0.5)]
    assert surplus(done).mean() > surplus(partial).mean()
    cw = ev[(ev["type"] == "impression") & (ev["row"] == "Continue Watching")]
    assert len(cw) > 0
    first_play = started.groupby(["user_id", "item_id"])["ts"].min().rename("first_play")
    cw = cw.join(first_play, on=["user_id", "item_id"])
    assert (cw["ts"] > cw["first_play"]).all()  # only titles already started
    assert started["request_id"].isna().any() and ev.loc[ev["type"] == "add_to_list"].shape[0] > 0


def test_sessions_peak_in_the_evening(frames, truth):
    imps = frames["events"][frames["events"]["type"] == "impression"].merge(frames["users"], on="user_id")
    offsets = imps["region"].map({"US": -5, "GB": 0, "DE": 1, "FR": 1, "BR": -3, "IN": 5.5})
    local_hour = ((imps["ts"].dt.hour + imps["ts"].dt.minute / 60 + offsets) % 24).astype(int)
    share = local_hour.value_counts(normalize=True)
    assert share.reindex(range(18, 23)).sum() > 2 * share.reindex(range(6, 11)).sum()


# ------------------------------------------------------------------------------------------ ground truth
def test_ground_truth_round_trips_and_answers(world, truth, tmp_path):
    users, titles = world.table("users"), world.table("titles")
    assert truth.user_ids.tolist() == users.column("user_id").to_pylist()
    assert truth.item_ids.tolist() == titles.column("item_id").to_pylist()
    assert truth.user_factors.shape == (users.num_rows, 16) and truth.title_factors.shape == (titles.num_rows, 16)
    meta = json.loads((world.truth_dir / "truth.json").read_text())
    assert meta["params"]["choice_scale"] > 0 and len(meta["genres"]) == 18
    ids = truth.user_ids[:5].tolist(), truth.item_ids[:5].tolist()
    assert np.allclose(truth.utility(*ids), truth.utility_idx(np.arange(5), np.arange(5)))
    assert GroundTruth.load(world.root).utility(*ids).tolist() == truth.utility(*ids).tolist()

    slates = [truth.item_ids[:10].tolist()] * 3
    who = truth.user_ids[:3].tolist()
    first = truth.respond(who, slates, at=datetime(2024, 1, 5, 20, tzinfo=UTC), rng=5)
    again = truth.respond(who, slates, at=datetime(2024, 1, 5, 20, tzinfo=UTC), rng=5)
    assert first.choice.tolist() == again.choice.tolist() and first.choice.shape == (3,)
    for k, choice in enumerate(first.choice):
        assert (choice == -1) == (first.item_id[k] is None)
    many = truth.respond([truth.user_ids[0]] * 400, [slates[0]] * 400, rng=1)
    assert (many.choice >= 0).any() and (many.choice == -1).any()
    assert np.all(np.isnan(many.fraction) == (many.choice < 0))
    with pytest.raises(NotFound):
        truth.utility(["nobody"], [truth.item_ids[0]])

    copy = tmp_path / "truth"
    copy.mkdir()
    for f in world.truth_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    np.save(copy / "popularity.npy", np.ones(len(truth.item_ids)))
    with pytest.raises(ChecksumError):
        GroundTruth.load(copy)


def test_the_world_passes_ingestion_validation(world, tmp_path):
    from streamrec.settings import DuckDBEventStoreConfig, IngestConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "e.duckdb") as store:
        store.put_catalog({name: world.table(name) for name in ("titles", "availability", "users")})
        report = store.ingest_file(world.event_files[0], IngestConfig(unknown_users="quarantine"))
    assert report.quarantined == 0 and report.stored == world.info.counts["events"]


# ------------------------------------------------------------------------------------------ CLI
def test_cli_generate_writes_a_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    help_result = runner.invoke(app, ["data", "generate", "--help"])
    assert help_result.exit_code == 0 and "--size" in help_result.output and "--events" in help_result.output
    args = ["data", "generate", "--size", "tiny", "--users", "80", "--titles", "90", "--days", "4", "--seed", "2"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "events" in result.output and "impression" in result.output
    ds = Dataset.open(tmp_path / "w")
    assert ds.info.source == "synthetic" and ds.info.counts["users"] == 80 and ds.info.counts["events"] > 0
    assert ds.info.params["config"]["seed"] == 2 and ds.events().num_rows == ds.info.counts["events"]
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "w")])
    assert again.exit_code != 0  # exists, no --overwrite
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "w"), "--overwrite"]).exit_code == 0
