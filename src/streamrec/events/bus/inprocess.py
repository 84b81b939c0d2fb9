"""The in-process event bus (the embedded default): a bounded queue with consumer groups, in one process's memory.

It keeps the Redis Streams contract (groups, acknowledgements, take-over of idle entries, dead letters, bounded
length with backpressure) so a worker runs unchanged on either; subscribers are still called synchronously on
publish, so the serving API's next request sees an accepted event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamrec.events.bus.base import (
    BaseConsumer,
    DeadLetter,
    Entry,
    Handler,
    call_subscribers,
    check_batch_size,
    encode_batch,
    entry_from_payload,
    full_error,
)

if TYPE_CHECKING:
    from streamrec.settings import InProcessEventBusConfig


@dataclass
class _Pending:
    consumer: str
    since: float  # monotonic time of the last delivery
    deliveries: int


@dataclass
class _Group:
    next_seq: int  # the first entry not yet delivered to the group
    pending: dict[int, _Pending] = field(default_factory=dict)  # delivered, not acknowledged


class InProcessEventBus:
    """Entries live in a dict by sequence number (the oldest are trimmed past `maxlen`); thread-safe.

    Args:
        config: bound, backpressure and delivery settings (default: `InProcessEventBusConfig()`).
    """

    def __init__(self, config: InProcessEventBusConfig | None = None) -> None:
        if config is None:
            from streamrec.settings import InProcessEventBusConfig

            config = InProcessEventBusConfig()
        self.config = config
        self._cond = threading.Condition()
        self._entries: dict[int, str] = {}  # seq → payload (JSON, as on Redis); keys first_seq .. next_seq - 1
        self._first_seq = 1
        self._next_seq = 1
        self._groups: dict[str, _Group] = {}
        self._dead: list[DeadLetter] = []
        self._handlers: list[Handler] = []
        self.published = 0

    # --- producers -------------------------------------------------------------------------------------------------
    def publish(self, events: Sequence[Mapping[str, Any]]) -> int:
        n = len(events)
        if not n:
            return 0
        maxlen = self.config.maxlen
        check_batch_size(n, maxlen)
        payloads = encode_batch(events)  # as Redis stores them: consumers see the same values on either backend
        start = time.monotonic()
        deadline = start + self.config.publish_timeout_s
        with self._cond:
            while (full := self._full(n)) is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise full_error("(in-process)", *full, maxlen, time.monotonic() - start)
                self._cond.wait(remaining)
            for payload in payloads:
                self._entries[self._next_seq] = payload
                self._next_seq += 1
            while self._next_seq - self._first_seq > maxlen:
                del self._entries[self._first_seq]
                self._first_seq += 1
            self.published += n
            handlers = list(self._handlers)
            self._cond.notify_all()
        call_subscribers(handlers, events)
        return n

    def _full(self, n: int) -> tuple[str, int, int] | None:
        """The first group that `n` more entries would push past the bound: (name, pending, undelivered)."""
        for name, g in self._groups.items():
            lag = self._next_seq - max(g.next_seq, self._first_seq)
            if len(g.pending) + lag + n > self.config.maxlen:
                return name, len(g.pending), lag
        return None

    def subscribe(self, handler: Handler) -> None:
        with self._cond:
            self._handlers.append(handler)

    # --- consumers -------------------------------------------------------------------------------------------------
    def consumer(self, name: str, handler: Handler, *, group: str | None = None,
                 count: int = 100) -> InProcessConsumer:
        group = group or self.config.group
        with self._cond:
            self._groups.setdefault(group, _Group(next_seq=self._first_seq))
        return InProcessConsumer(self, group, name, handler, count)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._cond:
            return self._dead[:limit]

    def backlog(self, group: str | None = None) -> int:
        with self._cond:
            g = self._groups.get(group or self.config.group)
            if g is None:
                return 0
            return len(g.pending) + self._next_seq - max(g.next_seq, self._first_seq)

    def close(self) -> None:
        with self._cond:
            self._handlers.clear()
            self._cond.notify_all()


class InProcessConsumer(BaseConsumer):
    """A member of a consumer group of an InProcessEventBus."""

    def __init__(self, bus: InProcessEventBus, group: str, name: str, handler: Handler, count: int):
        super().__init__(group, name, handler, count, bus.config.claim_idle_ms, bus.config.max_deliveries)
        self._bus = bus

    def _claim(self, count: int) -> tuple[list[Entry], list[str], bool]:
        bus, claimed, lost = self._bus, [], []
        with bus._cond:
            g = bus._groups[self.group]
            now = time.monotonic()
            idle_s = self.claim_idle_ms / 1000
            for seq in sorted(g.pending):
                p = g.pending[seq]
                if now - p.since < idle_s:
                    continue
                if seq < bus._first_seq:
                    del g.pending[seq]
                    lost.append(str(seq))
                    continue
                p.consumer, p.since, p.deliveries = self.name, now, p.deliveries + 1
                claimed.append(entry_from_payload(str(seq), p.deliveries, bus._entries[seq]))
                if len(claimed) == count:
                    break
            if lost:
                bus._cond.notify_all()
        return claimed, lost, False

    def _read(self, count: int, block_ms: int) -> list[Entry]:
        bus = self._bus
        with bus._cond:
            g = bus._groups[self.group]
            deadline = time.monotonic() + block_ms / 1000
            while max(g.next_seq, bus._first_seq) >= bus._next_seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                bus._cond.wait(remaining)
            start = max(g.next_seq, bus._first_seq)
            stop = min(start + count, bus._next_seq)
            now = time.monotonic()
            out = []
            for seq in range(start, stop):
                g.pending[seq] = _Pending(self.name, now, 1)
                out.append(entry_from_payload(str(seq), 1, bus._entries[seq]))
            g.next_seq = stop
        return out

    def _ack(self, ids: list[str]) -> None:
        bus = self._bus
        with bus._cond:
            pending = bus._groups[self.group].pending
            for i in ids:
                pending.pop(int(i), None)
            bus._cond.notify_all()

    def _bury(self, letters: list[DeadLetter]) -> None:
        bus = self._bus
        with bus._cond:
            bus._dead.extend(letters)
        self._ack([d.entry_id for d in letters])
