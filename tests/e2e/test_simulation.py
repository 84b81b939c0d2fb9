"""The closed-loop viewer simulator on the tiny world: viewers play more from lists that match their true taste (the
loop measures quality), a run is reproducible per seed, the log holds what the responses said, and the events it
posts pass the service's validation and change the online store and the next list; over HTTP and from the CLI."""

from __future__ import annotations

from contextlib import closing
import socket
import threading
import time
from datetime import datetime, timedelta

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from streamrec.cli.app import app as cli
from streamrec.data.dataset import Dataset
from streamrec.data.synthetic.taste import GroundTruth
from streamrec.errors import BackendError
from streamrec.serving import build_state, create_app
from streamrec.settings import load_settings
from streamrec.simulation import (
    LOG_SCHEMA,
    HttpTransport,
    InProcessTransport,
    Posted,
    Served,
    SimulationConfig,
    simulate,
    world_end,
)

from tests.helpers import served_world

KEY = "sim-test-key-1234"
TYPES = {"exposure", "impression", "play", "progress", "complete"}


@pytest.fixture(scope="module")
def world(tiny_world_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("simulation")
    served_world(tiny_world_store, root, {"v1": 10})
    folder = tiny_world_store.parent / "world"
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "model": str(root / "v1")})
    return {"root": root, "folder": folder, "settings": settings, "truth": GroundTruth.load(folder),
            "users": Dataset.open(folder).table("users")}


class Recording:
    """Wraps a transport and keeps every response and every posted batch."""

    def __init__(self, inner):
        self.inner, self.served, self.posted, self.times = inner, [], [], []

    def set_time(self, at: datetime) -> None:
        self.times.append(at)
        self.inner.set_time(at)

    def recommend(self, user_id: str, k: int, request_id: str) -> Served:
        served = self.inner.recommend(user_id, k, request_id)
        self.served.append((user_id, served))
        return served

    def post_events(self, events) -> Posted:
        self.posted.append(list(events))
        return self.inner.post_events(events)

    def close(self) -> None:
        self.inner.close()


class TasteLists:
    """A test-only service: lists ranked by the viewer's true utility ('oracle') or drawn at random ('random'),
    never showing a title the viewer already played."""

    def __init__(self, truth: GroundTruth, how: str, seed: int = 0):
        self.truth, self.how = truth, how
        self.rng = np.random.default_rng(seed)
        self.played: dict[str, set[str]] = {}
        self.at: datetime | None = None
        self.n = 0

    def set_time(self, at: datetime) -> None:
        self.at = at

    def recommend(self, user_id: str, k: int, request_id: str) -> Served:
        items = self.truth.item_ids
        if self.how == "oracle":
            util = self.truth.utility([user_id] * len(items), items, self.at)
            order = np.argsort(-util, kind="stable")
        else:
            order = self.rng.permutation(len(items))
        done = self.played.get(user_id, set())
        chosen = [str(items[i]) for i in order if str(items[i]) not in done][:k]
        return Served(request_id, chosen, "truth", "taste", self.how)

    def post_events(self, events) -> Posted:
        for e in events:
            if e["type"] == "play":
                self.played.setdefault(e["user_id"], set()).add(e["item_id"])
        return Posted(accepted=len(events))

    def close(self) -> None:
        pass


def in_process(world) -> InProcessTransport:
    return InProcessTransport(build_state(world["settings"]))


def test_viewers_play_more_when_lists_match_their_true_taste(world):
    truth, users = world["truth"], world["users"]
    config = SimulationConfig(days=4, seed=3)
    rate = {}
    for how in ("oracle", "random"):
        result = simulate(truth, users, TasteLists(truth, how), config)
        rate[how] = result.total.play_rate
        assert result.total.requests > 200
    with closing(in_process(world)) as transport:
        served = simulate(truth, users, transport, config).total
    assert rate["oracle"] > rate["random"] + 0.15, rate
    assert rate["random"] < served.play_rate < rate["oracle"], (served.play_rate, rate)


def test_a_run_is_reproducible_per_seed_in_process(world):
    config = SimulationConfig(days=2, users=80, seed=11)
    logs = []
    for seed in (11, 11, 12):
        with closing(in_process(world)) as transport:
            run = config.model_copy(update={"seed": seed})
            logs.append(simulate(world["truth"], world["users"], transport, run).log)
    first, again, other = logs
    assert first.num_rows > 100
    assert first.equals(again)
    assert not first.equals(other)


def test_the_log_holds_what_the_responses_said(world):
    with closing(Recording(in_process(world))) as recording:
        result = simulate(world["truth"], world["users"], recording, SimulationConfig(days=2, users=60, seed=4))
    log = result.log
    assert log.schema.equals(LOG_SCHEMA)
    assert set(log["type"].to_pylist()) <= TYPES and {"exposure", "impression", "play"} <= set(log["type"].to_pylist())
    by_request = {s.request_id: (user, s) for user, s in recording.served}
    assert len(by_request) == len(recording.served) == result.total.requests
    for row in log.to_pylist():
        user, served = by_request[row["request_id"]]  # every row belongs to a request that was answered
        assert row["user_id"] == user
        assert (row["experiment"], row["variant"]) == (served.experiment, served.variant)
        if row["type"] in ("impression", "play"):
            assert row["item_id"] in served.items and row["watched_s"] is None
        if row["type"] in ("progress", "complete"):
            assert row["watched_s"] > 0
    exposures = log.filter(pc.equal(log["type"], "exposure"))
    assert sorted(exposures["request_id"].to_pylist()) == sorted(by_request)
    assert log["ts"].to_pylist() == sorted(log["ts"].to_pylist())
    # impressions follow the served order, and the service's clock stood at each request's simulated time
    first = recording.served[0][1]
    shown = [r["item_id"] for r in log.to_pylist() if r["request_id"] == first.request_id and r["type"] == "impression"]
    assert shown == first.items
    start = world_end(world["truth"])
    assert len(recording.times) == len(recording.served)
    assert min(recording.times) >= start and max(recording.times) < start + timedelta(days=2)
    assert [e["ts"] for e in exposures.to_pylist()] == sorted(recording.times)


def test_posted_events_pass_validation_and_reach_the_online_store(world):
    with closing(in_process(world)) as transport:
        posted_events_reach_the_store(world, transport)


def posted_events_reach_the_store(world, transport: InProcessTransport) -> None:
    recording = Recording(transport)
    result = simulate(world["truth"], world["users"], recording, SimulationConfig(days=3, users=120, seed=5))
    posted = [e for batch in recording.posted for e in batch]
    assert result.rejected == [] and result.total.rejected == 0
    assert result.total.accepted == len(posted) == result.log.num_rows - result.total.requests
    store = transport.state.world.store
    completes = [e for e in posted if e["type"] == "complete"]
    assert completes
    for e in completes[:20]:
        history = store.history(e["user_id"])
        assert any(h.item_id == e["item_id"] and h.type == "complete" for h in history)
    user, item = completes[-1]["user_id"], completes[-1]["item_id"]
    transport.set_time(world_end(world["truth"]) + timedelta(days=3))
    after = transport.recommend(user, 50, "check-after")
    assert after.items and item not in after.items, "a title the viewer completed is still recommended"
    # the simulator's events take the same validation as any client's: an unknown title is refused and named
    bad = dict(posted[0], event_id="bad-1", item_id="no-such-title")
    answer = transport.post_events([bad, dict(posted[0], event_id="good-again")])
    assert answer.accepted == 1 and [(r["field"], r["reason"]) for r in answer.rejected] == [("item_id",
                                                                                              "unknown_title")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_http_transport_runs_the_loop_against_a_running_server(world):
    import uvicorn

    state = build_state(world["settings"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(world["settings"], state), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        transport = Recording(HttpTransport(f"http://127.0.0.1:{port}", KEY))
        result = simulate(world["truth"], world["users"], transport, SimulationConfig(days=1, users=60, seed=6,
                                                                                      run_id="http-run"))
        assert result.total.requests > 10 and result.rejected == []
        assert result.total.accepted == result.log.num_rows - result.total.requests
        assert {r for r in result.log["request_id"].to_pylist()} == {s.request_id for _, s in transport.served}
        plays = result.log.filter(pc.equal(result.log["type"], "play")).to_pylist()
        assert plays and all(any(h.item_id == p["item_id"] for h in state.world.store.history(p["user_id"]))
                             for p in plays)
        # the server's day was the simulation's: POST /v1/admin/clock moved its data clock before each request
        last = max(r["ts"] for r in result.log.to_pylist() if r["type"] == "exposure")
        assert abs(state.world.clock() - last) < timedelta(minutes=5)
        transport.close()
        wrong = HttpTransport(f"http://127.0.0.1:{port}", "wrong-key")
        with pytest.raises(BackendError, match="status 401"):
            wrong.post_events([{"event_id": "x"}])
        wrong.close()
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_simulate_verb_writes_the_log_and_prints_the_days(world, tmp_path):
    out = tmp_path / "sim" / "log.parquet"
    runner = CliRunner()
    args = ["--data-dir", str(world["root"]), "simulate", "--days", "2", "--users", "40", "--seed", "2",
            "--world", str(world["folder"]), "--model", str(world["root"] / "v1"), "--out", str(out)]
    result = runner.invoke(cli, args, env={"STREAMREC_SERVING__API_KEYS": f'["{KEY}"]'})
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.schema.names == LOG_SCHEMA.names and table.num_rows > 0
    assert "play rate" in result.output and "total" in result.output and str(out) in result.output
    again = runner.invoke(cli, args[:-1] + [str(tmp_path / "again.parquet")])
    assert again.exit_code == 0, again.output
    assert pq.read_table(tmp_path / "again.parquet").equals(table)
