"""The candidate stage measured on its own: on a held-out split, how many of the test positives each source, and
the union, puts into the candidate set (the ranker can only order what the candidates contain)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamrec.evaluation.runner import prepare
from streamrec.models import create_model
from streamrec.pipeline.candidates import FixedListSource, ModelSource, candidate_recall, gather
from streamrec.settings import SplitConfig

DEFAULT_QUOTAS = {"ease": 100, "als": 100, "trending": 50, "new_releases": 20}


@dataclass
class RecallReport:
    """Recall of each source and of the union, with the split's counts."""

    split: dict
    quotas: dict[str, int]
    recall: dict[str, float] = field(default_factory=dict)
    candidates_per_user: float = 0.0
    seconds: float = 0.0


def new_release_cols(titles: pa.Table | None, item_ids: np.ndarray, until, days: float) -> np.ndarray:
    """Columns of the titles released in the `days` before `until`, newest first (none without a catalog)."""
    if titles is None or titles.num_rows == 0 or "release_date" not in titles.column_names:
        return np.zeros(0, dtype=np.int64)
    index = {item: i for i, item in enumerate(item_ids)}
    start = (until - timedelta(days=days)).date()
    rows = [(r["release_date"], index[r["item_id"]]) for r in titles.select(["item_id", "release_date"]).to_pylist()
            if r["release_date"] is not None and r["item_id"] in index and start <= r["release_date"] <= until.date()]
    return np.array([col for _, col in sorted(rows, key=lambda x: x[0], reverse=True)], dtype=np.int64)


def candidate_stage_recall(table: pa.Table, titles: pa.Table | None = None, split: SplitConfig | None = None,
                           quotas: dict[str, int] | None = None, new_release_days: float = 60.0) -> RecallReport:
    """Fit the sources on the train part of `split` (default: temporal), gather candidates for the test users,
    and measure recall against their test interactions."""
    from streamrec.training.train import make_split

    began = time.perf_counter()
    quotas = dict(quotas or DEFAULT_QUOTAS)
    parts = make_split(table, split or SplitConfig())
    data = prepare(parts)
    train = data.train
    until = pc.max(parts.train.column("last_ts")).as_py() if "last_ts" in parts.train.column_names else None
    sources = []
    if "ease" in quotas:
        sources.append(ModelSource("ease", create_model("ease").fit(train)))
    if "als" in quotas:
        sources.append(ModelSource("als", create_model("als").fit(train)))
    if "trending" in quotas:
        sources.append(ModelSource("trending", create_model("popularity", half_life_days=7.0).fit(train)))
    if "new_releases" in quotas and until is not None:
        cols = new_release_cols(titles, train.item_ids, until, new_release_days)
        if len(cols):
            sources.append(FixedListSource("new_releases", cols, train.n_items))
    quotas = {s.name: quotas[s.name] for s in sources}
    cands = gather(sources, quotas, data.history, data.rows)
    return RecallReport(split=parts.summary(), quotas=quotas, recall=candidate_recall(cands, data.relevant),
                        candidates_per_user=len(cands.row) / max(len(data.user_ids), 1),
                        seconds=time.perf_counter() - began)
