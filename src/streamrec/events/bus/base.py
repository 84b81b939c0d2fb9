"""The event bus contract: the EventBus and Consumer protocols, the payload codec, dead letters, and the delivery rules
every backend shares (a batch to the handler, a failing entry isolated, retried, then dead-lettered with its reason).

Delivery is at least once: an entry is acknowledged only after the handler returned, so a consumer that dies
mid-batch leaves its entries pending, and another consumer of the group takes them over once they have been idle
for `claim_idle_ms`. Handlers must therefore be idempotent (dedup by event_id); the bus never loses an entry that a
consumer group has not acknowledged (publishers wait instead: backpressure).
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol

from streamrec.errors import BackendError, ValidationError
from streamrec.logs import get_logger

log = get_logger(__name__)

Handler = Callable[[Sequence[Mapping[str, Any]]], None]
DeadReason = Literal["handler_failed", "max_deliveries", "undecodable", "trimmed"]


@dataclass
class PollStats:
    """What one `Consumer.poll_once` did."""

    delivered: int = 0  # entries handed to the handler (new and taken over)
    claimed: int = 0  # of those, taken over after `claim_idle_ms` without an acknowledgement (a retry or a dead peer)
    acked: int = 0  # handled and acknowledged
    retrying: int = 0  # the handler failed; left pending for another delivery after `claim_idle_ms`
    dead: int = 0  # moved to the dead letters (acknowledged there)


@dataclass(frozen=True)
class DeadLetter:
    """A poison entry kept with the reason it could not be handled."""

    entry_id: str  # its id on the bus
    reason: DeadReason
    detail: str  # the handler's last error, the decoding error, ...
    group: str
    consumer: str  # the consumer that gave up on it
    deliveries: int
    payload: str  # the entry as published (JSON); "" when the bus no longer held it

    @property
    def event(self) -> dict[str, Any] | None:
        """The event, or None when the payload cannot be decoded."""
        try:
            return decode_event(self.payload)
        except ValueError:
            return None


class Consumer(Protocol):
    """One named member of a consumer group: each entry goes to one member of each group."""

    group: str
    name: str

    def poll_once(self, block_ms: int = 0) -> PollStats:
        """Take over entries idle past `claim_idle_ms`, read new ones (waiting up to `block_ms` when there are none),
        hand them to the handler in order and acknowledge them once it returns."""
        ...

    def run(self, stop: threading.Event, block_ms: int = 500) -> None:
        """Poll until `stop` is set; a backend failure (server down) is logged and retried with a growing pause."""
        ...


class EventBus(Protocol):
    def publish(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Append validated events (canonical columns) to the bus, then call the subscribers; returns how many.

        Raises:
            BackendError: a consumer group still holds `maxlen` unacknowledged entries after `publish_timeout_s`
                (consumers lag: backpressure), the batch is larger than `maxlen`, or the backend is down.
        """
        ...

    def subscribe(self, handler: Handler) -> None:
        """Call `handler` in the publishing thread with every batch this bus object publishes from now on (after it
        is on the bus), so the publisher's process sees an accepted event at once. A failing subscriber is logged."""
        ...

    def consumer(self, name: str, handler: Handler, *, group: str | None = None, count: int = 100) -> Consumer:
        """A member `name` of consumer `group` (default: the config's), created if new (it then starts at the
        oldest entry the bus still holds). `handler` gets up to `count` events per call."""
        ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest `limit` dead letters."""
        ...

    def backlog(self, group: str | None = None) -> int:
        """Entries consumer `group` (default: the config's) has not acknowledged: pending (delivered, not yet
        acknowledged) plus not yet delivered; 0 for a group that does not exist yet."""
        ...

    def close(self) -> None: ...


# --- payloads ---------------------------------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, datetime):  # before date: a datetime is a date
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise TypeError(f"a {type(value).__name__} cannot be put on the event bus")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$dt" in obj:
            return datetime.fromisoformat(obj["$dt"])
        if "$date" in obj:
            return date.fromisoformat(obj["$date"])
    return obj


def encode_event(event: Mapping[str, Any]) -> str:
    """JSON text of one event; datetimes and dates round-trip (naive stays naive).

    Raises:
        TypeError: a value that is not JSON, a date or a datetime.
    """
    return json.dumps(event, default=_default, separators=(",", ":"))


def decode_event(payload: bytes | str) -> dict[str, Any]:
    """The event that `encode_event` wrote.

    Raises:
        ValueError: not UTF-8, not JSON, or not a JSON object.
    """
    try:
        obj = json.loads(payload, object_hook=_hook)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON event: {exc}") from exc
    except (TypeError, ValueError) as exc:  # a bad "$dt" value
        raise ValueError(f"bad value in the event: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"not a JSON object but a {type(obj).__name__}")
    return obj


def encode_batch(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """Payloads of a batch.

    Raises:
        ValidationError: an event holds a value the bus cannot carry (names its position and field).
    """
    out = []
    for i, event in enumerate(events):
        try:
            out.append(encode_event(event))
        except (TypeError, ValueError) as exc:
            field = next((k for k, v in event.items() if _unencodable(v)), "?")
            raise ValidationError("event bus", i, field, str(exc)) from exc
    return out


def _unencodable(value: Any) -> bool:
    try:
        encode_event({"v": value})
    except (TypeError, ValueError):
        return True
    return False


def check_batch_size(n: int, maxlen: int) -> None:
    if n > maxlen:
        raise BackendError(f"event bus: a batch of {n} events is larger than the bus bound (maxlen {maxlen}); "
                           "publish smaller batches or raise event_bus.maxlen")


def full_error(where: str, group: str, pending: int, lag: int, maxlen: int, waited_s: float) -> BackendError:
    return BackendError(
        f"event bus {where} is full: consumer group '{group}' has {pending} unacknowledged and {lag} undelivered "
        f"entries (bound: maxlen {maxlen}); waited {waited_s:.2f} s (event_bus.publish_timeout_s) for its consumers "
        "to catch up")


# --- the consumer loop shared by the backends -------------------------------------------------------------------------
@dataclass
class Entry:
    """One entry handed to a consumer: the event, or why it cannot be decoded."""

    id: str
    deliveries: int  # this delivery included
    event: dict[str, Any] | None
    payload: str = ""  # as stored (kept in a dead letter)
    error: str = ""  # the decoding error when `event` is None


def entry_from_payload(entry_id: str, deliveries: int, payload: bytes | str) -> Entry:
    """The entry with its event decoded, or with the reason it cannot be."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    try:
        return Entry(entry_id, deliveries, decode_event(payload), text)
    except ValueError as exc:
        return Entry(entry_id, deliveries, None, text, str(exc))


class BaseConsumer(ABC):
    """Delivery rules over four backend primitives (`_claim`, `_read`, `_ack`, `_bury`).

    A batch goes to the handler at once; if it raises, each entry is retried alone so one poison entry does not
    hold back the others. An entry whose handler failed is left pending and delivered again after `claim_idle_ms`;
    on its `max_deliveries`-th failure it is dead-lettered. An entry taken over after more than `max_deliveries`
    deliveries (its consumers kept dying) and an undecodable one are dead-lettered without calling the handler.
    A BaseException from the handler (KeyboardInterrupt, SystemExit) leaves the batch pending and propagates.
    """

    def __init__(self, group: str, name: str, handler: Handler, count: int, claim_idle_ms: int, max_deliveries: int):
        if count < 1:
            raise ValueError(f"count must be ≥ 1, got {count}")
        self.group, self.name, self.handler, self.count = group, name, handler, count
        self.claim_idle_ms, self.max_deliveries = claim_idle_ms, max_deliveries
        self._next_claim = 0.0  # monotonic time of the next look for idle entries

    # backend primitives
    @abstractmethod
    def _claim(self, count: int) -> tuple[list[Entry], list[str], bool]:
        """Up to `count` entries pending longer than `claim_idle_ms` in this group, now this consumer's (their
        delivery counted), the ids of pending entries that the bus no longer holds (trimmed), and whether the scan
        of the pending entries stopped before their end (look again at the next poll)."""

    @abstractmethod
    def _read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to `count` entries never delivered to this group, waiting up to `block_ms` (0: no wait) for one."""

    @abstractmethod
    def _ack(self, ids: list[str]) -> None: ...

    @abstractmethod
    def _bury(self, letters: list[DeadLetter]) -> None:
        """Add dead letters and acknowledge their entries, together."""

    # the loop
    def poll_once(self, block_ms: int = 0) -> PollStats:
        stats = PollStats()
        now = time.monotonic()
        if now >= self._next_claim:
            claimed, lost, more = self._claim(self.count)
            # more may be idle: look again at the next poll; otherwise after half the idle time
            self._next_claim = now if more or len(claimed) >= self.count else now + self.claim_idle_ms / 2000
            if lost:
                self._bury([DeadLetter(i, "trimmed", "the entry was trimmed from the stream before it was "
                                                     "acknowledged", self.group, self.name, 0, "") for i in lost])
                stats.dead += len(lost)
            if claimed:
                stats.claimed += len(claimed)
                self._handle(claimed, stats)
                return stats
        self._handle(self._read(self.count, block_ms), stats)
        return stats

    def run(self, stop: threading.Event, block_ms: int = 500) -> None:
        pause = 0.05
        while not stop.is_set():
            try:
                self.poll_once(block_ms)
            except BackendError as exc:
                log.warning("bus.consumer_backend_error", group=self.group, consumer=self.name, error=str(exc)[:300],
                            retry_in_s=pause)
                stop.wait(pause)
                pause = min(pause * 2, 5.0)
            else:
                pause = 0.05

    def _letter(self, entry: Entry, reason: DeadReason, detail: str) -> DeadLetter:
        return DeadLetter(entry.id, reason, detail, self.group, self.name, entry.deliveries, entry.payload)

    def _handle(self, entries: list[Entry], stats: PollStats) -> None:
        letters: list[DeadLetter] = []
        good: list[Entry] = []
        for e in entries:
            if e.event is None:
                letters.append(self._letter(e, "undecodable", e.error))
            elif e.deliveries > self.max_deliveries:
                letters.append(self._letter(e, "max_deliveries", f"delivered {e.deliveries - 1} times without an "
                                            "acknowledgement (its consumers died or stalled handling it)"))
            else:
                good.append(e)
        if good:
            stats.delivered += len(good)
            ok, failed = self._call(good)
            if ok:
                self._ack([e.id for e in ok])
                stats.acked += len(ok)
            for e, problem in failed:
                error = f"{type(problem).__name__}: {str(problem)[:500]}"
                log.warning("bus.handler_failed", group=self.group, consumer=self.name, entry=e.id,
                            delivery=e.deliveries, max_deliveries=self.max_deliveries, error=error)
                if e.deliveries >= self.max_deliveries:
                    letters.append(self._letter(e, "handler_failed", f"the handler failed on each of {e.deliveries} "
                                                f"deliveries; last: {error}"))
                else:
                    stats.retrying += 1
        if letters:
            self._bury(letters)
            stats.dead += len(letters)
            for d in letters:
                log.error("bus.dead_letter", group=self.group, consumer=self.name, entry=d.entry_id, reason=d.reason,
                          detail=d.detail[:300])

    def _call(self, entries: list[Entry]) -> tuple[list[Entry], list[tuple[Entry, Exception]]]:
        """The handler on the batch; if it fails, on each entry alone. Returns (handled, failed with the error)."""
        try:
            self.handler([e.event for e in entries if e.event is not None])
            return entries, []
        except Exception as exc:
            if len(entries) == 1:
                return [], [(entries[0], exc)]
        ok: list[Entry] = []
        failed: list[tuple[Entry, Exception]] = []
        for e in entries:
            try:
                self.handler([e.event] if e.event is not None else [])
                ok.append(e)
            except Exception as exc:
                failed.append((e, exc))
        return ok, failed


def call_subscribers(handlers: Sequence[Handler], events: Sequence[Mapping[str, Any]]) -> None:
    """Each subscriber in turn; one subscriber's bug must not lose the batch for the others, nor fail the publish."""
    for handler in handlers:
        try:
            handler(events)
        except Exception as exc:
            log.error("bus.handler_failed", handler=getattr(handler, "__name__", repr(handler)),
                      error=type(exc).__name__, detail=str(exc)[:200])
