"""The event store's tables as Spark temp views, whichever store the settings choose: a Spark store hands over its
Parquet files, a DuckDB store exports its events as Parquet first; the catalog comes through Arrow."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from streamrec.errors import DataError
from streamrec.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from streamrec.storage.events.base import EventStore

CATALOG_VIEWS = ("users", "titles")


def register_store(spark: "SparkSession", settings: Settings, store: "EventStore") -> tuple[str, list[str]]:
    """Temp views `events` (the store's events, without the users `streamrec preprocess` flagged as bots, as
    `features.snapshot.events_relation` leaves them out), `users` and `titles` (when the catalog has rows).

    Returns:
        The events view's name and the catalog views made.
    """
    from streamrec.storage.events.spark import SparkEventStore

    if isinstance(store, SparkEventStore):
        events = store.frame("events")
    else:  # the DuckDB store's events, as the Parquet export Spark reads
        folder = settings.data_dir / "spark" / "events"
        shutil.rmtree(folder, ignore_errors=True)
        store.export_parquet(folder)
        events = spark.read.parquet(str(folder)) if any(folder.rglob("*.parquet")) else store_frame(spark, store)
    try:
        bots = store.read("bots", ["user_id"])
    except DataError:
        bots = None
    if bots is not None and bots.num_rows:
        events = events.join(spark.createDataFrame(bots), "user_id", "left_anti")
    events.createOrReplaceTempView("events")
    made = []
    for name in CATALOG_VIEWS:
        table = store.read(name)
        if table.num_rows:
            spark.createDataFrame(table).createOrReplaceTempView(name)
            made.append(name)
        else:
            spark.catalog.dropTempView(name)
    return "events", made


def store_frame(spark: "SparkSession", store: "EventStore"):
    """A store's (small or empty) events table through Arrow."""
    return spark.createDataFrame(store.read("events"))
