"""The candidate stage measured on its own: on a held-out split, how many of the test positives each source, and
the union, puts into the candidate set (the ranker can only order what the candidates contain)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from streamrec.evaluation.runner import prepare
from streamrec.pipeline.candidates import candidate_recall
from streamrec.pipeline.filters import catalog_filter, filter_candidates, user_contexts
from streamrec.pipeline.sources import gather_candidates
from streamrec.settings import FilterPolicy, SplitConfig


@dataclass
class RecallReport:
    """Recall of each source and of the union, with the split's counts."""

    split: dict
    quotas: dict[str, int]
    recall: dict[str, float] = field(default_factory=dict)
    candidates_per_user: float = 0.0
    filtered: dict[str, int] = field(default_factory=dict)  # candidates removed by the filters, per reason
    seconds: float = 0.0


def candidate_stage_recall(con: duckdb.DuckDBPyConnection, table: pa.Table, split: SplitConfig | None = None,
                           quotas: dict[str, int] | None = None, events: str = "events",
                           policy: FilterPolicy | None = None) -> RecallReport:
    """Fit the sources on the train part of `split` (default: temporal), gather candidates for the test users,
    drop what the catalog's filters forbid (`policy`), and measure recall against their test interactions."""
    from streamrec.training.train import make_split

    began = time.perf_counter()
    parts = make_split(table, split or SplitConfig())
    data = prepare(parts)
    until = pc.max(parts.train.column("last_ts")).as_py()
    at = until + timedelta(microseconds=1)
    cands, _, used = gather_candidates(con, data, at, events, quotas, only=quotas.keys() if quotas else None)
    filt = catalog_filter(con, policy)
    removed: dict[str, int] = {}
    if filt is not None:
        cands, removed = filter_candidates(cands, data.train.item_ids, user_contexts(con, data.user_ids), filt, at)
    return RecallReport(split=parts.summary(), quotas=used, recall=candidate_recall(cands, data.relevant),
                        filtered=removed,
                        candidates_per_user=len(cands.row) / max(len(data.user_ids), 1),
                        seconds=time.perf_counter() - began)
