"""The event bus seam: accepted live events are published here and consumed by whoever keeps the online store fresh.

Backends: in-process (the embedded default) and Redis Streams (`event_bus.type = "redis"`, the redis extra). Both
give consumer groups, acknowledgements, take-over of entries whose consumer died, dead letters with a reason and a
bounded length with backpressure; both call subscribers synchronously on publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamrec.events.bus.base import (
    Consumer,
    DeadLetter,
    EventBus,
    Handler,
    PollStats,
    decode_event,
    encode_event,
)
from streamrec.events.bus.inprocess import InProcessEventBus

if TYPE_CHECKING:
    from streamrec.settings import EventBusConfig

__all__ = ["Consumer", "DeadLetter", "EventBus", "Handler", "InProcessEventBus", "PollStats", "decode_event",
           "encode_event", "open_event_bus"]


def open_event_bus(config: EventBusConfig) -> EventBus:
    """The bus `config` describes (the Redis driver is imported only when chosen).

    Raises:
        ConfigError: the Redis backend is chosen but the redis package is missing (the server is first reached by
            the first publish or consumer).
    """
    if config.type == "redis":
        from streamrec.events.bus.redis_streams import RedisEventBus

        return RedisEventBus(config)
    return InProcessEventBus(config)
