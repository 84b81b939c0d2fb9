"""The event bus contract: the in-process default and Redis Streams (a real redis-server) pass the same tests.

At-least-once delivery is the bus's job (nothing unacknowledged is lost, a dead consumer's entries go to another);
idempotent handling is the consumer's (a redelivered event may be seen twice).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from streamrec.errors import BackendError, ValidationError
from streamrec.events.bus import EventBus, open_event_bus
from streamrec.settings import InProcessEventBusConfig, RedisEventBusConfig

T0 = datetime(2026, 3, 1, 12, 0)


def ev(i: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{i}", "user_id": f"u{i % 3}", "item_id": f"t{i}", "type": "progress",
            "ts": T0 + timedelta(seconds=i), "position": None, "fraction": i / 100, **extra}


class Killed(BaseException):
    """Stands for the consumer's process dying inside the handler: nothing after it runs, nothing is acknowledged."""


class Recorder:
    """A handler that keeps what it handled; fails on chosen events (`fail`: event_id → failures left, -1: always)
    and dies (Killed) on the calls numbered in `die_on_calls` (1-based)."""

    def __init__(self, fail: Mapping[str, int] | None = None, die_on_calls: Sequence[int] = ()):
        self.fail = dict(fail or {})
        self.die_on_calls = set(die_on_calls)
        self.calls: list[list[str]] = []  # event ids of every call, failed or not
        self.handled: list[dict[str, Any]] = []  # events of the calls that returned

    def __call__(self, events: Sequence[Mapping[str, Any]]) -> None:
        ids = [e["event_id"] for e in events]
        self.calls.append(ids)
        if len(self.calls) in self.die_on_calls:
            raise Killed()
        for i in ids:
            left = self.fail.get(i, 0)
            if left:
                self.fail[i] = left - 1 if left > 0 else left
                raise ValueError(f"cannot apply {i}")
        self.handled.extend(dict(e) for e in events)

    @property
    def ids(self) -> list[str]:
        return [e["event_id"] for e in self.handled]


@pytest.fixture(params=["inprocess", "redis"])
def make_bus(request) -> Callable[..., EventBus]:
    """Makes buses of the parametrized backend (Redis: a stream of its own on the session's server)."""
    buses: list[EventBus] = []

    def make(**settings: Any) -> EventBus:
        if request.param == "redis":
            server = request.getfixturevalue("redis_server")
            bus = open_event_bus(RedisEventBusConfig(url=server.url, stream=f"test:{uuid.uuid4().hex}", **settings))
        else:
            bus = open_event_bus(InProcessEventBusConfig(**settings))
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.close()


def poll_until(consumers: Sequence[Any], done: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the consumers"
        for c in consumers:
            c.poll_once(block_ms=10)


# --- publish and consume ----------------------------------------------------------------------------------------------
def test_a_consumer_gets_every_event_in_publish_order_with_its_values(make_bus):
    bus = make_bus()
    rec = Recorder()
    consumer = bus.consumer("c1", rec, count=4)
    published = [ev(i) for i in range(6)]
    assert bus.publish(published[:2]) == 2 and bus.publish(published[2:5]) == 3 and bus.publish(published[5:]) == 1
    assert bus.publish([]) == 0
    poll_until([consumer], lambda: len(rec.handled) == 6)
    assert rec.handled == published  # datetimes, None and floats round-trip
    assert all(len(c) <= 4 for c in rec.calls)
    assert consumer.poll_once().delivered == 0


def test_a_new_group_starts_at_the_oldest_entry_the_bus_holds(make_bus):
    bus = make_bus()
    bus.publish([ev(i) for i in range(3)])
    rec = Recorder()
    poll_until([bus.consumer("late", rec, group="late")], lambda: len(rec.handled) == 3)
    assert rec.ids == ["e0", "e1", "e2"]


def test_the_backlog_of_a_group_counts_undelivered_and_pending_entries_until_acknowledged(make_bus):
    bus = make_bus(claim_idle_ms=60_000)
    assert bus.backlog("nobody") == 0  # no group yet
    dying = Recorder(die_on_calls=[1])
    consumer = bus.consumer("c1", dying, count=2)
    assert bus.backlog() == 0
    bus.publish([ev(i) for i in range(5)])
    assert bus.backlog() == 5  # undelivered
    with pytest.raises(Killed):
        consumer.poll_once()
    assert bus.backlog() == 5  # 2 pending (delivered, not acknowledged) + 3 undelivered
    poll_until([consumer], lambda: len(dying.handled) == 3)
    assert bus.backlog() == 2  # the two pending entries wait for `claim_idle_ms`
    assert bus.backlog("nobody") == 0


def test_every_group_gets_every_event_and_the_members_of_one_group_share_them(make_bus):
    bus = make_bus()
    a1, a2, b = Recorder(), Recorder(), Recorder()
    members = [bus.consumer("a1", a1, group="a", count=3), bus.consumer("a2", a2, group="a", count=3)]
    other = bus.consumer("b1", b, group="b")
    bus.publish([ev(i) for i in range(10)])
    poll_until(members, lambda: len(a1.handled) + len(a2.handled) == 10)
    poll_until([other], lambda: len(b.handled) == 10)
    assert a1.handled and a2.handled  # both members took a share ...
    assert sorted(a1.ids + a2.ids, key=lambda i: int(i[1:])) == [f"e{i}" for i in range(10)]  # ... each once
    assert b.ids == [f"e{i}" for i in range(10)]


def test_subscribers_are_called_on_publish_and_a_failing_one_stops_nothing(make_bus):
    bus = make_bus()
    seen: list[list[str]] = []

    def broken(events: Sequence[Mapping[str, Any]]) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(lambda events: seen.append([e["event_id"] for e in events]))
    rec = Recorder()
    consumer = bus.consumer("c1", rec)
    assert bus.publish([ev(1), ev(2)]) == 2
    assert seen == [["e1", "e2"]]  # synchronously: before publish returned
    poll_until([consumer], lambda: len(rec.handled) == 2)


def test_a_value_the_bus_cannot_carry_is_refused_with_its_position_and_field(make_bus):
    bus = make_bus()
    rec = Recorder()
    consumer = bus.consumer("c1", rec)
    with pytest.raises(ValidationError) as info:
        bus.publish([ev(0), ev(1, device={"tv", "web"})])
    assert info.value.row == 1 and info.value.field == "device"
    assert consumer.poll_once().delivered == 0  # nothing of the batch was published


def test_run_consumes_until_stopped(make_bus):
    bus = make_bus()
    rec = Recorder()
    consumer = bus.consumer("c1", rec)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), kwargs={"block_ms": 20})
    thread.start()
    try:
        bus.publish([ev(i) for i in range(5)])
        deadline = time.monotonic() + 15
        while len(rec.handled) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert rec.ids == [f"e{i}" for i in range(5)]


# --- acknowledgements and redelivery ------------------------------------------------------------------------------------
def test_acknowledged_entries_are_not_delivered_again(make_bus):
    bus = make_bus(claim_idle_ms=20)
    rec, other = Recorder(), Recorder()
    first = bus.consumer("c1", rec)
    bus.publish([ev(i) for i in range(3)])
    poll_until([first], lambda: len(rec.handled) == 3)
    time.sleep(0.1)  # past claim_idle_ms: only unacknowledged entries would be taken over
    second = bus.consumer("c2", other)
    assert second.poll_once().delivered == 0 and first.poll_once().delivered == 0
    assert other.calls == [] and len(rec.calls) == 1


def test_a_dead_consumers_entries_go_to_another_member_once_idle(make_bus):
    idle_ms = 500
    bus = make_bus(claim_idle_ms=idle_ms)
    dying, rescuer = Recorder(die_on_calls=[1]), Recorder()
    first = bus.consumer("c1", dying)
    second = bus.consumer("c2", rescuer)
    published = [ev(i) for i in range(4)]
    bus.publish(published)
    died = time.monotonic()
    with pytest.raises(Killed):
        first.poll_once()
    stats = second.poll_once()
    if time.monotonic() - died < idle_ms / 1000:  # not idle long enough yet: still the dead consumer's
        assert stats.delivered == 0 and rescuer.calls == []
    poll_until([second], lambda: len(rescuer.handled) == 4)
    assert rescuer.handled == published  # in order, whole
    time.sleep(idle_ms / 1000 + 0.05)
    assert second.poll_once().delivered == 0  # acknowledged by the rescuer: not delivered a third time
    assert bus.dead_letters() == []


def test_delivery_is_at_least_once_when_a_consumer_dies_mid_stream(make_bus):
    bus = make_bus(claim_idle_ms=30)
    dying, rescuer = Recorder(die_on_calls=[2]), Recorder()
    first = bus.consumer("c1", dying, count=5)
    bus.publish([ev(i) for i in range(20)])
    first.poll_once()  # e0-e4 handled and acknowledged
    with pytest.raises(Killed):
        first.poll_once()  # dies holding e5-e9
    second = bus.consumer("c2", rescuer, count=5)
    poll_until([second], lambda: len(rescuer.handled) == 15)
    handled = dying.ids + rescuer.ids
    assert sorted(handled, key=lambda i: int(i[1:])) == [f"e{i}" for i in range(20)]  # none lost, none acked twice
    assert dying.calls[1] == [f"e{i}" for i in range(5, 10)]  # seen by the dead consumer too: at least once


# --- poison entries ---------------------------------------------------------------------------------------------------
def test_an_entry_that_keeps_failing_is_dead_lettered_with_the_reason(make_bus):
    bus = make_bus(claim_idle_ms=20, max_deliveries=3)
    rec = Recorder(fail={"e2": -1})
    consumer = bus.consumer("c1", rec)
    published = [ev(i) for i in range(5)]
    bus.publish(published)
    first = consumer.poll_once()
    assert (first.delivered, first.acked, first.retrying, first.dead) == (5, 4, 1, 0)  # the others go on
    poll_until([consumer], lambda: bool(bus.dead_letters()))
    [dead] = bus.dead_letters()
    assert dead.reason == "handler_failed" and dead.deliveries == 3
    assert "ValueError" in dead.detail and "cannot apply e2" in dead.detail
    assert (dead.group, dead.consumer) == ("workers", "c1")
    assert dead.event == published[2]
    assert rec.calls.count(["e2"]) == 3  # alone on each delivery
    assert sorted(rec.ids) == ["e0", "e1", "e3", "e4"]
    time.sleep(0.1)
    assert consumer.poll_once().delivered == 0  # no longer pending


def test_a_handler_that_fails_fewer_than_max_deliveries_times_succeeds_later(make_bus):
    bus = make_bus(claim_idle_ms=20, max_deliveries=3)
    rec = Recorder(fail={"e1": 2})
    consumer = bus.consumer("c1", rec)
    bus.publish([ev(0), ev(1)])
    poll_until([consumer], lambda: "e1" in rec.ids)
    assert rec.ids == ["e0", "e1"] and bus.dead_letters() == []


def test_an_entry_whose_consumers_keep_dying_is_dead_lettered_without_running_the_handler(make_bus):
    bus = make_bus(claim_idle_ms=20, max_deliveries=2)
    bus.consumer("c0", Recorder())  # the group exists before the publish
    bus.publish([ev(7)])
    for name in ("c1", "c2"):  # delivered twice, and each consumer died handling it
        consumer = bus.consumer(name, Recorder(die_on_calls=[1]))
        with pytest.raises(Killed):
            poll_until([consumer], lambda: False)
        time.sleep(0.03)
    survivor = Recorder()
    last = bus.consumer("c3", survivor)
    poll_until([last], lambda: bool(bus.dead_letters()))
    [dead] = bus.dead_letters()
    assert dead.reason == "max_deliveries" and dead.deliveries == 3 and dead.event == ev(7)
    assert survivor.calls == []


# --- bound and backpressure -------------------------------------------------------------------------------------------
def test_publishers_wait_while_a_group_holds_maxlen_unacknowledged_entries_then_fail(make_bus):
    bus = make_bus(maxlen=4, publish_timeout_s=0.3, claim_idle_ms=60_000)
    consumer = bus.consumer("c1", Recorder(die_on_calls=[1]), group="slow")
    bus.publish([ev(i) for i in range(4)])
    with pytest.raises(Killed):
        consumer.poll_once()  # delivered, never acknowledged: they still count against the bound
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"full: consumer group 'slow' has 4 unacknowledged and 0 undelivered"):
        bus.publish([ev(4)])
    assert time.monotonic() - started >= 0.3


def test_a_waiting_publish_goes_through_once_the_consumers_catch_up(make_bus):
    bus = make_bus(maxlen=4, publish_timeout_s=30)
    rec = Recorder()
    consumer = bus.consumer("c1", rec)
    bus.publish([ev(i) for i in range(4)])
    errors: list[Exception] = []

    def publish_more() -> None:
        try:
            bus.publish([ev(4), ev(5)])
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=publish_more)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # waiting: 4 undelivered + 2 > 4
    poll_until([consumer], lambda: len(rec.handled) >= 4)
    thread.join(30)
    assert not thread.is_alive() and errors == []
    poll_until([consumer], lambda: len(rec.handled) == 6)
    assert rec.ids == [f"e{i}" for i in range(6)]


def test_without_consumer_groups_the_bus_keeps_about_maxlen_newest_entries(make_bus):
    bus = make_bus(maxlen=10, publish_timeout_s=0)
    published = [ev(i) for i in range(300)]
    for start in range(0, 300, 10):
        bus.publish(published[start:start + 10])  # nobody lags: never waits
    rec = Recorder()
    poll_until([bus.consumer("late", rec, count=500)], lambda: bool(rec.handled))
    # Redis trims whole nodes (MAXLEN ~, up to 100 entries each): between maxlen and maxlen + 100 remain
    assert 10 <= len(rec.handled) <= 110
    assert rec.handled == published[-len(rec.handled):]


def test_a_batch_larger_than_the_bound_is_refused_whole(make_bus):
    bus = make_bus(maxlen=3)
    rec = Recorder()
    consumer = bus.consumer("c1", rec)
    with pytest.raises(BackendError, match="larger than the bus bound"):
        bus.publish([ev(i) for i in range(4)])
    assert consumer.poll_once().delivered == 0


# --- Redis only: what only a shared server can do ---------------------------------------------------------------------
def redis_bus(url: str, **settings: Any) -> EventBus:
    return open_event_bus(RedisEventBusConfig(url=url, stream=f"test:{uuid.uuid4().hex}", **settings))


def test_redis_undecodable_entries_are_dead_lettered_with_the_raw_payload(redis_server):
    import redis

    bus = redis_bus(redis_server.url)
    rec = Recorder()
    consumer = bus.consumer("c1", rec)
    with redis.Redis.from_url(redis_server.url) as client:  # written by something that is not streamrec
        client.xadd(bus.config.stream, {"e": b"{not json"})
        client.xadd(bus.config.stream, {"e": b"[1, 2]"})
        client.xadd(bus.config.stream, {"other": b"x"})
    bus.publish([ev(1)])
    stats = consumer.poll_once()
    assert (stats.delivered, stats.acked, stats.dead) == (1, 1, 3)
    assert rec.ids == ["e1"]
    letters = bus.dead_letters()
    assert [d.reason for d in letters] == ["undecodable"] * 3
    assert [d.payload for d in letters] == ["{not json", "[1, 2]", "other=x"]
    assert "not a JSON event" in letters[0].detail and "not a JSON object but a list" in letters[1].detail
    assert "no 'e' field (fields: other)" in letters[2].detail
    assert all(d.event is None for d in letters)
    assert consumer.poll_once().delivered == 0
    bus.close()


def test_redis_down_is_a_backend_error_without_the_password_and_both_sides_resume(own_redis):
    bus = redis_bus(own_redis.url, socket_timeout_s=2)
    rec = Recorder()
    consumer = bus.consumer("c1", rec)
    bus.publish([ev(0), ev(1)])
    poll_until([consumer], lambda: len(rec.handled) == 2)
    bus.publish([ev(2)])  # published, not yet consumed: must survive the restart (append-only file)

    own_redis.stop()
    with pytest.raises(BackendError, match=r"event bus redis://127\.0\.0\.1:\d+/0 stream 'test:\w+': publish"):
        bus.publish([ev(3)])
    with pytest.raises(BackendError):
        consumer.poll_once()
    with pytest.raises(BackendError) as info:
        redis_bus(own_redis.url.replace("redis://", "redis://:s3cret@")).publish([ev(9)])
    assert "s3cret" not in str(info.value) and ":***@" in str(info.value)

    own_redis.start()  # same port, same data
    bus.publish([ev(3)])
    poll_until([consumer], lambda: len(rec.handled) == 4)
    assert rec.ids == ["e0", "e1", "e2", "e3"]
    bus.close()


def test_redis_a_group_lost_with_its_stream_is_recreated(redis_server):
    import redis

    bus = redis_bus(redis_server.url)
    rec = Recorder()
    consumer = bus.consumer("c1", rec)
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(bus.config.stream)  # as a server restarted without persistence would have it
    with pytest.raises(BackendError, match="NOGROUP"):
        consumer.poll_once()
    bus.publish([ev(5)])
    poll_until([consumer], lambda: rec.ids == ["e5"])
    bus.close()
