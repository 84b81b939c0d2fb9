"""streamrec.client against a real server: uvicorn on a free port over a tiny world, called through the sync and the
async client. Every route of the app's OpenAPI schema has a client method (and is reached by it); answers are typed;
the server's error bodies become exceptions that say what and where; a server that is not up yet, and an event bus
that is full (503), are retried until they answer; a call that outlasts the timeout raises."""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import time
from datetime import timedelta

import httpx2
import pytest
import uvicorn

from streamrec.client import (
    ENDPOINTS,
    NO_RETRY,
    AsyncClient,
    Client,
    ExperimentConfig,
    InvalidRequest,
    NotFoundError,
    Recommendations,
    RequestTimeout,
    Retry,
    ServerUnreachable,
    Unauthorized,
    Unavailable,
)
from streamrec.serving import build_state, create_app
from streamrec.settings import load_settings
from tests.helpers import most_active_users, served_world

KEY = "client-key-1234"
BUS_WAIT_S = 2.0  # how long a publish to a full bus waits before the server answers 503


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """A real uvicorn server for `app` on `port`, in a thread of this process (so a test can reach its state)."""

    def __init__(self, app, port: int, lifespan: str = "on"):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    access_log=False, lifespan=lifespan))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def served(tiny_world_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("client")
    served_world(tiny_world_store, root, {"v1": 10, "v2": 12})
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "model": str(root / "v1")},
                             event_bus={"maxlen": 20, "publish_timeout_s": BUS_WAIT_S})
    state = build_state(settings)
    app = create_app(settings, state)
    port = free_port()
    server = ServerThread(app, port).start()
    yield {"root": root, "state": state, "app": app, "url": f"http://127.0.0.1:{port}",
           "users": most_active_users(root / "events.duckdb", 10)}
    server.stop()


def requests_by_route(state) -> dict[str, float]:
    """Requests the server counted, by route template (any status)."""
    out: dict[str, float] = {}
    for family in state.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "streamrec_http_requests_total":
                out[sample.labels["route"]] = out.get(sample.labels["route"], 0) + sample.value
    return out


def served_503s(state) -> float:
    return state.metrics.registry.get_sample_value("streamrec_http_requests_total",
                                                   {"route": "/v1/events", "status": "503"}) or 0.0


def play(state, event_id: str, user: str, item: str) -> dict:
    ts = state.world.clock() - timedelta(seconds=2)
    return {"event_id": event_id, "user_id": user, "item_id": item, "type": "play", "ts": ts}


def test_every_route_of_the_openapi_schema_has_a_client_method(served):
    schema = served["app"].openapi()
    routes = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    declared = {(e.method, e.path) for e in ENDPOINTS.values()}
    assert routes - declared == set(), "routes without a client method: add them to streamrec.client.calls.ENDPOINTS"
    assert declared - routes == set(), "client methods for routes the server does not have"
    for name in ENDPOINTS:
        assert callable(getattr(Client, name, None)), f"Client.{name} is missing"
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name, None)), f"AsyncClient.{name} is missing"
        assert list(inspect.signature(getattr(Client, name)).parameters) == \
            list(inspect.signature(getattr(AsyncClient, name)).parameters), name
    admin = {path for path, item in schema["paths"].items() for op in item.values() if op.get("security")}
    assert admin == {e.path for e in ENDPOINTS.values() if e.admin}, "the client sends the key where the schema asks"


def test_every_endpoint_answers_the_sync_client_with_typed_models(served):
    state, root, users = served["state"], served["root"], served["users"]
    registry = state.registry()
    versions = [registry.register(registry.log_training_run(root / name, data_snapshot="tiny").run_id)
                for name in ("v1", "v2")]
    before = requests_by_route(state)
    with Client(served["url"], api_key=KEY, timeout=30) as api:
        assert api.health().status == "ok"
        ready = api.ready()
        assert (ready.status, ready.model_version, ready.reasons) == ("ready", "v1", [])
        recs = api.recommendations(users[0], k=5, explain=True, request_id="client-req-1")
        assert isinstance(recs, Recommendations) and recs.request_id == "client-req-1"
        assert (recs.model_version, recs.fallback, recs.user_id) == ("v1", None, users[0])
        assert 0 < len(recs.items) <= 5 and all(t.explanation for t in recs.items)
        shown = [t.item_id for t in recs.items]
        fewer = api.recommendations(users[0], k=5, exclude=shown[:2])
        assert not set(shown[:2]) & {t.item_id for t in fewer.items}
        home = api.home(users[0], region=recs.region)
        assert {"top_picks", "trending"} <= {row.id for row in home.rows}
        similar = api.similar(shown[0], k=3)
        assert similar.item_id == shown[0] and 0 < len(similar.items) <= 3
        posted = api.post_events([play(state, "client-all-1", users[1], shown[0])])
        assert (posted.accepted, posted.duplicates, posted.rejected) == (1, 0, [])
        models = api.models()
        assert models.served.version == "v1" and models.served.kind == "pipeline"
        assert set(versions) <= {v.version for v in models.registry}
        assert api.reload(str(root / "v2")).served.version == "v2"
        promoted = api.promote(versions[0])
        assert promoted.champion == versions[0] and promoted.served.version == str(versions[0])
        clock = api.set_clock(state.world.clock() + timedelta(minutes=5))
        assert abs((clock.now - state.world.clock()).total_seconds()) < 60
        definitions = [ExperimentConfig.model_validate({"name": "client-div", "variants": [
            {"name": "low", "diversity": 0.0}, {"name": "high", "diversity": 0.9}]})]
        try:
            assert [e.name for e in api.set_experiments(definitions).experiments] == ["client-div"]
            listed = api.experiments().experiments
            assert listed == definitions  # typed both ways: the models the server validated
            assert api.recommendations(users[0]).experiment == "client-div"
        finally:
            api.set_experiments([])
        assert "streamrec_http_requests_total" in api.metrics()
        assert api.reload(str(root / "v1")).served.version == "v1"
    after = requests_by_route(state)
    reached = {route for route in after if after[route] > before.get(route, 0)}
    assert {e.path for e in ENDPOINTS.values()} <= reached, "a client method did not reach its route"


def test_the_async_client_answers_concurrent_calls_and_a_play_changes_the_next_list(served):
    state, users = served["state"], served["users"]

    async def scenario() -> None:
        async with AsyncClient(served["url"], api_key=KEY, timeout=30) as api:
            assert (await api.health()).status == "ok" and (await api.ready()).status == "ready"
            lists = await asyncio.gather(*(api.recommendations(u, k=5) for u in users[:6]))
            assert [r.user_id for r in lists] == users[:6] and all(r.items and r.fallback is None for r in lists)
            user, top = users[2], lists[2].items[0].item_id
            posted = await api.post_events([play(state, "client-async-1", user, top)])
            assert posted.accepted == 1
            after = await api.recommendations(user, k=5)
            assert top not in {t.item_id for t in after.items}, "a title just played is still recommended"
            assert (await api.experiments()).experiments == []
            assert (await api.similar(top, k=2)).items and (await api.home(user)).rows
            with pytest.raises(NotFoundError):
                await api.similar("no-such-title")

    asyncio.run(scenario())


def test_error_bodies_become_exceptions_that_say_what_and_where(served):
    with Client(served["url"], api_key=KEY) as api, Client(served["url"]) as keyless:
        with pytest.raises(NotFoundError) as missing:
            api.similar("no-such-title")
        assert missing.value.status == 404 and missing.value.error == "not_found"
        assert "no-such-title" in str(missing.value) and missing.value.request_id
        with pytest.raises(InvalidRequest) as too_many:
            api.recommendations("u1", k=100_000)
        assert [p.where for p in too_many.value.problems] == ["query.k"] and "query.k" in str(too_many.value)
        with pytest.raises(InvalidRequest) as bad:
            api.post_events([{"event_id": "client-bad-1", "user_id": "u1", "item_id": "no-such-title",
                              "type": "play", "ts": "2024-01-01T00:00:00Z"}])
        assert bad.value.problems[0].where == "events.0.item_id"
        with pytest.raises(Unauthorized) as refused:
            keyless.reload()
        assert refused.value.status == 401 and "without an api_key" in str(refused.value)
        with pytest.raises(Unauthorized), Client(served["url"], api_key="wrong-key") as wrong:
            wrong.set_clock(served["state"].world.clock())
        with pytest.raises(InvalidRequest) as broken:
            api.reload(str(served["root"] / "no-such-model"))
        assert "no-such-model" in broken.value.message
        assert api.models().served.version == "v1" and api.ready().status == "degraded"  # the old model stays
        assert api.reload().served.version == "v1" and api.ready().status == "ready"


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_server_that_is_not_up_yet_is_retried_until_it_answers(served, flavour):
    port = free_port()
    late = ServerThread(served["app"], port, lifespan="off")  # the same app; its shutdown must not close the state
    starter = threading.Timer(0.8, late.start)
    retry = Retry(attempts=20, backoff_s=0.1, max_backoff_s=0.5)
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ServerUnreachable) as down, Client(url, retry=Retry(attempts=2, backoff_s=0.01)) as early:
        early.health()
    assert down.value.attempts == 2 and "GET /healthz" in str(down.value)
    starter.start()
    try:
        if flavour == "sync":
            with Client(url, retry=retry) as api:
                ready = api.ready()
        else:
            async def call():
                async with AsyncClient(url, retry=retry) as api:
                    return await api.ready()

            ready = asyncio.run(call())
        assert ready.status == "ready"
    finally:
        starter.join()
        late.stop()


class FullBus:
    """A consumer group on the server's event bus that reads nothing until told: `fill` posts events until the bus
    holds its bound for the group (the server then makes publishers wait, and answers 503), `drain` reads it all."""

    def __init__(self, served, group: str = "client-tests"):
        self.state, self.users = served["state"], served["users"]
        self.bus = self.state.world.bus
        self.consumer = self.bus.consumer(group, lambda events: None, group=group)
        self.group = group
        self.drain()

    def drain(self) -> None:
        while self.bus.backlog(self.group):
            self.consumer.poll_once()

    def fill(self, api: Client, tag: str) -> None:
        room = self.bus.config.maxlen - self.bus.backlog(self.group)
        events = [play(self.state, f"{tag}-{i}", self.users[i % 5], self.state.world.filter.item_ids[i])
                  for i in range(room)]
        assert api.post_events(events).accepted == room
        assert self.bus.backlog(self.group) == self.bus.config.maxlen

    def drain_after_503(self, seen: float) -> threading.Thread:
        """Drain once the server has answered a 503 more than `seen` (a client is then waiting to retry)."""

        def run() -> None:
            deadline = time.monotonic() + 30
            while served_503s(self.state) <= seen and time.monotonic() < deadline:
                time.sleep(0.01)
            self.drain()

        thread = threading.Thread(target=run)
        thread.start()
        return thread


@pytest.fixture
def full_bus(served):
    """One group for every test here (the bus has no way to drop a group), emptied after each: a group left behind
    would fill up with the next test's events."""
    bus = FullBus(served)
    yield bus
    bus.drain()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_full_event_bus_503_is_retried_and_the_event_is_accepted_once(served, full_bus, flavour):
    state, bus = served["state"], full_bus
    retry = Retry(attempts=5, backoff_s=0.1, max_backoff_s=3.0)
    event = play(state, f"client-retried-{flavour}", served["users"][3], state.world.filter.item_ids[7])
    with Client(served["url"], api_key=KEY, timeout=30) as api:
        bus.fill(api, f"client-fill-{flavour}")
        seen = served_503s(state)
        drainer = bus.drain_after_503(seen)
        try:
            if flavour == "sync":
                with Client(served["url"], api_key=KEY, timeout=30, retry=retry) as retrying:
                    posted = retrying.post_events([event])
            else:
                async def call():
                    async with AsyncClient(served["url"], api_key=KEY, timeout=30, retry=retry) as retrying:
                        return await retrying.post_events([event])

                posted = asyncio.run(call())
        finally:
            drainer.join()
    assert posted.accepted == 1 and served_503s(state) > seen  # refused while full, accepted on a retry
    assert bus.bus.backlog(bus.group) == 1, "the refused try put nothing on the bus; the accepted one put one event"


def test_a_call_that_outlasts_the_timeout_raises_and_without_retries_a_503_is_raised(served, full_bus):
    state, bus = served["state"], full_bus
    with Client(served["url"], api_key=KEY, timeout=30) as api:
        bus.fill(api, "client-fill-timeout")
    event = play(state, "client-timed-out", served["users"][4], state.world.filter.item_ids[9])
    seen = served_503s(state)
    began = time.monotonic()
    with Client(served["url"], api_key=KEY, timeout=0.3, retry=NO_RETRY) as hasty:
        with pytest.raises(RequestTimeout) as timed_out:
            hasty.post_events([event])
    waited = time.monotonic() - began
    assert waited < BUS_WAIT_S - 0.5, f"gave up after {waited:.2f} s, not at the 0.3 s timeout"
    assert timed_out.value.attempts == 1 and "POST /v1/events" in str(timed_out.value)

    async def patient_without_retries():
        async with AsyncClient(served["url"], api_key=KEY, timeout=30, retry=NO_RETRY) as api:
            return await api.post_events([event])

    with pytest.raises(Unavailable) as full:
        asyncio.run(patient_without_retries())
    assert full.value.status == 503 and "full" in full.value.message
    deadline = time.monotonic() + 30  # the timed-out request's 503 too, before the bus is emptied
    while served_503s(state) < seen + 2 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_only_calls_that_are_safe_to_repeat_are_sent_again_after_a_503():
    """A stand-in transport answers 503 like a proxy before a dead server (an HTML page, no JSON error body)."""
    sent: list[str] = []

    def gateway(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        return httpx2.Response(503, text="<html>upstream down</html>", headers={"Retry-After": "0"})

    retry = Retry(attempts=3, backoff_s=0.0)
    with Client("http://streamrec.test", api_key=KEY, retry=retry, transport=httpx2.MockTransport(gateway)) as api:
        with pytest.raises(Unavailable) as promote:
            api.promote(3)
        assert sent == ["/v1/admin/promote"], "promote is not safe to repeat: sent once"
        assert promote.value.error == "http_error" and "upstream down" in promote.value.message
        sent.clear()
        with pytest.raises(Unavailable):
            api.post_events([{"event_id": "e1"}])
        assert sent == ["/v1/events"] * 3, "events carry their event_id: repeated up to the attempts"
