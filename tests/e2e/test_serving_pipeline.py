"""The ranked pipeline at request time on a real (tiny) synthetic world: a fitted bundle saved and loaded, features
materialized into the online store, and requests that never fail on bad input and never show a forbidden title."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from streamrec.errors import ChecksumError
from streamrec.features import events_relation
from streamrec.features.context import context_time
from streamrec.features.materialize import materialize
from streamrec.pipeline.bundle import PipelineBundle, fit_bundle, is_bundle
from streamrec.pipeline.serving import OnlinePipeline, ServingCatalog
from streamrec.pipeline.similarity import NAME as SIMILARITY, recent_similarity, recent_titles, unit_vectors
from streamrec.pipeline.stages import feature_rows
from streamrec.settings import DuckDBEventStoreConfig, FilterPolicy, PipelineConfig, RankerConfig
from streamrec.storage.events.duckdb import DuckDBEventStore
from streamrec.storage.online import HistoryEntry, MemoryOnlineStore


@pytest.fixture(scope="module")
def served(tiny_world_store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    with DuckDBEventStore(DuckDBEventStoreConfig(), tiny_world_store) as store:
        con = store.con
        events = events_relation(con)
        table = con.sql("SELECT user_id, item_id, weight, last_ts FROM interactions").to_arrow_table()
        blocked = con.execute("SELECT item_id FROM interactions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
        config = PipelineConfig(filters=FilterPolicy(blocklist=[blocked]), ranker=RankerConfig(n_estimators=30))
        fit_bundle(con, table, events, config).save(folder)
        bundle = PipelineBundle.load(folder)
        at = con.execute(f"SELECT max(ts) FROM {events}").fetchone()[0] + timedelta(seconds=1)
        online = MemoryOnlineStore()
        materialize(con, online, at, events, bundle.definitions)
        catalog = ServingCatalog.from_store(con)
        users = [r[0] for r in con.execute("SELECT DISTINCT user_id FROM interactions ORDER BY 1").fetchall()]
        pipeline = OnlinePipeline(bundle, catalog, online)
        yield {"pipeline": pipeline, "at": at, "users": users, "blocked": blocked, "folder": folder,
               "store": online, "tiny": tiny_world_store}


def forbidden(pipeline: OnlinePipeline, user: str, at, region=None) -> set[str]:
    ctx = pipeline._context(user, region, pipeline.store.history(user), ())
    allowed, _ = pipeline.filter.allowed(ctx, at)
    return {item for item, ok in zip(pipeline.filter.item_ids, allowed) if not ok}


def test_the_bundle_is_a_saved_model_with_checksums(served, tmp_path):
    folder = served["folder"]
    assert is_bundle(folder) and not is_bundle(tmp_path)
    bundle = PipelineBundle.load(folder)
    assert set(bundle.models) == {"ease", "als", "trending"} and bundle.ranker.names_
    definitions = folder / "definitions.json"
    original = definitions.read_text()
    try:
        definitions.write_text(original.replace("user_plays_1d", "user_plays_2d"))
        with pytest.raises(ChecksumError):
            PipelineBundle.load(folder)
    finally:
        definitions.write_text(original)


def test_requests_return_k_allowed_titles_with_provenance(served):
    pipeline, at = served["pipeline"], served["at"]
    answered = 0
    for user in served["users"][:40]:
        result = pipeline.recommend(user, k=10, at=at, explain_items=True)
        assert len(result.items) == len(set(result.items)) <= 10
        assert not set(result.items) & forbidden(pipeline, user, at)
        assert served["blocked"] not in result.items
        assert result.fallback is None and len(result.explanations) == len(result.items)
        assert set(result.sources) <= {"ease", "als", "trending", "continue_watching", "new_releases"}
        answered += bool(result.items)
    assert answered >= 30
    assert pipeline.counters["filtered_blocklist"] > 0


def test_a_broken_ranker_falls_back_to_the_source_order_still_filtered(served):
    pipeline, at = served["pipeline"], served["at"]
    user = served["users"][1]
    names = pipeline.bundle.ranker.names_
    pipeline.bundle.ranker.names_ = names[:-1]  # a ranker that no longer accepts the rows: it raises on score()
    try:
        result = pipeline.recommend(user, at=at, explain_items=True, exclude=["t000001"])
    finally:
        pipeline.bundle.ranker.names_ = names
    assert result.fallback == "candidate_scores" and result.counts["ranker_failed"] == 1
    assert result.items and not set(result.items) & (forbidden(pipeline, user, at) | {"t000001"})


def test_unknown_history_titles_and_missing_or_stale_features_are_counted_not_fatal(served):
    pipeline, at = served["pipeline"], served["at"]
    store: MemoryOnlineStore = served["store"]
    region = next(r for r, _ in pipeline.profiles.values() if r)
    store.add_history("newcomer", [HistoryEntry("not-a-title", at - timedelta(hours=1), "play"),
                                   HistoryEntry(pipeline.item_ids[0], at - timedelta(hours=1), "play")])
    result = pipeline.recommend("newcomer", at=at, region=region)
    assert result.items and result.counts["unknown_history_titles"] == 1
    assert result.counts["missing_user_features"] == 1  # never materialized
    later = pipeline.recommend(served["users"][2], at=at + timedelta(days=10))
    assert later.counts["stale_user_features"] == 1 and later.counts["stale_title_features"] > 0
    assert later.items


def test_one_play_changes_the_next_list_without_retraining(served):
    pipeline, at = served["pipeline"], served["at"]
    store: MemoryOnlineStore = served["store"]
    user = served["users"][3]
    before = pipeline.recommend(user, at=at, diversity=0.0)
    watched = before.items[0]
    store.add_history(user, [HistoryEntry(watched, at - timedelta(seconds=1), "complete", 1.0)])
    after = pipeline.recommend(user, at=at, diversity=0.0)
    assert watched not in after.items and after.items != before.items


def test_online_feature_rows_equal_the_offline_rows(served):
    """The title, user and genre-match columns the request builds equal the offline point-in-time ones."""
    pipeline, at = served["pipeline"], served["at"]
    # the user with the most distinct watched titles: more than the recent ones the similarity looks at
    user = max(served["users"], key=lambda u: len({e.item_id for e in pipeline.store.history(u)}))
    entries = pipeline.store.history(user)
    assert len({e.item_id for e in entries if e.type in ("play", "progress", "complete")}) > 5
    cands = pipeline.candidates(user, at).cands  # after the filters: the rows the ranker sees
    online = pipeline.features(user, cands, entries, at, Counter(), device="tv")
    with DuckDBEventStore(DuckDBEventStoreConfig(), served["tiny"]) as store:
        request = pa.table({"ts": pa.array([context_time(at)], pa.timestamp("us")), "device": ["tv"]})
        offline, names = feature_rows(store.con, cands, np.array([user], dtype=object), pipeline.item_ids, at,
                                      events_relation(store.con), pipeline.bundle.definitions, request)
        recent = recent_titles(store.con, events_relation(store.con), [user], at)
    similarity = recent_similarity(unit_vectors(pipeline.bundle.models["als"].item_factors_), pipeline.index,
                                   {0: recent[user]}, cands.row, cands.col)
    offline, names = np.column_stack([offline, similarity]), [*names, SIMILARITY]
    shared = [n for n in names if not n.endswith(("_score", "_rank"))]
    assert SIMILARITY in pipeline.names and np.isfinite(similarity).any()
    assert {"context_hour", "context_weekday", "context_device"} <= set(shared)
    for n in shared:
        np.testing.assert_allclose(online[:, pipeline.names.index(n)], offline[:, names.index(n)], rtol=1e-5,
                                   equal_nan=True, err_msg=n)


# --- the request path over kept pools (DESIGN.md "The serving path") ------------------------------------------------
def pooled(served, ttl_s: float = 600.0, name: str = "v1") -> OnlinePipeline:
    """A second pipeline over the same bundle and store whose requests read kept ranked pools."""
    base = served["pipeline"]
    bundle = PipelineBundle.load(served["folder"])
    with DuckDBEventStore(DuckDBEventStoreConfig(), served["tiny"]) as store:
        catalog = ServingCatalog.from_store(store.con)
    return OnlinePipeline(bundle, catalog, base.store, ranked_ttl_s=ttl_s, name=name)


def test_the_request_path_over_a_kept_pool_answers_as_the_full_pipeline(served):
    full, at = served["pipeline"], served["at"]
    fast = pooled(served)
    for user in served["users"][:12]:
        for kwargs in ({"k": 10}, {"k": 20, "diversity": 0.0}, {"k": 5, "exclude": full.recommend(user, at=at).items[:3]},
                       {"k": 10, "region": "XX"}, {"k": 10, "device": "tv"}):
            want = full.recommend(user, at=at, **kwargs)
            first, again = fast.recommend(user, at=at, **kwargs), fast.recommend(user, at=at, **kwargs)
            assert first.counts.get("ranked_pool_refresh", 0) + first.counts.get("ranked_pool_hit", 0) == 1
            assert again.counts.get("ranked_pool_hit", 0) == 1 and "candidates" not in again.timings_ms
            for got in (first, again):
                assert (got.items, got.sources, got.fallback) == (want.items, want.sources, want.fallback), (user, kwargs)
                np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_a_new_event_or_the_ttl_makes_the_next_request_rank_again(served):
    at, store = served["at"], served["store"]
    fast = pooled(served, ttl_s=600.0, name="v-fresh")
    user = served["users"][5]
    before = fast.recommend(user, at=at, diversity=0.0)
    assert fast.recommend(user, at=at + timedelta(seconds=599), diversity=0.0).counts.get("ranked_pool_hit", 0) == 1
    assert fast.recommend(user, at=at + timedelta(seconds=601), diversity=0.0).counts.get("ranked_pool_refresh", 0) == 1
    watched = before.items[0]
    store.add_history(user, [HistoryEntry(watched, at - timedelta(seconds=2), "complete", 1.0)])
    after = fast.recommend(user, at=at, diversity=0.0)
    assert after.counts.get("ranked_pool_refresh", 0) == 1 and watched not in after.items
    store.hide(user, after.items[0])  # hidden titles are a request-time rule: the kept pool answers without it
    hidden = fast.recommend(user, at=at, diversity=0.0)
    assert hidden.counts.get("ranked_pool_hit", 0) == 1 and after.items[0] not in hidden.items
    assert hidden.items[:5] == after.items[1:6]


def test_pools_are_kept_per_model_and_explanations_take_the_full_path(served):
    at = served["at"]
    user = served["users"][6]
    one, other = pooled(served, name="model-a"), pooled(served, name="model-b")
    one.recommend(user, at=at)
    assert other.recommend(user, at=at).counts.get("ranked_pool_refresh", 0) == 1  # another model never reads a's pool
    explained = one.recommend(user, at=at, explain_items=True)
    assert explained.explanations and "ranked_pool_hit" not in explained.counts
    many = one.recommend(user, at=at, k=10, exclude=one.recommend(user, at=at, k=100).items[:95])
    assert "candidates" in many.timings_ms  # a cut pool cannot spare 95 exclusions: the full pipeline answers
    assert not set(many.items) & set(one.recommend(user, at=at, k=100).items[:95])


def test_refresh_keeps_a_pool_for_the_request_path(served):
    at, user = served["at"], served["users"][7]
    fast = pooled(served, name="v-batch")
    pool = fast.refresh(user, at)
    assert 0 < len(pool.items) <= fast.pool_size and list(pool.scores) == sorted(pool.scores, reverse=True)
    assert fast.recommend(user, at=at).counts.get("ranked_pool_hit", 0) == 1
