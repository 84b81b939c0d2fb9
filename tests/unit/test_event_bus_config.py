"""The event bus seam's configuration: one discriminated config per backend, chosen by settings only."""

from __future__ import annotations

import pytest

from streamrec.errors import ConfigError
from streamrec.events.bus import InProcessEventBus, open_event_bus
from streamrec.events.bus.redis_streams import RedisEventBus, redact
from streamrec.settings import InProcessEventBusConfig, RedisEventBusConfig, load_settings


def test_the_default_is_the_in_process_bus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert isinstance(settings.event_bus, InProcessEventBusConfig)
    assert isinstance(open_event_bus(settings.event_bus), InProcessEventBus)
    partial = load_settings(event_bus={"maxlen": 7}).event_bus  # a table without `type`: the default backend
    assert isinstance(partial, InProcessEventBusConfig) and partial.maxlen == 7


def test_redis_is_chosen_by_type_from_the_environment(tmp_path, monkeypatch, redis_url):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREAMREC_EVENT_BUS__TYPE", "redis")
    monkeypatch.setenv("STREAMREC_EVENT_BUS__URL", redis_url)
    monkeypatch.setenv("STREAMREC_EVENT_BUS__MAXLEN", "500")
    config = load_settings().event_bus
    assert isinstance(config, RedisEventBusConfig)
    assert (config.url, config.maxlen, config.stream, config.dead_stream) == (
        redis_url, 500, "streamrec:events", "streamrec:events:dead")
    bus = open_event_bus(config)
    assert isinstance(bus, RedisEventBus)
    bus.close()


@pytest.mark.parametrize("bad, where", [
    ({"type": "kafka"}, "event_bus"),
    ({"type": "inprocess", "url": "redis://x"}, "event_bus.inprocess.url"),  # a Redis key on the in-process bus
    ({"type": "redis", "stream_name": "x"}, "event_bus.redis.stream_name"),
    ({"type": "redis", "maxlen": 0}, "event_bus.redis.maxlen"),
    ({"max_deliveries": 0}, "event_bus.inprocess.max_deliveries"),
])
def test_unknown_keys_and_bad_values_are_rejected_by_name(tmp_path, monkeypatch, bad, where):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_settings(event_bus=bad)


def test_a_dead_letter_stream_of_its_own_and_a_redacted_url():
    assert RedisEventBusConfig(stream="s", dead_letter_stream="poison").dead_stream == "poison"
    assert redact("redis://user:pw@host:6380/1") == "redis://user:***@host:6380/1"
    assert redact("redis://host/0") == "redis://host/0"
