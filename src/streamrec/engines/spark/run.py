"""The Spark engine's stages as the CLI calls them: features, a model factory for training, batch scoring."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from streamrec.data.interactions import Interactions
from streamrec.features.snapshot import SnapshotReport
from streamrec.models import Recommender, create_model
from streamrec.settings import Settings


def build_features(settings: Settings, at: datetime | None = None, out: Path | None = None) -> SnapshotReport:
    """The feature snapshot of every user and title computed on Spark from the configured event store, written
    where `streamrec features build` writes it (DATA_DIR/features/{users,titles}.parquet)."""
    from streamrec.engines.spark.data import register_store
    from streamrec.engines.spark.features import build_snapshot
    from streamrec.engines.spark.session import spark_session
    from streamrec.storage.events import open_event_store

    spark = spark_session(settings.spark)
    with open_event_store(settings, read_only=True) as store:
        events, catalog = register_store(spark, settings, store)
        return build_snapshot(spark, out or settings.data_dir / "features", at, events=events, catalog=catalog)


def model_factory(settings: Settings) -> Callable[[str, dict], Recommender]:
    """Models for `train`: ALS fitted by Spark MLlib, the others as the embedded engine makes them."""
    from streamrec.engines.spark.als import SparkALS

    def make(name: str, params: dict) -> Recommender:
        if name == "als":
            model = SparkALS(params)
            model.spark_config = settings.spark
            return model
        return create_model(name, params)

    return make


def recommend(settings: Settings, model: Recommender, data: Interactions, user_ids: np.ndarray, k: int) -> pa.Table:
    """Top-k per user scored on Spark (the rows `training.batch.recommend_batch` gives)."""
    from streamrec.engines.spark.als import recommend_all
    from streamrec.engines.spark.session import spark_session

    return recommend_all(model, data, user_ids, k, spark_session(settings.spark))
