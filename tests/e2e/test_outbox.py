"""The publisher's outbox against a real redis-server stopped and started again: while the bus is down, accepted
batches are held on disk and published, oldest first and each once, when it is back — also by another process
sharing the folder, and after the holding process died. A full bus is still refused (backpressure is the client's to
honour), and a full disk refuses the batch whole."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from streamrec.errors import BackendError, Unavailable
from streamrec.events.bus import open_event_bus
from streamrec.events.bus.outbox import Outbox
from streamrec.settings import RedisEventBusConfig
from tests.helpers import tmpfs, wait_until

T0 = datetime(2026, 3, 1, 12, 0)


def ev(i: int) -> dict[str, Any]:
    return {"event_id": f"e{i}", "user_id": f"u{i % 3}", "item_id": f"t{i}", "type": "play",
            "ts": T0 + timedelta(seconds=i)}


def bus_on(url: str, **settings: Any):
    return open_event_bus(RedisEventBusConfig(url=url, stream=f"test:{uuid.uuid4().hex}", socket_timeout_s=1,
                                              **settings))


def on_stream(bus) -> list[str]:
    """Event ids of every entry on the bus's stream, in stream order."""
    from streamrec.events.bus import decode_event

    return [decode_event(f[b"e"])["event_id"] for _, f in bus.client.xrange(bus.config.stream)]


def test_batches_accepted_while_redis_is_down_are_held_on_disk_and_published_once_in_order_when_it_is_back(
        own_redis, tmp_path):
    bus = bus_on(own_redis.url)
    outbox = Outbox(bus, tmp_path / "outbox", maxlen=10_000, retry_s=0.05)
    assert outbox.publish([ev(0)]) is True and outbox.problem() is None
    own_redis.stop()
    with pytest.raises(Unavailable):  # what the outbox tells apart from "full"
        bus.publish([ev(99)])
    assert outbox.publish([ev(1), ev(2)]) is False
    assert outbox.publish([ev(3)]) is False  # straight to disk: no wait on the dead server per request
    assert outbox.held() == 2 and "event bus unavailable: 2 batch(es)" in outbox.problem()
    own_redis.start()
    wait_until(lambda: outbox.problem() is None, 20, what="the held batches published")
    assert on_stream(bus) == ["e0", "e1", "e2", "e3"]
    assert outbox.publish([ev(4)]) is True and on_stream(bus)[-1] == "e4"
    outbox.close()
    bus.close()


def test_batches_held_by_a_process_that_stopped_are_published_by_the_next_and_a_damaged_file_is_set_aside(
        own_redis, tmp_path):
    folder = tmp_path / "outbox"
    bus = bus_on(own_redis.url)
    own_redis.stop()
    first = Outbox(bus, folder, maxlen=10_000, retry_s=0.05)
    assert first.publish([ev(1)]) is False and first.publish([ev(2)]) is False
    first.close()  # the process goes away with its batches on disk
    (folder / f"{time.time_ns():020d}-1-000000.jsonl").write_bytes(b'{"event_id": "e-broken"\n')  # half a line
    own_redis.start()
    published: list[int] = []
    second = Outbox(bus, folder, maxlen=10_000, retry_s=0.05)  # starts publishing what it finds
    second.on_published = published.append
    wait_until(lambda: second.held() == 0, 20, what="the leftovers published")
    assert on_stream(bus) == ["e1", "e2"] and published == [1, 1]
    assert [p.name.endswith(".jsonl.bad") for p in folder.iterdir() if not p.name.startswith(".")] == [True]
    second.close()
    bus.close()


def test_processes_sharing_the_outbox_publish_each_held_batch_exactly_once(own_redis, tmp_path):
    folder = tmp_path / "outbox"
    bus = bus_on(own_redis.url)
    own_redis.stop()
    holder = Outbox(bus, folder, maxlen=10_000, retry_s=0.05)
    for b in range(60):
        assert holder.publish([ev(b * 5 + i) for i in range(5)]) is False
    own_redis.start()
    others = [Outbox(open_event_bus(bus.config), folder, maxlen=10_000, retry_s=0.01)
              for _ in range(3)]  # on their own connections, as other processes would be

    def drain(outbox: Outbox) -> None:
        while outbox.held():
            try:
                outbox.drain_once()
            except Unavailable:
                time.sleep(0.01)

    threads = [threading.Thread(target=drain, args=(o,)) for o in [holder, *others]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = on_stream(bus)
    assert len(ids) == 300 and set(ids) == {f"e{i}" for i in range(300)}
    for o in [holder, *others]:
        o.close()
        o.bus.close()


def test_a_full_bus_is_refused_not_held(redis_server, tmp_path):
    bus = bus_on(redis_server.url, maxlen=10, publish_timeout_s=0)
    bus.consumer("c1", lambda events: None)  # a group that never consumes: the bus fills up
    outbox = Outbox(bus, tmp_path / "outbox", maxlen=10)
    assert outbox.publish([ev(i) for i in range(10)]) is True
    with pytest.raises(BackendError, match="is full") as info:
        outbox.publish([ev(10)])
    assert not isinstance(info.value, Unavailable) and outbox.held() == 0
    with pytest.raises(BackendError, match="larger than the bus bound"):
        outbox.publish([ev(i) for i in range(11)])
    bus.close()


def test_holding_on_a_full_disk_refuses_the_batch_whole_and_leaves_no_partial_file(own_redis, tmp_path):
    folder = tmp_path / "disk"
    bus = bus_on(own_redis.url)
    own_redis.stop()
    with tmpfs(folder, 1) as mounted:
        outbox = Outbox(bus, folder / "outbox", maxlen=10_000)
        big = [dict(ev(i), item_id="t" * 100) for i in range(5000)]  # ~0.8 MB as JSON lines
        if mounted:  # fill the tmpfs but for 64 KiB
            stat = os.statvfs(folder)
            (folder / "filler").write_bytes(b"\0" * max(stat.f_bavail * stat.f_frsize - 64 * 1024, 0))
            with pytest.raises(OSError, match="No space left"):
                outbox.publish(big)
        else:  # where this process may not mount: the same fault through a file-size limit
            import resource
            import signal

            old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, old_limit[1]))
            try:
                with pytest.raises(OSError):
                    outbox.publish(big)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
                signal.signal(signal.SIGXFSZ, old_handler)
        assert outbox.held() == 0 and list((folder / "outbox").iterdir()) == []
        outbox.close()
    bus.close()
