"""The ranked pipeline end to end on a temporal split, stage by stage: each candidate source alone, then the union
ordered by the LightGBM ranker on point-in-time features, then re-ranked for genre diversity. The ranker learns on the last part of the training
period (candidates from models fitted before it, labels from what was watched in it), never on the test period."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from streamrec.errors import DataError
from streamrec.evaluation import metrics as M
from streamrec.evaluation.runner import EvalData, prepare
from streamrec.evaluation.splits import Split, temporal_split
from streamrec.features import BUILTIN, entity_features, point_in_time
from streamrec.features.definitions import Definition, GenreMatch
from streamrec.features.context import context_time
from streamrec.features.materialize import feature_columns, feature_matrix
from streamrec.features.offline import has_table
from streamrec.pipeline.candidates import CandidateSet, candidate_recall
from streamrec.pipeline.explain import Explanation, explain
from streamrec.pipeline.filters import FilterPolicy, catalog_filter, filter_candidates, user_contexts
from streamrec.pipeline.ranker import Ranker, RankerConfig
from streamrec.models._factors import FactorModel
from streamrec.pipeline.rerank import mmr
from streamrec.pipeline.similarity import NAME as SIMILARITY, recent_similarity, recent_titles, unit_vectors
from streamrec.pipeline.sources import gather_candidates
from streamrec.settings import SplitConfig

K = 10


@dataclass
class PipelineReport:
    """NDCG@10 per stage on the test period, candidate recall, the ranker's feature importance."""

    ndcg: dict[str, float] = field(default_factory=dict)
    diversity: dict[str, float] = field(default_factory=dict)  # intra-list genre diversity@10 per stage
    coverage: dict[str, float] = field(default_factory=dict)  # share of the catalog in some top 10, per stage
    novelty: dict[str, float] = field(default_factory=dict)  # mean self-information of the top 10, per stage
    recall: dict[str, float] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    example: tuple[str, list[Explanation]] | None = None  # one test user's ranked list, explained
    seconds: float = 0.0
    ranker: Ranker | None = field(default=None, repr=False)  # the trained ranker (for benchmarks and saving)
    test_features: np.ndarray | None = field(default=None, repr=False)  # its test-period input rows
    test_rows: np.ndarray | None = field(default=None, repr=False)  # the test user (row) of each input row
    lists: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # stage → (test users × K) columns
    user_ids: np.ndarray | None = field(default=None, repr=False)  # the test users, rows of `lists`
    item_ids: np.ndarray | None = field(default=None, repr=False)  # the titles, columns of `lists`

    @property
    def best_single(self) -> tuple[str, float]:
        singles = {k: v for k, v in self.ndcg.items() if not k.startswith("ranked")}
        name = max(singles, key=singles.get)
        return name, singles[name]


def _genres(con: duckdb.DuckDBPyConnection, item_ids: np.ndarray) -> np.ndarray | None:
    """Boolean titles × genres in `item_ids` order from the catalog, None without one (or without any genre)."""
    if not has_table(con, "titles"):
        return None
    rows = con.execute("SELECT item_id, genres FROM titles").fetchall()
    matrix, names = M.genre_matrix(item_ids, {item: list(g or []) for item, g in rows})
    return matrix if names else None


def _cut_time(split: Split) -> datetime:
    return pd.Timestamp(split.params["at"]).tz_convert("UTC").tz_localize(None).floor("us").to_pydatetime()


def _features(con: duckdb.DuckDBPyConnection, cands: CandidateSet, data: EvalData, at: datetime,
              events: str, definitions: Sequence[Definition] = BUILTIN) -> tuple[np.ndarray, list[str]]:
    requests = request_contexts(con, events, data.user_ids, at) if any(f.entity == "context" for f in definitions) \
        else None
    return feature_rows(con, cands, data.user_ids, data.train.item_ids, at, events, definitions, requests)


def feature_rows(con: duckdb.DuckDBPyConnection, cands: CandidateSet, user_ids: np.ndarray, item_ids: np.ndarray,
                 at: datetime, events: str = "events", definitions: Sequence[Definition] = BUILTIN,
                 requests: pa.Table | None = None) -> tuple[np.ndarray, list[str]]:
    """One row per candidate (row r: user_ids[r]; col c: item_ids[c]), offline as of `at`: every source's score and
    rank, then the user's and the title's features, the genre matches, and the context of each user's request
    among `definitions`. `requests` holds each user row's request (`ts` to the minute, `device`); default: at `at`,
    no device."""
    cols = [cands.score[s] for s in range(len(cands.sources))]
    cols += [np.where(cands.rank[s] >= 0, cands.rank[s], np.nan) for s in range(len(cands.sources))]
    names = [f"{s}_score" for s in cands.sources] + [f"{s}_rank" for s in cands.sources]
    for entity, keys, index in (("user", user_ids, cands.row), ("title", item_ids, cands.col)):
        table = entity_features(con, entity, [str(k) for k in keys], at, definitions, events)
        entity_names, matrix = feature_columns(table)
        cols += list(matrix[index].T)
        names += entity_names
    matches = [f for f in definitions if isinstance(f, GenreMatch)]
    spine = pa.table({"user_id": pa.array(np.asarray(user_ids)[cands.row].astype(str)),
                      "item_id": pa.array(np.asarray(item_ids)[cands.col].astype(str)),
                      "ts": pa.array(np.full(len(cands.row), np.datetime64(at, "us")))})
    pairs = point_in_time(con, spine, matches, events) if matches else spine
    for f in matches:
        cols.append(np.asarray(pairs.column(f.name).cast(pa.float64()).to_numpy(zero_copy_only=False)))
        names.append(f.name)
    context = [f for f in definitions if f.entity == "context"]
    if context:
        if requests is None:
            requests = pa.table({"ts": pa.array([context_time(at)] * len(user_ids), pa.timestamp("us")),
                                 "device": pa.nulls(len(user_ids), pa.string())})
        table = point_in_time(con, requests, context, events).select([f.name for f in context])
        context_names, matrix = feature_matrix(table)
        cols += list(matrix[cands.row].T)
        names += context_names
    return np.column_stack(cols).astype(np.float32), names


def request_contexts(con: duckdb.DuckDBPyConnection, events: str, user_ids: Sequence[str], at: datetime) -> pa.Table:
    """Each user's request as of a cut: the time and device of their first event at or after `at` (what a request
    at that moment carries), or `at` and no device for a user with none. The ranker learns context from these."""
    columns = {d[0] for d in con.execute(f"SELECT * FROM {events} LIMIT 0").description}
    device = "arg_min(e.device, e.ts)" if "device" in columns else "CAST(NULL AS VARCHAR)"  # events without devices
    con.register("__request_users", pa.table({"user_id": pa.array([str(u) for u in user_ids], pa.string())}))
    try:
        first = dict(((u, (t, d)) for u, t, d in con.execute(
            f"SELECT e.user_id, min(e.ts), {device} FROM {events} e JOIN __request_users r "
            "ON r.user_id = e.user_id WHERE e.ts >= ? GROUP BY 1", [at]).fetchall()))
    finally:
        con.unregister("__request_users")
    times = [context_time(first.get(str(u), (at, None))[0]) for u in user_ids]
    devices = [first.get(str(u), (at, None))[1] for u in user_ids]
    return pa.table({"ts": pa.array(times, pa.timestamp("us")), "device": pa.array(devices, pa.string())})


def _labels(cands: CandidateSet, data: EvalData, split: Split) -> np.ndarray:
    """Graded relevance of each candidate: 0 not watched in the period, 1 watched, 2 watched with a weight above
    the period's median (a completed or much-watched title)."""
    test = split.test
    weight = np.asarray(test.column("weight").cast(pa.float64()).to_numpy(zero_copy_only=False)) \
        if "weight" in test.column_names else np.ones(test.num_rows)
    user_pos = {u: i for i, u in enumerate(data.user_ids)}
    item_pos = data.train.item_index
    grade = {}
    median = float(np.median(weight)) if len(weight) else 0.0
    for u, t, w in zip(test.column("user_id").to_pylist(), test.column("item_id").to_pylist(), weight):
        if u in user_pos and t in item_pos:
            key = (user_pos[u], item_pos[t])
            grade[key] = max(grade.get(key, 0), 2 if w > median else 1)
    return np.array([grade.get((r, c), 0) for r, c in zip(cands.row, cands.col)], dtype=np.int32)


def _top_k(order_scores: np.ndarray, cands: CandidateSet, n_users: int, k: int = K,
           rerank=None) -> np.ndarray:
    """Each user's candidates ordered by `order_scores` (higher first), cut to k; `rerank(cols, scores)` may reorder
    a user's best candidates (returns positions into them)."""
    recs = np.full((n_users, k), -1, dtype=np.int64)
    order = np.lexsort((-order_scores, cands.row))
    rows, cols, scores = cands.row[order], cands.col[order], order_scores[order]
    starts = np.searchsorted(rows, np.arange(n_users))
    ends = np.searchsorted(rows, np.arange(n_users), side="right")
    for u in range(n_users):
        mine, values = cols[starts[u]:ends[u]], scores[starts[u]:ends[u]]
        top = mine[rerank(mine, values)] if rerank is not None and len(mine) else mine[:k]
        recs[u, :len(top)] = top[:k]
    return recs


def _stage(con, split: Split, events: str, quotas: dict[str, int] | None, impressions: bool = False,
           definitions: Sequence[Definition] = BUILTIN, policy: FilterPolicy | None = None,
           vector_index: dict | None = None):
    """Candidates of `split`'s test users as of its cut, filtered, with their feature rows; what the filter removed."""
    data = prepare(split)
    at = _cut_time(split)
    cands, sources, _ = gather_candidates(con, data, at, events, quotas, vector_index=vector_index)
    if impressions:
        cands = with_impressed(con, cands, data, at, _period_end(split), events)
    removed: dict[str, int] = {}
    filt = catalog_filter(con, policy)
    if filt is not None:  # before features: the ranker learns and ranks only what may be shown
        cands, removed = filter_candidates(cands, data.train.item_ids, user_contexts(con, data.user_ids), filt, at)
    features, names = _features(con, cands, data, at, events, definitions)
    factors = next((src.model for src in sources if isinstance(getattr(src, "model", None), FactorModel)), None)
    if factors is not None:  # similarity to recent watches, in the factor model's item space
        recent = recent_titles(con, events, [str(u) for u in data.user_ids], at)
        by_row = {r: recent[str(u)] for r, u in enumerate(data.user_ids) if str(u) in recent}
        column = recent_similarity(unit_vectors(factors.item_factors_), data.train.item_index, by_row, cands.row,
                                   cands.col)
        features, names = np.column_stack([features, column]), [*names, SIMILARITY]
    return data, cands, features, names, sources, removed


def _period_end(split: Split) -> datetime:
    """Just after the last interaction of the split's test period."""
    return pd.Timestamp(pa.compute.max(split.test.column("last_ts")).as_py()).to_pydatetime() + timedelta(seconds=1)


def with_impressed(con: duckdb.DuckDBPyConnection, cands: CandidateSet, data: EvalData, start: datetime,
                   end: datetime, events: str) -> CandidateSet:
    """The candidates plus the titles shown to each user in [start, end) but not engaged with there: real negatives
    for the ranker's training (shown, not chosen), beside the candidates nobody watched. They come from no source
    (origin -1, no source score or rank)."""
    rows = con.execute(
        f"SELECT user_id, item_id FROM {events} WHERE type = 'impression' AND ts >= ? AND ts < ? "
        f"EXCEPT SELECT user_id, item_id FROM {events} WHERE type IN ('play', 'progress', 'complete') "
        "AND ts >= ? AND ts < ?", [start, end, start, end]).fetchall()
    user_row = {u: i for i, u in enumerate(data.user_ids)}
    item_col = data.train.item_index
    n_items = data.train.n_items
    have = set((cands.row.astype(np.int64) * n_items + cands.col).tolist())
    seen = data.history.tocsr()
    extra = []
    for user, item in rows:
        r, c = user_row.get(user), item_col.get(item)
        if r is None or c is None or r * n_items + c in have:
            continue
        if c in seen.indices[seen.indptr[r]:seen.indptr[r + 1]]:
            continue
        extra.append(r * n_items + c)
    if not extra:
        return cands
    keys = np.concatenate([cands.row.astype(np.int64) * n_items + cands.col, np.unique(extra)])
    order = np.argsort(keys, kind="stable")
    n_new = len(keys) - len(cands.row)
    pad = lambda a, v: np.concatenate([a, np.full((*a.shape[:-1], n_new), v, a.dtype)], axis=-1)  # noqa: E731
    return CandidateSet(cands.sources, (keys // n_items)[order], (keys % n_items)[order],
                        pad(cands.origin, -1)[order], pad(cands.score, np.nan)[:, order], pad(cands.rank, -1)[:, order])


def _example(user: int, recs: np.ndarray, scores: np.ndarray, cands: CandidateSet, data: EvalData,
             features: np.ndarray, names: list[str], model: Ranker, similarity: np.ndarray) -> list[Explanation]:
    """One user's ranked list explained: source, seed title, score, the features that pushed it up."""
    cols = recs[user][recs[user] >= 0]
    mine = np.flatnonzero(cands.row == user)
    at = {int(c): int(i) for c, i in zip(cands.col[mine], mine)}
    idx = np.array([at[int(c)] for c in cols], dtype=np.int64)
    return explain(data.train.item_ids, cols, scores[idx], [cands.sources[o] for o in cands.origin[idx]],
                   data.history[user], similarity, model.contributions(features[idx]), names)


def train_ranker(con: duckdb.DuckDBPyConnection, split: Split, events: str = "events",
                 quotas: dict[str, int] | None = None, ranker: RankerConfig | None = None,
                 policy: FilterPolicy | None = None, definitions: Sequence[Definition] = BUILTIN,
                 impressions: bool = False, vector_index: dict | None = None) -> tuple[Ranker, dict[str, int]]:
    """The ranker learned on `split`'s test period: candidates as of its cut (filtered), graded labels from what was
    watched after it. Returns the ranker and what it learned from.

    Raises:
        DataError: no watched title among the candidates.
    """
    data, cands, x, names, _, _ = _stage(con, split, events, quotas, impressions=impressions,
                                         definitions=definitions, policy=policy, vector_index=vector_index)
    labels = _labels(cands, data, split)
    if not (labels > 0).any():
        raise DataError("pipeline", "no watched title among the candidates of the ranker's training period")
    groups = np.bincount(cands.row)
    groups = groups[groups > 0]  # candidates are sorted by row already (gather returns them by (row, title))
    model = Ranker(ranker).fit(x, labels, groups, names)
    return model, {"ranker_training_rows": int(len(labels)), "ranker_positives": int((labels > 0).sum()),
                   "ranker_impression_negatives": int((cands.origin < 0).sum())}


def evaluate_pipeline(con: duckdb.DuckDBPyConnection, table: pa.Table, split: SplitConfig | None = None,
                      quotas: dict[str, int] | None = None, ranker: RankerConfig | None = None,
                      events: str = "events", diversity: float = 0.3, impressions: bool = False,
                      definitions: Sequence[Definition] = BUILTIN, policy: FilterPolicy | None = None,
                      vector_index: dict | None = None) -> PipelineReport:
    """Each source alone vs the ranked union (and the union re-ranked by MMR over genres with weight `diversity`,
    when the catalog has genres), on the temporal test period of `table` (interactions with last_ts).
    With `impressions`, titles shown but not engaged with in the ranker's training period join its negatives
    (off by default: on the synthetic worlds they cost about 1% NDCG@10, see bench/pipeline.py --impressions).
    `definitions` are the ranker's user, title and user × title features (besides every source's score and rank).
    ALS answers through a `vector_index` (config; default exact numpy, {"type": "faiss"} approximate).
    Candidates pass the catalog's filters (`policy`; region availability and maturity as of each cut) before the
    ranker learns or ranks, so no stage can show a forbidden title.

    Raises:
        DataError: too little data for the ranker's own training period.
    """
    began = time.perf_counter()
    split = split or SplitConfig()
    outer = temporal_split(table, quantile=split.quantile)
    inner = temporal_split(outer.train, quantile=split.quantile)
    model, counts = train_ranker(con, inner, events, quotas, ranker, policy, definitions, impressions, vector_index)
    data, cands, test_x, _, sources, removed = _stage(con, outer, events, quotas, definitions=definitions,
                                                      policy=policy, vector_index=vector_index)
    report = PipelineReport()
    n_users = len(data.user_ids)
    genres = _genres(con, data.train.item_ids)
    stages: dict[str, np.ndarray] = {}
    for s, name in enumerate(cands.sources):
        proposed = cands.rank[s] >= 0
        stages[name] = _top_k(np.where(proposed, -cands.rank[s].astype(np.float32), -np.inf), cands, n_users)
    ranked_scores = model.score(test_x)
    stages["ranked pipeline"] = _top_k(ranked_scores, cands, n_users)
    if genres is not None and diversity > 0:
        pool = 5 * K  # MMR picks the list from the ranker's best 50

        def rerank(cols: np.ndarray, scores: np.ndarray) -> np.ndarray:
            return mmr(scores[:pool], genres[cols[:pool]], K, diversity)

        stages["ranked + diversity"] = _top_k(ranked_scores, cands, n_users, rerank=rerank)
    popularity = np.asarray((data.train.matrix > 0).sum(axis=0)).ravel()  # training users per title
    for name, recs in stages.items():
        report.ndcg[name] = float(M.ndcg_at_k(recs, data.relevant, K).mean())
        report.coverage[name] = M.catalog_coverage(recs, data.train.n_items, K)
        report.novelty[name] = float(M.novelty(recs, popularity, data.train.n_users, K).mean())
        if genres is not None:
            report.diversity[name] = float(M.intra_list_diversity(recs, genres, K).mean())
    report.recall = candidate_recall(cands, data.relevant)
    ease = next((src.model for src in sources if src.name == "ease"), None)
    if ease is not None and n_users:
        report.example = (str(data.user_ids[0]), _example(0, stages["ranked pipeline"], ranked_scores, cands, data,
                                                           test_x, model.names_, model, ease.weights_))
    report.importance = dict(list(model.importance().items())[:10])
    report.counts = {**counts, "test_users": int(len(data.user_ids)), "candidates": int(len(cands.row))}
    report.counts.update({f"filtered_{reason}": n for reason, n in removed.items()})
    report.lists, report.user_ids, report.item_ids = stages, data.user_ids, data.train.item_ids
    report.ranker, report.test_features, report.test_rows = model, test_x, cands.row
    report.seconds = time.perf_counter() - began
    return report


@dataclass
class RankerExamples:
    """The ranker's input for one split: a feature row per candidate of its test users as of its cut (columns
    `names`), graded labels from its test period, and the group sizes (one group per user, rows in group order)."""

    data: EvalData
    cands: CandidateSet
    features: np.ndarray
    names: list[str]
    labels: np.ndarray
    groups: np.ndarray
    at: datetime  # the cut: features and candidates see only what happened before it


def ranker_examples(con: duckdb.DuckDBPyConnection, split: Split, events: str = "events",
                    quotas: dict[str, int] | None = None, definitions: Sequence[Definition] = BUILTIN,
                    policy: FilterPolicy | None = None) -> RankerExamples:
    """The ranker's training (or validation) rows for `split`, built as `evaluate_pipeline` builds its own
    (filtered candidates, the same features), so feature sets can be compared on any split of the training period
    (see streamrec.features.selection)."""
    data, cands, features, names, _, _ = _stage(con, split, events, quotas, definitions=definitions, policy=policy)
    groups = np.bincount(cands.row)
    return RankerExamples(data, cands, features, names, _labels(cands, data, split), groups[groups > 0],
                          _cut_time(split))


def ranked_ndcg(examples: RankerExamples, scores: np.ndarray, k: int = K) -> np.ndarray:
    """NDCG@k of each of the examples' users, their candidates ordered by `scores` (one per row)."""
    recs = _top_k(scores, examples.cands, len(examples.data.user_ids), k)
    return M.ndcg_at_k(recs, examples.data.relevant, k)


__all__ = ["PipelineReport", "RankerExamples", "evaluate_pipeline", "ranked_ndcg", "ranker_examples"]
