"""The publisher's outbox: while the event bus's server cannot be reached, an accepted batch is written to a local file
(whole or absent: written aside, fsynced, renamed) instead of failing the request, and a background thread publishes
the held batches, oldest first, once the bus answers again.

Delivery stays at least once: a crash between a batch's publish and its file's removal publishes it again on the next
start, and consumers deduplicate by event_id. Several processes may share the folder (`serve --workers N`): a batch
is published by whichever process holds its file's lock, so each file goes out once, and the files of a process that
died are published by the others (or by the next one to start)."""

from __future__ import annotations

import fcntl
import itertools
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streamrec.errors import BackendError, Unavailable
from streamrec.events.bus.base import EventBus, check_batch_size, decode_event, encode_batch
from streamrec.logs import get_logger

log = get_logger(__name__)

SUFFIX = ".jsonl"  # one event per line, as encode_event writes it


class Outbox:
    """Publishes to `bus`, holding batches under `folder` while the bus is unreachable.

    Args:
        bus: the event bus (its publish raising Unavailable means "down", any other BackendError is the caller's).
        folder: where held batches are kept (created).
        maxlen: the bus's bound: a larger batch is refused now, not held for ever.
        retry_s: pause between attempts to publish the held batches while the bus stays down (doubling up to 10 x).
    """

    def __init__(self, bus: EventBus, folder: Path | str, maxlen: int, retry_s: float = 0.5):
        self.bus, self.folder, self.maxlen, self.retry_s = bus, Path(folder), maxlen, retry_s
        self.folder.mkdir(parents=True, exist_ok=True)
        self.on_published: Callable[[int], None] = lambda n: None  # events published from the outbox (metrics)
        self._down: str | None = None  # why the last publish found the bus unreachable, until a drain empties us
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.held():  # left by a process that stopped while the bus was down
            self._start()

    # --- the request path ------------------------------------------------------------------------------------------
    def publish(self, events: Sequence[Mapping[str, Any]]) -> bool:
        """Put `events` on the bus (True), or hold them here while it is unreachable (False).

        Raises:
            BackendError: the bus refused the batch for another reason (full: backpressure; larger than its bound).
            OSError: the bus is down and the batch could not be written here either (nothing was accepted).
        """
        if not events:
            return True
        check_batch_size(len(events), self.maxlen)
        if self._down is None:  # while the bus is down, requests do not wait on it: they go to the outbox
            try:
                self.bus.publish(events)
                return True
            except Unavailable as exc:
                self._went_down(str(exc))
        self._hold(events)
        return False

    def _went_down(self, why: str) -> None:
        with self._lock:
            if self._down is None:
                log.warning("outbox.bus_down", error=why[:300], folder=str(self.folder))
            self._down = why[:300]
        self._start()

    def _hold(self, events: Sequence[Mapping[str, Any]]) -> None:
        text = "".join(p + "\n" for p in encode_batch(events)).encode()
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}{SUFFIX}"
        tmp = self.folder / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())  # the only copy until the bus is back
            os.replace(tmp, self.folder / name)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        _sync_folder(self.folder)

    # --- health ----------------------------------------------------------------------------------------------------
    def held(self) -> int:
        """Batches held here now (by any process sharing the folder)."""
        return sum(1 for p in self.folder.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))

    def problem(self) -> str | None:
        """Why events are being held, or None."""
        held = self.held()
        if self._down is None and not held:
            return None
        return (f"event bus unavailable: {held} batch(es) of accepted events held in {self.folder}, published when it "
                f"is back" + (f" ({self._down})" if self._down else ""))

    # --- draining --------------------------------------------------------------------------------------------------
    def drain_once(self) -> int:
        """Publish every held batch, oldest first; returns how many this call published.

        Raises:
            Unavailable: the bus is still down (the batch stays held).
            BackendError: the bus refused for another reason (full: it is tried again later).
        """
        sent = 0
        for path in sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith(".")):
            sent += self._send(path)
        with self._lock:
            if self._down is not None and not self.held():
                log.info("outbox.bus_back", folder=str(self.folder))
                self._down = None
        return sent

    def _send(self, path: Path) -> int:
        try:
            f = open(path, "rb")
        except FileNotFoundError:  # published by another process meanwhile
            return 0
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process is publishing it
                return 0
            if os.fstat(f.fileno()).st_nlink == 0:  # it published and removed it before we got the lock
                return 0
            try:
                events = [decode_event(line) for line in f.read().splitlines() if line.strip()]
            except ValueError as exc:  # not written by us whole (a disk fault): kept aside with the reason, not lost
                bad = path.with_name(path.name + ".bad")
                os.replace(path, bad)
                log.error("outbox.unreadable", file=str(bad), error=str(exc)[:300])
                return 0
            self.bus.publish(events)
            path.unlink()  # still under the lock: no other process publishes it again
        _sync_folder(self.folder)
        self.on_published(len(events))
        return len(events)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        pause = self.retry_s
        while not self._stop.wait(pause):
            try:
                if self.drain_once():
                    log.info("outbox.published", left=self.held())
                pause = self.retry_s
            except Unavailable:
                pause = min(pause * 2, self.retry_s * 10)
            except BackendError as exc:  # full (backpressure): the consumers catch up first
                log.warning("outbox.refused", error=str(exc)[:300])
                pause = self.retry_s
            except Exception as exc:  # never let the thread die with batches held
                log.error("outbox.failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
                pause = self.retry_s * 10

    def close(self) -> None:
        """Stop the background thread (held batches stay on disk for the next start)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(10)


def _sync_folder(folder: Path) -> None:
    """Make a rename or removal in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
