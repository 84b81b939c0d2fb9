"""`streamrec worker`: one member of the bus's consumer group, applying live events to the online store.

Several workers in one group share the stream (each entry goes to one of them); applying is idempotent by event_id,
so an entry delivered twice (its first consumer died before acknowledging) changes nothing. While the online store is
unreachable the batch stays unacknowledged, the worker pauses with a growing backoff, and the entries are delivered
again once it is back: a store outage loses no event and sends none to the dead letters. SIGTERM or SIGINT stops the
worker after the batch in hand is applied and acknowledged.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamrec.errors import BackendError
from streamrec.events.bus.base import EventBus
from streamrec.logs import get_logger
from streamrec.realtime.apply import EventApplier
from streamrec.realtime.landing import EventLanding
from streamrec.storage.online.base import OnlineStore

log = get_logger(__name__)


class StoreUnavailable(BaseException):
    """The online store failed mid-batch: the bus keeps the batch pending (a BaseException is not a poison entry)."""


class Worker:
    """Consumes `bus` as member `name` of its consumer group and records engagements in `store`."""

    def __init__(self, bus: EventBus, store: OnlineStore, name: str, count: int = 500,
                 landing: EventLanding | None = None):
        """`landing`: also write each batch for the event store (before it is acknowledged)."""
        self.bus, self.store, self.name, self.landing = bus, store, name, landing
        self.applier = EventApplier(store)
        self.consumer = bus.consumer(name, self._handle, count=count)
        self.polls = 0
        self.outages = 0

    def _handle(self, events: Sequence[Mapping[str, Any]]) -> None:
        try:
            self.applier(events)
            if self.landing is not None:
                self.landing(events)
        except BackendError as exc:
            raise StoreUnavailable(str(exc)) from exc
        except OSError as exc:  # the landing folder's disk: the batch stays pending, delivered again later
            raise StoreUnavailable(f"landing events failed: {exc}") from exc

    def run(self, stop: threading.Event, block_ms: int = 200,
            progress: Callable[[Worker], None] | None = None) -> dict[str, int]:
        """Poll until `stop` is set; `progress(self)` after every poll that delivered. Returns the counts."""
        pause = 0.05
        log.info("worker.started", worker=self.name, group=self.consumer.group)
        while not stop.is_set():
            try:
                stats = self.consumer.poll_once(block_ms)
            except (BackendError, StoreUnavailable) as exc:
                self.outages += 1
                log.warning("worker.backend_unavailable", worker=self.name, error=str(exc)[:300], retry_in_s=pause)
                stop.wait(pause)
                pause = min(pause * 2, 2.0)
                continue
            pause = 0.05
            self.polls += 1
            if stats.delivered and progress is not None:
                progress(self)
        log.info("worker.stopped", worker=self.name, **self.counts)
        return self.counts

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.applier.counts)

    def close(self) -> None:
        """Close the bus and the store connections (after `run` returned)."""
        self.bus.close()
        self.store.close()


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the worker then finishes its batch and stops)."""
    stop = threading.Event()

    def handler(signum, frame) -> None:
        log.info("worker.stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
