"""The event bus seam: accepted live events are published here and consumed by whoever keeps the online store fresh.

Only the in-process default exists so far (subscribers are called synchronously on publish, so an accepted event is
visible to the next request); Redis Streams with consumer groups arrives with the realtime worker (issue 6).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from streamrec.logs import get_logger

log = get_logger(__name__)

Handler = Callable[[Sequence[Mapping[str, Any]]], None]


class EventBus(Protocol):
    def publish(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Hand validated events (canonical columns) to the consumers; returns how many were published."""
        ...

    def subscribe(self, handler: Handler) -> None:
        """Call `handler` with every published batch from now on."""
        ...

    def close(self) -> None: ...


class InProcessEventBus:
    """Delivers each batch to every subscriber in the publishing thread, in subscription order.

    A failing subscriber is logged and does not stop the others (nor the publisher): the events stay published.
    """

    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()
        self.published = 0

    def publish(self, events: Sequence[Mapping[str, Any]]) -> int:
        with self._lock:
            handlers = list(self._handlers)
            self.published += len(events)
        for handler in handlers:
            try:
                handler(events)
            except Exception as exc:  # one consumer's bug must not lose the batch for the others
                log.error("bus.handler_failed", handler=getattr(handler, "__name__", repr(handler)),
                          error=type(exc).__name__, detail=str(exc)[:200])
        return len(events)

    def subscribe(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.append(handler)

    def close(self) -> None:
        with self._lock:
            self._handlers.clear()
