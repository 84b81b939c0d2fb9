"""The online store seam: what serving reads per request, kept fresh by the worker. Every backend passes
tests/contract/test_online_store.py.

Features are stored as float32 vectors per entity under one named schema (the feature names in order), each with
the time it was computed as of, so a reader can tell stale values from fresh ones. Histories are each user's
latest engagement events, newest last. Ranked lists are the refresh path's output (DESIGN.md "The serving path"):
a user's best titles for one model and request context, kept until they expire, so the request path only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class HistoryEntry:
    """One engagement of a user with a title, as serving needs it."""

    item_id: str
    ts: datetime
    type: str  # play | progress | complete | rating | add_to_list
    fraction: float | None = None


@dataclass(frozen=True)
class LiveEvent:
    """One engagement as the realtime worker records it: its event_id (recording is idempotent by it), user, entry."""

    event_id: str
    user_id: str
    entry: HistoryEntry


@dataclass(frozen=True)
class FeatureRows:
    """Feature vectors of some keys: `values` (keys × features, NaN where unknown), `as_of` (epoch seconds per key,
    NaN when the key has no vector), `names` the schema's feature names."""

    names: tuple[str, ...]
    values: np.ndarray
    as_of: np.ndarray

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.as_of)


@dataclass(frozen=True)
class RankedPool:
    """One user's ranked titles, best first, for one model and context: scores and provenance per title, the
    fingerprint of the history they were ranked from (`stamp`), the request time they were ranked for (epoch
    seconds), the fallback that produced them (None: the ranker), and `picks`: positions into `items` of the model's
    default diversity order of its best titles (empty: not computed), which a request without exclusions reads as is."""

    items: tuple[str, ...]
    scores: tuple[float, ...]
    sources: tuple[str, ...]
    stamp: str
    as_of: float
    fallback: str | None = None
    picks: tuple[int, ...] = ()


class OnlineStore(Protocol):
    def put_features(self, entity: str, names: Sequence[str], keys: Sequence[str], values: np.ndarray,
                     as_of: datetime) -> int:
        """Write one vector per key (rows of `values`, columns `names`) computed as of `as_of`; a new schema of
        names replaces the entity's old one (and its vectors). Returns the number written."""
        ...

    def get_features(self, entity: str, keys: Sequence[str]) -> FeatureRows:
        """The vectors of `keys` in order (NaN rows for unknown keys)."""
        ...

    def add_history(self, user: str, entries: Sequence[HistoryEntry]) -> None:
        """Append a user's engagements (kept newest last, trimmed to the store's history length); an entry equal to
        one kept is not added again, so filling histories anew (a restarted server) changes nothing."""
        ...

    def history(self, user: str) -> list[HistoryEntry]:
        """The user's kept engagements, oldest first (empty for an unknown user)."""
        ...

    def record(self, events: Sequence[LiveEvent]) -> int:
        """Apply live engagements once each, by event_id, each atomically: append to the user's history and count
        the title on the event's day (UTC) for trending. An event_id recorded before changes nothing (a replay, an
        at-least-once bus). Returns how many were new."""
        ...

    def title_counts(self, days: Sequence[date]) -> Mapping[str, float]:
        """Recorded engagements per title over `days` (titles without any are left out)."""
        ...

    def hide(self, user: str, item_id: str) -> None:
        """The user asked never to see the title again."""
        ...

    def hidden(self, user: str) -> frozenset[str]:
        ...

    def put_ranked(self, user: str, key: str, pool: RankedPool, ttl_s: float) -> None:
        """Keep the user's ranked pool under `key` (model and context) for `ttl_s` seconds, replacing the old one."""
        ...

    def get_ranked(self, user: str, key: str) -> RankedPool | None:
        """The pool kept under `key`, or None (never stored, expired, or evicted)."""
        ...

    def close(self) -> None: ...
