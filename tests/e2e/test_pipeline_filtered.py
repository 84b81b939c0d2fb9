"""The ranked pipeline on a real (tiny) synthetic world: no stage, the trending fallback included, ever lists a
title the filters forbid at the time of the list."""

from __future__ import annotations

import numpy as np

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.features import events_relation
from streamrec.pipeline.filters import catalog_filter, user_contexts
from streamrec.pipeline.stages import _cut_time, evaluate_pipeline
from streamrec.evaluation.splits import temporal_split
from streamrec.settings import DuckDBEventStoreConfig, FilterPolicy, PipelineConfig, RankerConfig
from streamrec.storage.events.duckdb import DuckDBEventStore


def test_no_stage_lists_a_forbidden_title(tiny_world_store):
    with DuckDBEventStore(DuckDBEventStoreConfig(), tiny_world_store) as store:
        con = store.con
        table = con.sql("SELECT user_id, item_id, weight, last_ts FROM interactions").to_arrow_table()
        popular = [r[0] for r in con.execute(
            "SELECT item_id FROM interactions GROUP BY 1 ORDER BY count(*) DESC LIMIT 5").fetchall()]
        policy = FilterPolicy(blocklist=popular)
        report = evaluate_pipeline(con, table, events=events_relation(con), policy=policy,
                                   ranker=RankerConfig(n_estimators=20), quotas=PipelineConfig().quotas)
        at = _cut_time(temporal_split(table))
        filt = catalog_filter(con, policy)
        contexts = user_contexts(con, report.user_ids)
        limits = {c.maturity_limit for c in contexts}
    assert report.counts["filtered_blocklist"] > 0, "the blocklisted popular titles were proposed and removed"
    assert report.counts["filtered_region"] + report.counts["filtered_maturity"] > 0
    assert len(limits) > 1 and set(limits) <= set(MATURITY_LEVELS), "the world has profiles of several limits"
    assert {"trending", "ranked pipeline", "ranked + diversity"} <= set(report.lists)
    listed = 0
    for stage, recs in report.lists.items():
        for row, user in enumerate(contexts):
            allowed, _ = filt.allowed(user, at)
            titles = [report.item_ids[c] for c in recs[row] if c >= 0]
            listed += len(titles)
            bad = [t for t in titles if t in filt.index and not allowed[filt.index[t]] or t not in filt.index]
            assert not bad, f"{stage} lists forbidden titles {bad} to {report.user_ids[row]}"
            assert not set(titles) & set(popular)
    assert listed > 0
    assert np.isfinite(report.ndcg["ranked pipeline"])
