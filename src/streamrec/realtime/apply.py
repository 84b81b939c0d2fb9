"""What applying live events means for the online store: each engagement joins its user's history and counts for its
title's trending, once per event_id (the store's `record` is idempotent and atomic per event), so a replay or an
at-least-once bus changes nothing. Other event types (impressions) are counted and passed over."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from streamrec.storage.online.base import HistoryEntry, LiveEvent, OnlineStore

HISTORY_TYPES = ("play", "progress", "complete", "rating", "add_to_list")  # what the history keeps


def live_event(event: Mapping[str, Any]) -> LiveEvent | None:
    """The engagement an event (canonical columns) is, or None for a type the history does not keep."""
    if event.get("type") not in HISTORY_TYPES:
        return None
    ts = event["ts"]
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is not None:  # the store keeps naive UTC
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    fraction = event.get("fraction")
    return LiveEvent(str(event["event_id"]), str(event["user_id"]),
                     HistoryEntry(str(event["item_id"]), ts, event["type"],
                                  None if fraction is None else float(fraction)))


class EventApplier:
    """A bus handler: `applier(events)` records a batch in the online store; `counts` holds applied (new),
    duplicates (event_id seen before) and ignored (not an engagement), and `newest` the latest event time applied."""

    def __init__(self, store: OnlineStore):
        self.store = store
        self.counts: Counter[str] = Counter()
        self.newest: datetime | None = None
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[Mapping[str, Any]]) -> None:
        live = [e for e in map(live_event, events) if e is not None]
        new = self.store.record(live) if live else 0
        with self._lock:
            self.counts["applied"] += new
            self.counts["duplicates"] += len(live) - new
            self.counts["ignored"] += len(events) - len(live)
            if live:
                newest = max(e.entry.ts for e in live)
                self.newest = newest if self.newest is None else max(self.newest, newest)
