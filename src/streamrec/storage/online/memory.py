"""The embedded online store: Python dicts and numpy matrices in the serving process (no server needed).

Feature vectors of an entity live in one growing float32 matrix with a key → row index, so reading the 500
titles of one request is one dict lookup per key and one fancy index, not 500 small objects.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import numpy as np

from streamrec.errors import DataError
from streamrec.storage.online.base import FeatureRows, HistoryEntry, LiveEvent, RankedPool


class _Table:
    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.index: dict[str, int] = {}
        self.values = np.zeros((0, len(names)), dtype=np.float32)
        self.as_of = np.zeros(0, dtype=np.float64)

    def put(self, keys: Sequence[str], values: np.ndarray, as_of: float) -> None:
        new = [k for k in dict.fromkeys(keys) if k not in self.index]
        if new:
            start = len(self.index)
            self.index.update((k, start + i) for i, k in enumerate(new))
            grow = len(self.index) - len(self.as_of)
            self.values = np.vstack([self.values, np.full((grow, len(self.names)), np.nan, np.float32)])
            self.as_of = np.concatenate([self.as_of, np.full(grow, np.nan)])
        rows = np.fromiter((self.index[k] for k in keys), dtype=np.int64, count=len(keys))
        self.values[rows] = values
        self.as_of[rows] = as_of


class MemoryOnlineStore:
    """Thread-safe in-process online store (see OnlineStore). Ranked pools are bounded: past `max_ranked` the least
    recently used are evicted (the request path then ranks that user again)."""

    def __init__(self, history_length: int = 200, max_ranked: int = 200_000, seen_ttl_s: float = 7 * 86_400):
        self.history_length, self.max_ranked, self.seen_ttl_s = history_length, max_ranked, seen_ttl_s
        self._seen: OrderedDict[str, float] = OrderedDict()  # event_id → when recorded (monotonic), oldest first
        self._days: dict[date, Counter[str]] = defaultdict(Counter)
        self._ranked: OrderedDict[tuple[str, str], tuple[RankedPool, float]] = OrderedDict()
        self._tables: dict[str, _Table] = {}
        self._history: dict[str, deque[HistoryEntry]] = defaultdict(lambda: deque(maxlen=self.history_length))
        self._hidden: dict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()

    def put_features(self, entity: str, names: Sequence[str], keys: Sequence[str], values: np.ndarray,
                     as_of: datetime) -> int:
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(keys), len(names)):
            raise DataError("online features", f"{values.shape} values for {len(keys)} keys × {len(names)} names")
        names = tuple(names)
        with self._lock:
            table = self._tables.get(entity)
            if table is None or table.names != names:
                table = self._tables[entity] = _Table(names)
            stamp = (as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of).timestamp()  # naive = UTC
            table.put(list(keys), values, stamp)
        return len(keys)

    def get_features(self, entity: str, keys: Sequence[str]) -> FeatureRows:
        table = self._tables.get(entity)
        if table is None:
            return FeatureRows((), np.full((len(keys), 0), np.nan, np.float32), np.full(len(keys), np.nan))
        index = table.index
        rows = np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        found = rows >= 0
        values = table.values[np.where(found, rows, 0)] if len(table.as_of) else \
            np.full((len(keys), len(table.names)), np.nan, np.float32)
        as_of = table.as_of[np.where(found, rows, 0)] if len(table.as_of) else np.full(len(keys), np.nan)
        values[~found] = np.nan
        as_of = np.where(found, as_of, np.nan)
        return FeatureRows(table.names, values, as_of)

    def add_history(self, user: str, entries: Sequence[HistoryEntry]) -> None:
        with self._lock:
            self._add_history(user, entries)

    def _add_history(self, user: str, entries: Sequence[HistoryEntry]) -> None:
        kept = self._history[user]
        for entry in sorted(entries, key=lambda e: e.ts):
            if kept and entry.ts <= kept[-1].ts:
                if entry in kept:  # the same engagement again (a restart filling histories anew): kept once
                    continue
                if entry.ts < kept[-1].ts:  # a late event: keep the order, drop the oldest past the limit
                    merged = sorted([*kept, entry], key=lambda e: e.ts)
                    kept.clear()
                    kept.extend(merged[-self.history_length:])
                    continue
            kept.append(entry)

    def history(self, user: str) -> list[HistoryEntry]:
        kept = self._history.get(user)
        return list(kept) if kept else []

    def record(self, events: Sequence[LiveEvent]) -> int:
        new = 0
        with self._lock:
            now = time.monotonic()
            while self._seen and next(iter(self._seen.values())) < now - self.seen_ttl_s:
                self._seen.popitem(last=False)
            for event in events:
                if event.event_id in self._seen:
                    continue
                self._seen[event.event_id] = now
                self._add_history(event.user_id, [event.entry])
                ts = event.entry.ts
                self._days[(ts if ts.tzinfo is None else ts.astimezone(UTC)).date()][event.entry.item_id] += 1
                new += 1
        return new

    def title_counts(self, days: Sequence[date]) -> Mapping[str, float]:
        out: Counter[str] = Counter()
        with self._lock:
            for day in set(days):
                out.update(self._days.get(day, {}))
        return {item: float(n) for item, n in out.items()}

    def hide(self, user: str, item_id: str) -> None:
        with self._lock:
            self._hidden[user].add(item_id)

    def hidden(self, user: str) -> frozenset[str]:
        return frozenset(self._hidden.get(user, ()))

    def put_ranked(self, user: str, key: str, pool: RankedPool, ttl_s: float) -> None:
        with self._lock:
            self._ranked[(user, key)] = (pool, time.monotonic() + ttl_s)
            self._ranked.move_to_end((user, key))
            while len(self._ranked) > self.max_ranked:
                self._ranked.popitem(last=False)

    def get_ranked(self, user: str, key: str) -> RankedPool | None:
        with self._lock:
            kept = self._ranked.get((user, key))
            if kept is None:
                return None
            if kept[1] <= time.monotonic():
                del self._ranked[(user, key)]
                return None
            self._ranked.move_to_end((user, key))
            return kept[0]

    def close(self) -> None:
        pass
