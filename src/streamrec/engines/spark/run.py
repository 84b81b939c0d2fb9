"""The Spark engine's stages as the CLI calls them: preprocessing, features, a model factory for training, batch
scoring."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError
from streamrec.features.snapshot import SnapshotReport
from streamrec.models import Recommender, create_model
from streamrec.preprocess.pipeline import PreprocessReport
from streamrec.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from streamrec.storage.events.base import EventStore


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


def preprocess(settings: Settings, store: "EventStore") -> PreprocessReport:
    """`streamrec preprocess` on Spark over the Spark event store: bots, sessions, interactions and impressions_only
    computed as the DuckDB path computes them, written into the store together (`SparkEventStore.replace_tables`)."""
    from streamrec.engines.spark.preprocess import preprocess_frames
    from streamrec.engines.spark.session import spark_session
    from streamrec.storage.events.spark import SparkEventStore

    if not isinstance(store, SparkEventStore):
        raise ConfigError(f"preprocess on Spark writes into the spark event store, not '{settings.event_store.type}'")
    return preprocess_frames(spark_session(settings.spark), store.frame("events"), settings.preprocess,
                             store.replace_tables)


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
