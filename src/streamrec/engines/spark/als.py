"""ALS trained by Spark MLlib, kept as the embedded `als` model (same factors, same artifact: serving cannot tell
which engine trained it), and batch top-k for many users scored on Spark with the model's own scoring code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Self

import numpy as np
import pyarrow as pa

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError, DataError
from streamrec.models.als import ALS
from streamrec.models.base import Recommender, top_k
from streamrec.settings import SparkConfig
from streamrec.training.batch import _long, _model_rows

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession


class SparkALS(ALS):
    """Implicit-feedback ALS fitted by `pyspark.ml.recommendation.ALS` (implicitPrefs): confidence 1 + alpha × weight,
    MLlib's regularization (scaled by each user's and title's count of interactions, so the same number regularizes
    more than implicit's). Saved, loaded and served as `als`; unknown users are folded in as ALS does."""

    spark_config: SparkConfig | None = None  # the session to use (default: the active one, else [spark] defaults)

    def fit(self, data: Interactions) -> Self:
        """Factorise the weights on Spark.

        Returns:
            self, with `user_factors_` and `item_factors_` (float32) in the rows and columns of `data`.
        """
        from pyspark.ml.recommendation import ALS as MLlibALS

        from streamrec.engines.spark.session import spark_session

        self._check_data(data)
        spark = spark_session(self.spark_config)
        coo = data.matrix.tocoo()
        ratings = spark.createDataFrame(pa.table({"user": pa.array(coo.row, pa.int32()),
                                                  "item": pa.array(coo.col, pa.int32()),
                                                  "weight": pa.array(coo.data, pa.float32())}))
        cfg = self.config
        estimator = MLlibALS(rank=cfg.factors, maxIter=cfg.iterations, regParam=cfg.regularization, alpha=cfg.alpha,
                             implicitPrefs=True, seed=cfg.seed, userCol="user", itemCol="item", ratingCol="weight",
                             coldStartStrategy="drop")
        model = estimator.fit(ratings)
        users = _factors(model.userFactors, data.n_users, cfg.factors)
        items = _factors(model.itemFactors, data.n_items, cfg.factors)
        self._store(users, items, data.user_ids, data.item_ids)
        return self


def _factors(frame, rows: int, rank: int) -> np.ndarray:
    """MLlib's (id, features) factor rows as a dense matrix; ids without a row (no interactions) stay zero."""
    table = frame.toArrow()
    out = np.zeros((rows, rank), dtype=np.float32)
    ids = table.column("id").to_numpy()
    values = table.column("features").combine_chunks()
    if len(ids):
        out[ids] = np.asarray(values.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(ids), rank)
    return out


def recommend_all(model: Recommender, data: Interactions, user_ids: np.ndarray, k: int,
                  spark: "SparkSession | None" = None, exclude_seen: bool = True) -> pa.Table:
    """Top-k per user on Spark, as `training.batch.recommend_batch` answers (user_id, rank, item_id, score, source).

    Each task scores a block of users with the model's own `recommend` (the model is broadcast once); users with
    neither history nor factors get the most popular titles of `data` (source 'popular').
    """
    from streamrec.engines.spark.session import pandas_notice_ignored, spark_session

    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if len(user_ids) == 0:
        raise DataError("recommend", "no users to recommend for")
    spark = spark or spark_session()
    model_items = np.asarray(model.item_ids_, dtype=object)
    aligned = Interactions.from_table(_long(data), user_ids=data.user_ids, item_ids=model_items)
    history = aligned.history(aligned.users_to_rows(user_ids))
    popularity = np.asarray(aligned.matrix.sum(axis=0)).ravel()
    popular_idx, popular_scores = top_k(popularity[None, :].astype(np.float32), k)
    offsets = pa.array(history.indptr.astype(np.int32))
    users = pa.table({
        "pos": pa.array(np.arange(len(user_ids), dtype=np.int64)),
        "model_row": pa.array(_model_rows(model, user_ids)),
        "items": pa.ListArray.from_arrays(offsets, pa.array(history.indices.astype(np.int32))),
        "weights": pa.ListArray.from_arrays(offsets, pa.array(history.data.astype(np.float32))),
    })
    shared = spark.sparkContext.broadcast((model, len(model_items), k, exclude_seen, popular_idx[0], popular_scores[0]))
    blocks = max(1, spark.sparkContext.defaultParallelism)
    schema = "pos long, rank int, item int, score float, popular boolean"
    with pandas_notice_ignored():
        scored = spark.createDataFrame(users).repartition(blocks).mapInArrow(
            lambda batches: _score_blocks(batches, shared.value), schema)
    result = scored.toArrow()
    shared.destroy()
    result = result.sort_by([("pos", "ascending"), ("rank", "ascending")])
    pos = result.column("pos").to_numpy()
    return pa.table({
        "user_id": pa.array(np.asarray(user_ids, dtype=object)[pos], pa.string()),
        "rank": result.column("rank"),
        "item_id": pa.array(model_items[result.column("item").to_numpy()], pa.string()),
        "score": result.column("score"),
        "source": pa.array(np.where(result.column("popular").to_numpy(zero_copy_only=False), "popular", "model"),
                           pa.string()),
    })


def _score_blocks(batches: Iterator[pa.RecordBatch], shared: tuple) -> Iterator[pa.RecordBatch]:
    """One task: its users' histories as CSR, the model's top-k, the popular titles for users with nothing to go on."""
    from scipy import sparse

    model, n_items, k, exclude_seen, popular_idx, popular_scores = shared
    for batch in batches:
        n = batch.num_rows
        if n == 0:
            continue
        items, weights = batch.column("items"), batch.column("weights")
        start = items.offsets[0].as_py()
        indptr = items.offsets.to_numpy() - start
        indices = items.values.to_numpy()[start:start + indptr[-1]]
        data = weights.values.to_numpy()[start:start + indptr[-1]]
        history = sparse.csr_matrix((data, indices, indptr), shape=(n, n_items), dtype=np.float32)
        rows = batch.column("model_row").to_numpy()
        idx, scores = model.recommend(history, k=k, users=rows, exclude_seen=exclude_seen)
        cold = (np.diff(indptr) == 0) & (rows < 0)
        idx[cold], scores[cold] = popular_idx, popular_scores
        kk = idx.shape[1]
        yield pa.RecordBatch.from_pydict({
            "pos": np.repeat(batch.column("pos").to_numpy(), kk),
            "rank": np.tile(np.arange(1, kk + 1, dtype=np.int32), n),
            "item": idx.ravel().astype(np.int32),
            "score": scores.ravel().astype(np.float32),
            "popular": np.repeat(cold, kk),
        })
