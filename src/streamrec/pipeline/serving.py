"""The ranked pipeline at request time, for one user: history from the online store → candidates from every source
(folded in from the fresh history, no retraining) → the catalog's filters → feature rows (online store plus the
request) → the LightGBM ranker → MMR diversity → explanations.

Two paths (DESIGN.md "The serving path"): the refresh path runs all of that and keeps the user's best titles (a
`RankedPool`) in the online store; the request path reads the pool and applies only what a request changes: its
exclusions, hidden titles, diversity and k. A pool answers while the history it was ranked from is unchanged (a new
play changes the history's fingerprint, so the next request ranks again) and for `ranked_ttl_s` of request time.
Both paths give the same list for the same history and time.

Bad input never fails a request: a title in the history that the models do not know is ignored, and a missing or
stale feature gets its documented default (`FEATURE_DEFAULTS`); both are counted, per response and in total.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
from scipy import sparse

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.evaluation.metrics import genre_matrix
from streamrec.features.context import ContextFeatures
from streamrec.features.definitions import Feature, GenreMatch
from streamrec.features.offline import category_codes
from streamrec.logs import get_logger
from streamrec.pipeline.bundle import PipelineBundle
from streamrec.pipeline.candidates import (
    CandidateSet,
    FixedListSource,
    PerUserListSource,
    gather,
)
from streamrec.pipeline.explain import Explanation, explain
from streamrec.pipeline.filters import REASONS, CatalogFilter, UserContext
from streamrec.models._factors import FactorModel
from streamrec.pipeline.rerank import mmr
from streamrec.pipeline.similarity import NAME as SIMILARITY, latest_distinct, recent_similarity, unit_vectors
from streamrec.pipeline.sources import CONTINUE_FINISHED, NEW_RELEASE_DAYS, model_sources
from streamrec.settings import PreprocessConfig
from streamrec.storage.online.base import HistoryEntry, OnlineStore, RankedPool

log = get_logger(__name__)

# What a feature is when the online store has no value for it, or only one older than the staleness limit:
# counts and sums are 0 (no activity known); means, recency and catalog attributes are missing (NaN), which
# LightGBM sends down the branch it learned for missing values.
FEATURE_DEFAULTS = {"count": 0.0, "sum": 0.0, "mean": np.nan, "days_since_last": np.nan, "attribute": np.nan}
ENGAGED = ("play", "progress", "complete")
POOL = 50  # MMR picks the list from the ranker's best 50


def history_stamp(entries: Sequence[HistoryEntry]) -> str:
    """A fingerprint of a kept history that changes with every added event (new ones are newest; a late one past the
    length limit pushes out the oldest), stable across processes (a shared online store compares it)."""
    if not entries:
        return "0"
    first, last = entries[0], entries[-1]
    return f"{len(entries)}|{first.ts.isoformat()}|{last.ts.isoformat()}|{last.item_id}|{last.type}"


@dataclass(frozen=True)
class ServingCatalog:
    """The catalog as serving needs it (from the event store's titles, availability and users tables)."""

    titles: pa.Table
    availability: pa.Table | None = None
    users: pa.Table | None = None

    @classmethod
    def from_store(cls, con) -> ServingCatalog:
        from streamrec.features.offline import has_table

        def read(name: str) -> pa.Table | None:
            return con.sql(f"SELECT * FROM {name}").to_arrow_table() if has_table(con, name) else None

        titles = read("titles")
        if titles is None:
            titles = pa.table({"item_id": pa.array([], pa.string())})
        return cls(titles, read("availability"), read("users"))


@dataclass(frozen=True)
class Candidates:
    """One request's allowed candidates and what they came from: the user's kept history and its weighted row."""

    entries: list[HistoryEntry]
    history: sparse.csr_matrix
    cands: CandidateSet


@dataclass
class RankedList:
    """One response: titles best first with their final scores and provenance, what was counted on the way."""

    user_id: str
    items: list[str]
    scores: list[float]
    sources: list[str]
    explanations: list[Explanation] | None = None
    fallback: str | None = None  # None: the ranked path; else which fallback answered
    counts: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)


class OnlinePipeline:
    """A fitted bundle, the catalog and an online store, ready to answer `recommend` (thread-safe)."""

    def __init__(self, bundle: PipelineBundle, catalog: ServingCatalog, store: OnlineStore,
                 max_feature_age: timedelta = timedelta(days=2), preprocess: PreprocessConfig | None = None,
                 ranked_ttl_s: float = 0.0, pool_size: int = 100, name: str | None = None):
        """`ranked_ttl_s` > 0 turns on the request path over kept pools of `pool_size` titles; `name` keys them (the
        model version: a pool of another model is never read)."""
        self.bundle, self.store, self.max_feature_age = bundle, store, max_feature_age
        self.ranked_ttl_s, self.pool_size = ranked_ttl_s, max(pool_size, POOL)
        self.name = name or uuid.uuid4().hex
        self.weights = preprocess or PreprocessConfig()
        self.item_ids = np.asarray(bundle.item_ids, dtype=object)
        self.index = {item: i for i, item in enumerate(self.item_ids.tolist())}
        self.n_items = len(self.item_ids)
        self.filter = CatalogFilter(catalog.titles, catalog.availability, bundle.config.filters)
        self.to_catalog = np.array([self.filter.index.get(i, -1) for i in self.item_ids.tolist()], dtype=np.int64)
        names = catalog.titles.column_names
        genres = dict(zip(catalog.titles.column("item_id").to_pylist(), catalog.titles.column("genres").to_pylist())) \
            if "genres" in names else {}
        self.genres, _ = genre_matrix(self.item_ids, {k: list(v or []) for k, v in genres.items()})
        self.genre_count = self.genres.sum(axis=1)
        self.release = self._release_dates(catalog.titles)
        self.profiles = self._profiles(catalog.users)
        self.model_sources = model_sources(bundle.models, bundle.config.vector_index)  # vector indexes built once
        self.factors = next((m for m in bundle.models.values() if isinstance(m, FactorModel)), None)
        self.unit_factors = unit_vectors(self.factors.item_factors_) if self.factors is not None else None
        self.context = ContextFeatures(bundle.definitions)
        self.counters: Counter[str] = Counter()  # totals since start, for metrics
        self._fresh: tuple[date, np.ndarray] | None = None  # (day, new releases of that day)
        self._lock = threading.Lock()
        self._layout()

    # --- set-up --------------------------------------------------------------------------------------------------
    def _release_dates(self, titles: pa.Table) -> np.ndarray:
        out = np.full(self.n_items, np.datetime64("NaT"), dtype="datetime64[D]")
        if "release_date" in titles.column_names:
            for item, day in zip(titles.column("item_id").to_pylist(), titles.column("release_date").to_pylist()):
                if day is not None and item in self.index:
                    out[self.index[item]] = np.datetime64(day, "D")
        return out

    @staticmethod
    def _profiles(users: pa.Table | None) -> dict[str, tuple[str | None, str]]:
        if users is None or users.num_rows == 0:
            return {}
        limits = users.column("maturity_limit").to_pylist() if "maturity_limit" in users.column_names else \
            [None] * users.num_rows
        regions = users.column("region").to_pylist() if "region" in users.column_names else [None] * users.num_rows
        return {u: (r, m or MATURITY_LEVELS[-1]) for u, r, m in zip(users.column("user_id").to_pylist(), regions,
                                                                      limits)}

    def _layout(self) -> None:
        """Where each of the ranker's feature columns comes from, and its default when missing."""
        by_name = {d.name: d for d in self.bundle.definitions}
        self.names = list(self.bundle.ranker.names_)
        self.defaults = np.array([FEATURE_DEFAULTS[by_name[n].aggregation] if isinstance(by_name.get(n), Feature)
                                  else (0.0 if isinstance(by_name.get(n), GenreMatch) else FEATURE_DEFAULTS["attribute"])
                                  for n in self.names], dtype=np.float32)
        self.position = {name: j for j, name in enumerate(self.names)}
        self.matches = [(j, by_name[n]) for j, n in enumerate(self.names) if isinstance(by_name.get(n), GenreMatch)]

    # --- the request ---------------------------------------------------------------------------------------------
    def recommend(self, user_id: str, k: int = 10, at: datetime | None = None, region: str | None = None,
                  exclude: Iterable[str] = (), explain_items: bool = False,
                  diversity: float | None = None, device: str | None = None) -> RankedList:
        """The user's ranked list of k titles as of `at` (default: now, UTC), for a request from `device`."""
        at = at or datetime.now(UTC).replace(tzinfo=None)
        diversity = self.bundle.config.diversity if diversity is None else diversity
        counts: Counter[str] = Counter()
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round((now - clock) * 1000, 3)
            clock = now

        entries = self.store.history(user_id)
        out = None
        if self.ranked_ttl_s > 0 and not explain_items:
            pool = self._pool(user_id, entries, at, region, device, counts, lap)
            out = self._from_pool(user_id, pool, k, exclude, diversity)
            lap("rerank")
        if out is None:
            out = self._ranked(user_id, entries, at, region, exclude, explain_items, diversity, device, k, counts,
                               lap)
        out.counts, out.timings_ms = dict(counts), timings
        with self._lock:
            self.counters.update(counts)
        return out

    def refresh(self, user_id: str, at: datetime, region: str | None = None, device: str | None = None,
                age_s: float = 0.0) -> RankedPool:
        """The refresh path alone: rank the user's candidates now and keep the pool (batch warm-up, the worker). The
        pool is kept as if ranked `age_s` earlier, so it expires that much sooner: a warm-up spreads the expiry of
        the pools it ranks at one moment, which would otherwise all fall on the refresh path together."""
        return self._pool(user_id, self.store.history(user_id), at, region, device, Counter(), lambda stage: None,
                          force=True, age_s=age_s)

    def _pool(self, user_id: str, entries: list[HistoryEntry], at: datetime, region: str | None, device: str | None,
              counts: Counter, lap, force: bool = False, age_s: float = 0.0) -> RankedPool:
        """The kept pool when it still holds (same history, request time within the TTL), else a fresh one, kept."""
        key, stamp = f"{self.name}|{region or ''}|{device or ''}", history_stamp(entries)
        when = at.replace(tzinfo=UTC).timestamp() if at.tzinfo is None else at.timestamp()
        pool = None if force else self.store.get_ranked(user_id, key)
        if pool is not None and pool.stamp == stamp and abs(when - pool.as_of) <= self.ranked_ttl_s:
            counts["ranked_pool_hit"] += 1
            lap("pool")
            return pool
        counts["ranked_pool_refresh"] += 1
        cands = self.candidates(user_id, at, region, (), counts, lap, entries=entries).cands
        scores, fallback, _ = self._score(user_id, cands, entries, at, counts, device, lap)
        best = np.argsort(-scores, kind="stable")[:self.pool_size]
        diversity = self.bundle.config.diversity
        # MMR is greedy, so the first k of its order over the best POOL are its picks for any k ≤ POOL: kept once here
        picks = tuple(self._pick(scores[best], cands.col[best], POOL, diversity).tolist()) if diversity > 0 else ()
        pool = RankedPool(tuple(self.item_ids[cands.col[best]].tolist()), tuple(scores[best].tolist()),
                          tuple(cands.sources[o] for o in cands.origin[best]), stamp, when - age_s, fallback, picks)
        self.store.put_ranked(user_id, key, pool, self.ranked_ttl_s)
        return pool

    def _from_pool(self, user_id: str, pool: RankedPool, k: int, exclude: Iterable[str],
                   diversity: float) -> RankedList | None:
        """The request path: the pool less this request's exclusions and hidden titles, then diversity and k. None
        when a cut pool keeps too few titles to pick from as the full path would."""
        drop = self.store.hidden(user_id) | frozenset(exclude)
        if not drop and pool.picks and diversity == self.bundle.config.diversity and \
                (k <= len(pool.picks) or len(pool.picks) == len(pool.items)):
            chosen = pool.picks[:k]  # nothing to leave out: the kept diversity order answers as is
            return RankedList(user_id, [pool.items[i] for i in chosen], [float(np.float32(pool.scores[i]))
                                                                          for i in chosen],
                              [pool.sources[i] for i in chosen], fallback=pool.fallback)
        keep = [i for i, item in enumerate(pool.items) if item not in drop] if drop else list(range(len(pool.items)))
        if len(pool.items) >= self.pool_size and len(keep) < (max(POOL, k) if diversity > 0 else k):
            return None
        index = self.index
        cols = np.fromiter((index[pool.items[i]] for i in keep), dtype=np.int64, count=len(keep))
        scores = np.array([pool.scores[i] for i in keep], dtype=np.float32)
        picks = self._pick(scores, cols, k, diversity)
        return RankedList(user_id, self.item_ids[cols[picks]].tolist(), scores[picks].astype(float).tolist(),
                          [pool.sources[keep[p]] for p in picks], fallback=pool.fallback)

    def _ranked(self, user_id: str, entries: list[HistoryEntry], at: datetime, region: str | None,
                exclude: Iterable[str], explain_items: bool, diversity: float, device: str | None, k: int,
                counts: Counter, lap) -> RankedList:
        """The full path for one request (explanations need its feature rows)."""
        request = self.candidates(user_id, at, region, exclude, counts, lap, entries=entries)
        history, cands = request.history, request.cands
        scores, fallback, features = self._score(user_id, cands, entries, at, counts, device, lap)
        picks = self._pick(scores, cands.col, k, diversity)
        lap("rerank")
        cols = cands.col[picks]
        sources = [cands.sources[o] for o in cands.origin[picks]]
        out = RankedList(user_id, self.item_ids[cols].tolist(), scores[picks].astype(float).tolist(), sources,
                         fallback=fallback)
        if explain_items and len(picks):
            ease = self.bundle.models.get("ease")
            contributions = self.bundle.ranker.contributions(features[picks]) if fallback is None else None
            out.explanations = explain(self.item_ids, cols, scores[picks], sources, history,
                                       getattr(ease, "weights_", None), contributions, self.names)
        return out

    def _score(self, user_id: str, cands: CandidateSet, entries: list[HistoryEntry], at: datetime, counts: Counter,
               device: str | None, lap) -> tuple[np.ndarray, str | None, np.ndarray]:
        """(ranker scores, the fallback that scored instead, feature rows) of the candidates."""
        if not len(cands.row):
            return np.zeros(0, np.float32), None, np.zeros((0, len(self.names)), np.float32)
        features = self.features(user_id, cands, entries, at, counts, device)
        lap("features")
        fallback = None
        try:
            scores = self.bundle.ranker.score(features)
        except Exception as exc:  # a broken ranker must not fail the request: fall back to the source order
            log.warning("ranker.failed", error=type(exc).__name__)
            scores, fallback = self._source_order(cands), "candidate_scores"
            counts["ranker_failed"] += 1
        lap("ranker")
        return scores, fallback, features

    def candidates(self, user_id: str, at: datetime, region: str | None = None, exclude: Iterable[str] = (),
                   counts: Counter | None = None, lap=lambda stage: None,
                   entries: list[HistoryEntry] | None = None) -> Candidates:
        """The candidates the user may be shown at `at`: every source on the fresh history (`entries`, default: read
        from the store), then the filters (`counts` gets what was ignored or removed; `lap(stage)` is called after
        history, candidates and filter)."""
        counts = Counter() if counts is None else counts
        entries = self.store.history(user_id) if entries is None else entries
        history, started = self._history(entries, at, counts)
        user = self._context(user_id, region, entries, exclude)
        lap("history")
        cands = self._candidates(history, started, at)
        lap("candidates")
        cands = self._filter(cands, user, at, counts)
        lap("filter")
        return Candidates(entries, history, cands)

    def _history(self, entries: Sequence[HistoryEntry], at: datetime,
                 counts: Counter) -> tuple[sparse.csr_matrix, np.ndarray]:
        """The (1 × titles) weighted history row, as preprocess weighs interactions, and the titles started but not
        finished (latest first). Titles the models do not know are ignored and counted."""
        cfg = self.weights
        per: dict[int, list] = {}  # col → [watched, completed, max fraction, added, last ts]
        for e in entries:
            if e.ts >= at:
                continue
            col = self.index.get(e.item_id)
            if col is None:
                counts["unknown_history_titles"] += 1
                continue
            s = per.setdefault(col, [False, False, 0.0, False, e.ts])
            s[0] |= e.type in ENGAGED
            s[1] |= e.type == "complete"
            s[2] = max(s[2], e.fraction or 0.0)
            s[3] |= e.type == "add_to_list"
            s[4] = max(s[4], e.ts)
        cols = np.fromiter(per, dtype=np.int64, count=len(per))
        weights = np.array([cfg.play_weight * w + cfg.complete_weight * (1.0 if c else f) + cfg.add_to_list_weight * a
                            for w, c, f, a, _ in per.values()], dtype=np.float32)
        keep = weights > 0
        row = sparse.csr_matrix((weights[keep], (np.zeros(keep.sum(), np.int64), cols[keep])), shape=(1, self.n_items))
        row.sort_indices()
        started = sorted(((s[4], col) for col, s in per.items() if s[0] and not s[1] and s[2] < CONTINUE_FINISHED),
                         reverse=True)
        return row, np.array([col for _, col in started], dtype=np.int64)

    def _context(self, user_id: str, region: str | None, entries: Sequence[HistoryEntry],
                 exclude: Iterable[str]) -> UserContext:
        home, limit = self.profiles.get(user_id, (None, MATURITY_LEVELS[-1]))
        watched: dict[str, datetime] = {}
        for e in entries:
            if e.type in ENGAGED:
                watched[e.item_id] = max(watched.get(e.item_id, e.ts), e.ts)
        return UserContext(region=region or home, maturity_limit=limit, watched=watched,
                           hidden=self.store.hidden(user_id) | frozenset(exclude))

    def _candidates(self, history: sparse.csr_matrix, started: np.ndarray, at: datetime) -> CandidateSet:
        quotas = self.bundle.config.quotas
        sources = list(self.model_sources)
        if "continue_watching" in quotas and len(started):
            sources.append(PerUserListSource("continue_watching", {0: started}, self.n_items))
        if "new_releases" in quotas:
            fresh = self._new_releases(at.date())
            if len(fresh):
                sources.append(FixedListSource("new_releases", fresh, self.n_items))
        # users = -1: every source folds the user in from the fresh history, so one play changes the next list
        return gather(sources, quotas, history, np.full(1, -1, dtype=np.int64))

    def _new_releases(self, day: date) -> np.ndarray:
        """The titles released in the NEW_RELEASE_DAYS up to `day`, newest first (computed once a day)."""
        cached = self._fresh
        if cached is None or cached[0] != day:
            start = np.datetime64(day - timedelta(days=NEW_RELEASE_DAYS), "D")
            cols = np.flatnonzero((self.release >= start) & (self.release <= np.datetime64(day, "D")))
            cached = self._fresh = (day, cols[np.argsort(self.release[cols])[::-1]])
        return cached[1]

    def _filter(self, cands: CandidateSet, user: UserContext, at: datetime, counts: Counter) -> CandidateSet:
        allowed, reason = self.filter.allowed(user, at)
        catalog_cols = self.to_catalog[cands.col]
        known = catalog_cols >= 0
        ok = known & allowed[np.where(known, catalog_cols, 0)]
        counts["candidates"] += len(catalog_cols)
        counts["filtered_unknown"] += int((~known).sum())
        for code in reason[catalog_cols[known & ~ok]]:
            counts[f"filtered_{REASONS[code]}"] += 1
        return cands.subset(ok)

    def features(self, user_id: str, cands: CandidateSet, entries: Sequence[HistoryEntry], at: datetime,
                 counts: Counter, device: str | None = None) -> np.ndarray:
        """The ranker's input rows for one user's candidates, columns in the ranker's order."""
        n = len(cands.row)
        out = np.empty((n, len(self.names)), dtype=np.float32)
        out[:] = self.defaults
        position = self.position
        for s, source in enumerate(cands.sources):
            if f"{source}_score" in position:
                out[:, position[f"{source}_score"]] = cands.score[s]
            if f"{source}_rank" in position:
                out[:, position[f"{source}_rank"]] = np.where(cands.rank[s] >= 0, cands.rank[s], np.nan)
        user = self._stored("user", [user_id], at, counts)
        titles = self._stored("title", self.item_ids[cands.col].tolist(), at, counts)
        for rows, broadcast in ((user, True), (titles, False)):
            if rows is None:
                continue
            names, values = rows
            for j, name in enumerate(names):
                if name in position:
                    column = values[:, j]
                    fill = np.isnan(column)
                    column = np.where(fill, self.defaults[position[name]], column)
                    out[:, position[name]] = column[0] if broadcast else column
        for j, match in self.matches:
            out[:, j] = self._genre_match(match, entries, cands.col, at)
        context = self.context.values(at, device) if any(f.name in position for f in self.context.features) else {}
        for f in self.context.features:
            if f.name in position:
                value = context[f.name]
                out[:, position[f.name]] = category_codes([value])[0] if f.dtype == "VARCHAR" else \
                    (np.nan if value is None else float(value))
        if SIMILARITY in position and self.factors is not None:
            recent = {0: latest_distinct(entries, at)}
            out[:, position[SIMILARITY]] = recent_similarity(self.unit_factors, self.index, recent,
                                                             np.zeros(n, np.int64), cands.col)
        return out

    def _stored(self, entity: str, keys: list[str], at: datetime, counts: Counter):
        """Feature vectors from the online store; missing or stale ones become NaN (then their defaults), counted."""
        rows = self.store.get_features(entity, keys)
        if not rows.names:
            counts[f"missing_{entity}_features"] += len(keys)
            return None
        stale = rows.found & (at.replace(tzinfo=UTC).timestamp() - rows.as_of > self.max_feature_age.total_seconds())
        missing = ~rows.found
        counts[f"missing_{entity}_features"] += int(missing.sum())
        counts[f"stale_{entity}_features"] += int(stale.sum())
        values = rows.values
        if stale.any():
            values = values.copy()
            values[stale] = np.nan
        return rows.names, values

    def _genre_match(self, match: GenreMatch, entries: Sequence[HistoryEntry], cols: np.ndarray,
                     at: datetime) -> np.ndarray:
        """As offline: the mean over a title's genres of the share of the user's matching events in the window
        that were of that genre (0 without such events or genres)."""
        start = at - timedelta(days=match.window_days) if match.window_days is not None else datetime.min
        watched = [self.index[e.item_id] for e in entries
                   if start <= e.ts < at and e.type in match.events and e.item_id in self.index]
        if not watched or not self.genres.shape[1]:
            return np.zeros(len(cols), np.float32)
        share = self.genres[watched].mean(axis=0)
        own = self.genres[cols]
        total = self.genre_count[cols]
        return np.where(total > 0, own @ share / np.maximum(total, 1), 0.0).astype(np.float32)

    def _source_order(self, cands: CandidateSet) -> np.ndarray:
        """Without the ranker: earlier sources first, each in its own order."""
        ranks = np.where(cands.rank >= 0, cands.rank, np.iinfo(np.int32).max).min(axis=0)
        return (-(cands.origin.astype(np.float32) * 1e6 + ranks)).astype(np.float32)

    def _pick(self, scores: np.ndarray, cols: np.ndarray, k: int, diversity: float) -> np.ndarray:
        """Positions of the k titles to show: the best by score, or MMR over genres among the best POOL."""
        best = np.argsort(-scores, kind="stable")
        if diversity > 0 and self.genres.shape[1] and len(best) > 1:
            pool = best[:max(POOL, k)]
            return pool[mmr(scores[pool], self.genres[cols[pool]], k, diversity)]
        return best[:k]
