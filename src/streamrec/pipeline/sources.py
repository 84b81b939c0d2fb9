"""The candidate sources as of a time: models fitted on the history, plus lists from the events (continue watching)
and the catalog (new releases)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from streamrec.data.interactions import Interactions
from streamrec.evaluation.runner import EvalData
from streamrec.models import Recommender, create_model
from streamrec.features.offline import has_table
from streamrec.settings import PipelineConfig
from streamrec.pipeline.candidates import (
    CandidateSet,
    FixedListSource,
    ModelSource,
    PerUserListSource,
    VectorSource,
    gather,
)
from streamrec.models._factors import FactorModel
from streamrec.storage.vectors import open_vector_index

QUOTAS = PipelineConfig().quotas  # the default quotas, one place (settings)
DEFAULT_QUOTA = 20
NEW_RELEASE_DAYS = 60.0
CONTINUE_FINISHED = 0.9  # a title watched past this fraction is finished, not continued
# The sources that are fitted models: name → (model, hyperparameters). Trending is popularity with a 7-day half-life.
MODEL_SOURCES: dict[str, tuple[str, dict]] = {"ease": ("ease", {}), "als": ("als", {}),
                                              "trending": ("popularity", {"half_life_days": 7.0})}


def fit_model_sources(train: Interactions) -> dict[str, Recommender]:
    """The model sources, fitted on `train`, in priority order."""
    return {name: create_model(model, params).fit(train) for name, (model, params) in MODEL_SOURCES.items()}


def model_sources(models: dict[str, Recommender], vector_index: dict | None = None) -> list:
    """Fitted models as candidate sources; a factor model (ALS) answers through a vector index of its item
    vectors (`vector_index` config, default exact)."""
    out: list = []
    for name, model in models.items():
        if isinstance(model, FactorModel):
            index = open_vector_index(vector_index or {"type": "exact"}).build(model.item_factors_)
            out.append(VectorSource(name, model, index))
        else:
            out.append(ModelSource(name, model))
    return out


def build_sources(con: duckdb.DuckDBPyConnection, data: EvalData, at: datetime, events: str = "events",
                  vector_index: dict | None = None) -> list:
    """Every candidate source as of `at`: EASE and ALS from the history, trending, continue watching (from the
    events before `at`), and new releases (from the catalog), each fitted on `data.train`."""
    sources = model_sources(fit_model_sources(data.train), vector_index)
    started = continue_watching(con, data, at, events)
    if started:
        sources.append(PerUserListSource("continue_watching", started, data.train.n_items))
    titles = con.sql("SELECT * FROM titles").to_arrow_table() if has_table(con, "titles") else None
    fresh = new_release_cols(titles, data.train.item_ids, at, NEW_RELEASE_DAYS)
    if len(fresh):
        sources.append(FixedListSource("new_releases", fresh, data.train.n_items))
    return sources


def gather_candidates(con: duckdb.DuckDBPyConnection, data: EvalData, at: datetime, events: str = "events",
                      quotas: dict[str, int] | None = None, only: Iterable[str] | None = None,
                      vector_index: dict | None = None) -> tuple[CandidateSet, list, dict[str, int]]:
    """Build the sources as of `at` (only those named in `only`, when given) and gather their candidates for
    `data`'s users, each up to its quota in `quotas` (default QUOTAS; DEFAULT_QUOTA for a source not in it).
    Factor-model sources search their item vectors in a `vector_index` (config; default exact).

    Returns:
        The candidates, the sources, and the quota each source got.
    """
    sources = build_sources(con, data, at, events, vector_index)
    if only is not None:
        wanted = set(only)
        sources = [src for src in sources if src.name in wanted]
    quotas = quotas or QUOTAS
    used = {src.name: quotas.get(src.name, DEFAULT_QUOTA) for src in sources}
    return gather(sources, used, data.history, data.rows), sources, used


def continue_watching(con: duckdb.DuckDBPyConnection, data: EvalData, at: datetime, events: str,
                      finished: float = CONTINUE_FINISHED) -> dict[int, np.ndarray]:
    """Per test user: titles started before `at` but neither completed nor watched past `finished`, latest first."""
    rows = con.execute(
        f"SELECT user_id, item_id FROM (SELECT user_id, item_id, max(ts) AS last, max(fraction) AS f, "
        f"bool_or(type = 'complete') AS done FROM {events} WHERE ts < ? AND type IN ('play', 'progress', 'complete') "
        "GROUP BY ALL) WHERE NOT done AND coalesce(f, 0) < ? ORDER BY user_id, last DESC", [at, finished]).fetchall()
    user_row = {u: i for i, u in enumerate(data.user_ids)}
    item_col = data.train.item_index
    lists: dict[int, list[int]] = {}
    for user, item in rows:
        if user in user_row and item in item_col:
            lists.setdefault(user_row[user], []).append(item_col[item])
    return {row: np.asarray(cols, dtype=np.int64) for row, cols in lists.items()}


def new_release_cols(titles: pa.Table | None, item_ids: np.ndarray, until, days: float) -> np.ndarray:
    """Columns of the titles released in the `days` before `until`, newest first (none without a catalog)."""
    if titles is None or titles.num_rows == 0 or "release_date" not in titles.column_names:
        return np.zeros(0, dtype=np.int64)
    index = {item: i for i, item in enumerate(item_ids)}
    start = (until - timedelta(days=days)).date()
    rows = [(r["release_date"], index[r["item_id"]]) for r in titles.select(["item_id", "release_date"]).to_pylist()
            if r["release_date"] is not None and r["item_id"] in index and start <= r["release_date"] <= until.date()]
    return np.array([col for _, col in sorted(rows, key=lambda x: x[0], reverse=True)], dtype=np.int64)
