"""Online features: the same definitions as offline, updated one event at a time.

The state is exact, not an approximation: windowed aggregates keep each entity's events of the longest window
(older ones can no longer count for a query at or after the newest event), all-history aggregates keep running
totals, recency keeps the newest time. Applying an event twice changes nothing (dedup by event_id), so a replay or
an at-least-once event bus cannot double count. tests/unit/test_features_parity.py proves online = offline.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from streamrec.errors import DataError
from streamrec.features.definitions import BUILTIN, Definition, Feature, GenreMatch, Ratio
from streamrec.features.offline import KEY

Row = tuple[datetime, str, dict[str, float | None], str]  # (ts, type, numeric fields, title id)


class OnlineFeatures:
    """Incremental state for the event aggregates of `definitions` (attributes come from the catalog as they are).

    `apply(event)` folds in one event; `values(entity, key, at)` returns that entity's features as of `at`, which
    must not be before events already applied (online serves the present).
    """

    def __init__(self, definitions: Iterable[Definition] = BUILTIN,
                 genres: Mapping[str, Sequence[str]] | None = None):
        """`genres` (title id → genres, from the catalog) enables the user × title genre-match features."""
        definitions = list(definitions)
        self.features = [f for f in definitions if isinstance(f, Feature)]
        self.matches = [f for f in definitions if isinstance(f, GenreMatch)]
        self.ratios = [f for f in definitions if isinstance(f, Ratio)]
        self.genres = {k: list(dict.fromkeys(v)) for k, v in (genres or {}).items()}
        # rows are kept for windowed aggregates and genre matches; pruned past the longest window unless a genre
        # match looks at all history
        readers = [f for f in self.features if f.window_days is not None] + self.matches + self.ratios
        self.keep_rows = bool(readers)
        self.horizon = (timedelta(days=max(f.window_days for f in readers))  # type: ignore[type-var]
                        if readers and all(f.window_days is not None for f in readers) else None)
        self._rows: dict[tuple[str, str], list[Row]] = defaultdict(list)  # (entity, key) → rows sorted by ts
        self._totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])  # (feature, key) → n, sum
        self._newest: dict[tuple[str, str], datetime] = {}  # (feature, key) → newest matching ts
        self._seen: set[str] = set()
        self._latest: datetime | None = None

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Fold one event in (keys: event_id, user_id, item_id, type, ts and the numeric fields it has).

        Returns:
            False when the event_id was applied before (nothing changes), True otherwise.
        Raises:
            DataError: a required field is missing.
        """
        missing = [k for k in ("event_id", "user_id", "item_id", "type", "ts") if event.get(k) is None]
        if missing:
            raise DataError("online features", f"event {event.get('event_id')!r} lacks {missing}")
        if event["event_id"] in self._seen:
            return False
        self._seen.add(event["event_id"])
        ts, kind = event["ts"], event["type"]
        fields = {name: _number(event.get(name)) for name in ("watched_s", "fraction", "rating")}
        self._latest = ts if self._latest is None else max(self._latest, ts)
        for entity in ("user", "title"):
            key = event[KEY[entity]]
            if self.keep_rows:
                rows = self._rows[(entity, key)]
                bisect.insort(rows, (ts, kind, fields, event["item_id"]), key=lambda r: r[0])
                if self.horizon is not None:  # older rows can never count again: queries come at or after the newest
                    del rows[:bisect.bisect_left(rows, self._latest - self.horizon, key=lambda r: r[0])]
            for f in self.features:
                if f.entity != entity or kind not in f.events:
                    continue
                if f.aggregation == "days_since_last":
                    newest = self._newest.get((f.name, key))
                    self._newest[(f.name, key)] = ts if newest is None else max(newest, ts)
                elif f.window_days is None:
                    value = 1.0 if f.aggregation == "count" else fields[f.value or ""]
                    if value is not None:
                        total = self._totals[(f.name, key)]
                        total[0] += 1
                        total[1] += value
        return True

    def values(self, entity: str, key: str, at: datetime) -> dict[str, float | int | None]:
        """The entity's aggregate features as of `at` (events strictly before it), named as declared."""
        if self._latest is not None and at < self._latest:
            raise DataError("online features", f"asked as of {at}, before the newest applied event {self._latest}")
        rows = self._rows.get((entity, key), [])
        out: dict[str, float | int | None] = {}
        for f in self.features:
            if f.entity != entity:
                continue
            if f.aggregation == "days_since_last":
                newest = self._newest.get((f.name, key))
                out[f.name] = (at - newest) / timedelta(days=1) if newest is not None else None
            elif f.window_days is None:
                n, total = self._totals.get((f.name, key), (0.0, 0.0))
                out[f.name] = _aggregate(f, int(n), total)
            else:
                out[f.name] = _windowed(f, rows, at)
        for r in self.ratios:
            if r.entity == entity:
                top, bottom = _windowed(r.numerator, rows, at), _windowed(r.denominator, rows, at)
                out[r.name] = top / bottom if top is not None and bottom else None
        return out


    def pair_values(self, user: str, title: str, at: datetime) -> dict[str, float | None]:
        """The user × title features (genre match) as of `at`; None without a catalog of genres."""
        if self._latest is not None and at < self._latest:
            raise DataError("online features", f"asked as of {at}, before the newest applied event {self._latest}")
        rows = self._rows.get(("user", user), [])
        out: dict[str, float | None] = {}
        for f in self.matches:
            if not self.genres:
                out[f.name] = None
                continue
            start = at - timedelta(days=f.window_days) if f.window_days is not None else datetime.min
            watched = [r[3] for r in rows if start <= r[0] < at and r[1] in f.events]
            own = self.genres.get(title, [])
            if not watched or not own:
                out[f.name] = 0.0
                continue
            shares = [sum(g in self.genres.get(item, ()) for item in watched) / len(watched) for g in own]
            out[f.name] = math.fsum(shares) / len(shares)
        return out


def _windowed(f: Feature, rows: list[Row], at: datetime) -> float | int | None:
    """A windowed aggregate from the kept rows."""
    start = at - timedelta(days=f.window_days)  # type: ignore[arg-type]
    chosen = [r for r in rows if start <= r[0] < at and r[1] in f.events]
    values = [1.0] * len(chosen) if f.aggregation == "count" else \
        [v for r in chosen if (v := r[2][f.value or ""]) is not None]
    return _aggregate(f, len(values), math.fsum(values))


def _aggregate(feature: Feature, n: int, total: float) -> float | int | None:
    if feature.aggregation == "count":
        return n
    if feature.aggregation == "sum":
        return total
    return total / n if n else None  # mean


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
