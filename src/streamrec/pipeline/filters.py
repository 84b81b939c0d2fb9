"""What may not be shown to a user: already watched (with a rewatch policy), not available in their region at the
time, above their maturity limit, hidden by them, or on the business blocklist.

Every filter is a boolean mask over the whole catalog, built once per (user, time) with numpy, so the same mask
guards every candidate source and every fallback: a forbidden title cannot leak through a path that forgot a check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.errors import DataError
from streamrec.features.offline import has_table
from streamrec.pipeline.candidates import CandidateSet
from streamrec.settings import FilterPolicy

REASONS = ("blocklist", "maturity", "region", "hidden", "watched")  # the order reasons are attributed in


@dataclass(frozen=True)
class UserContext:
    """What the filters need about one request's user."""

    region: str | None = None
    maturity_limit: str = "18+"
    watched: Mapping[str, datetime] = field(default_factory=dict)  # title id → last time watched
    hidden: frozenset[str] = frozenset()


class CatalogFilter:
    """The catalog's titles with their maturity and regional availability windows, ready to mask per request."""

    def __init__(self, titles: pa.Table, availability: pa.Table | None, policy: FilterPolicy | None = None):
        """
        Args:
            titles: `item_id` and `maturity` (one of MATURITY_LEVELS; missing → policy.unknown_maturity).
            availability: `item_id`, `region`, `start_ts`, `end_ts` (NULL end: open); None: no windows known.
        """
        self.policy = policy or FilterPolicy()
        self.item_ids = np.asarray(titles.column("item_id").to_pylist(), dtype=object)
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        rank = {level: i for i, level in enumerate(MATURITY_LEVELS)}
        fallback = rank.get(self.policy.unknown_maturity, len(MATURITY_LEVELS) - 1)
        maturity = titles.column("maturity").to_pylist() if "maturity" in titles.column_names else []
        self.maturity_rank = np.array([rank.get(m, fallback) for m in maturity] or [fallback] * len(self.item_ids),
                                      dtype=np.int8)
        self.blocked = np.zeros(len(self.item_ids), dtype=bool)
        self.blocked[[self.index[b] for b in self.policy.blocklist if b in self.index]] = True
        self.windows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.has_window = np.zeros(len(self.item_ids), dtype=bool)
        if availability is not None and availability.num_rows:
            self._load_windows(availability)

    def _load_windows(self, availability: pa.Table) -> None:
        items = availability.column("item_id").to_pylist()
        cols = np.array([self.index.get(i, -1) for i in items], dtype=np.int64)
        starts = _micros(availability.column("start_ts"))
        ends = _micros(availability.column("end_ts"), missing=np.iinfo(np.int64).max)
        regions = np.asarray(availability.column("region").to_pylist(), dtype=object)
        known = cols >= 0  # windows of titles outside the catalog cannot matter
        self.has_window[cols[known]] = True
        for region in np.unique(regions[known]):
            sel = known & (regions == region)
            self.windows[str(region)] = (cols[sel], starts[sel], ends[sel])

    def allowed(self, user: UserContext, at: datetime) -> tuple[np.ndarray, np.ndarray]:
        """The mask of titles this user may be shown at `at`, and for each title the first reason it may not
        (an index into REASONS, -1 when allowed)."""
        n = len(self.item_ids)
        reason = np.full(n, -1, dtype=np.int8)

        def mark(mask: np.ndarray, code: str) -> None:
            reason[(reason < 0) & mask] = REASONS.index(code)

        mark(self.blocked, "blocklist")
        limit = MATURITY_LEVELS.index(user.maturity_limit) if user.maturity_limit in MATURITY_LEVELS else 0
        mark(self.maturity_rank > limit, "maturity")
        mark(~self._available(user.region, at), "region")
        mark(self._mask(user.hidden), "hidden")
        mark(self._watched(user.watched, at), "watched")
        return reason < 0, reason

    def _available(self, region: str | None, at: datetime) -> np.ndarray:
        if not self.policy.require_availability or not self.windows:
            return np.ones(len(self.item_ids), dtype=bool)
        out = np.zeros(len(self.item_ids), dtype=bool)
        if region in self.windows:
            cols, starts, ends = self.windows[region]
            t = _micros_of(at)
            out[cols[(starts <= t) & (t < ends)]] = True
        return out

    def _mask(self, items: Iterable[str]) -> np.ndarray:
        out = np.zeros(len(self.item_ids), dtype=bool)
        cols = [self.index[i] for i in items if i in self.index]
        out[cols] = True
        return out

    def _watched(self, watched: Mapping[str, datetime], at: datetime) -> np.ndarray:
        after = self.policy.rewatch_after_days
        recent = (i for i, when in watched.items() if after is None or (at - when).total_seconds() < after * 86_400)
        return self._mask(recent)

    def apply(self, candidates: Iterable[str], user: UserContext, at: datetime) -> tuple[list[str], dict[str, int]]:
        """Keep the allowed candidates in order; count the removed ones by reason (unknown titles: 'unknown')."""
        allowed, reason = self.allowed(user, at)
        kept: list[str] = []
        removed = dict.fromkeys((*REASONS, "unknown"), 0)
        for item in candidates:
            col = self.index.get(item)
            if col is None:
                removed["unknown"] += 1
            elif allowed[col]:
                kept.append(item)
            else:
                removed[REASONS[reason[col]]] += 1
        return kept, removed


def catalog_filter(con: duckdb.DuckDBPyConnection, policy: FilterPolicy | None = None) -> CatalogFilter | None:
    """The filter of the store's catalog (titles, availability); None for a store without a catalog."""
    if not has_table(con, "titles"):
        return None
    titles = con.sql("SELECT item_id, maturity FROM titles").to_arrow_table()
    availability = con.sql("SELECT item_id, region, start_ts, end_ts FROM availability").to_arrow_table() \
        if has_table(con, "availability") else None
    return CatalogFilter(titles, availability, policy)


def user_contexts(con: duckdb.DuckDBPyConnection, user_ids: Sequence[str]) -> list[UserContext]:
    """Region and maturity limit of each user from the `users` table (unknown user or limit: no region, no
    limit). Watched titles are left out: the sources already skip a user's history."""
    known: dict[str, tuple[str | None, str | None]] = {}
    if has_table(con, "users"):
        known = {u: (r, m) for u, r, m in con.execute("SELECT user_id, region, maturity_limit FROM users").fetchall()}
    out = []
    for user in user_ids:
        region, limit = known.get(str(user), (None, None))
        out.append(UserContext(region=region, maturity_limit=limit or MATURITY_LEVELS[-1]))
    return out


def filter_candidates(cands: CandidateSet, item_ids: np.ndarray, contexts: Sequence[UserContext],
                      filt: CatalogFilter, at: datetime) -> tuple[CandidateSet, dict[str, int]]:
    """The candidates each row's user may be shown at `at` (row r's user is contexts[r]), and how many were removed
    per reason ("unknown": a title the catalog does not know). One mask per distinct (region, limit, hidden)."""
    to_catalog = np.array([filt.index.get(i, -1) for i in item_ids.tolist()], dtype=np.int64)
    keep = np.zeros(len(cands.row), dtype=bool)
    removed = dict.fromkeys((*REASONS, "unknown"), 0)
    order = np.argsort(cands.row, kind="stable")
    bounds = np.searchsorted(cands.row[order], np.arange(len(contexts) + 1))
    masks: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for r, user in enumerate(contexts):
        mine = order[bounds[r]:bounds[r + 1]]
        if not len(mine):
            continue
        key = (user.region, user.maturity_limit, user.hidden) if not user.watched else id(user)
        if key not in masks:
            masks[key] = filt.allowed(user, at)
        allowed, reason = masks[key]
        cols = to_catalog[cands.col[mine]]
        known = cols >= 0
        ok = known & allowed[np.where(known, cols, 0)]
        keep[mine] = ok
        removed["unknown"] += int((~known).sum())
        for code in reason[cols[known & ~ok]]:
            removed[REASONS[code]] += 1
    return cands.subset(keep), removed


def _micros(column: pa.ChunkedArray | pa.Array, missing: int | None = None) -> np.ndarray:
    values = column.cast(pa.timestamp("us")).cast(pa.int64())
    if values.null_count and missing is None:
        raise DataError("availability", "start_ts has missing values")
    return np.asarray(values.fill_null(missing if missing is not None else 0).to_numpy(zero_copy_only=False),
                      dtype=np.int64)


_EPOCH = datetime(1970, 1, 1)


def _micros_of(at: datetime) -> int:
    """Microseconds since the epoch of a naive (UTC) or aware time, as pyarrow's timestamp("us") counts them
    (plain datetime arithmetic: a pyarrow scalar and cast cost ~4% of a served request)."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return (at - _EPOCH) // timedelta(microseconds=1)
