"""Point-in-time features on Spark, from the same definitions and the same SQL builders as the DuckDB path
(features.offline), translated to Spark SQL: each spine row gets its entity's aggregates over events strictly before
its time, so both engines compute the same numbers. Snapshots are written where `streamrec features build` writes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from streamrec.engines.spark.dialect import to_spark
from streamrec.errors import DataError
from streamrec.features.definitions import BUILTIN, CATALOG, Attribute, Definition, Feature, GenreMatch, Ratio, select
from streamrec.features.offline import KEY, _entity_query, _genre_match_query, attribute_sql
from streamrec.features.snapshot import SnapshotReport

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def point_in_time(spark: "SparkSession", spine: "DataFrame", features: Sequence[Definition], events: str = "events",
                  catalog: Sequence[str] = ()) -> "DataFrame":
    """Each spine row with its features as of its `ts`, as `features.offline.point_in_time` computes them.

    Args:
        spine: rows with `ts` and the key columns the features need (user_id / item_id; context: device), and
            `__row`, a unique number per row that orders the output.
        events: a temp view of events (user_id, item_id, type, ts, watched_s, fraction, rating).
        catalog: the catalog temp views present (`users`, `titles`); attributes of a missing one are NULL.
    Returns:
        The spine's columns (but __row), ordered by __row, then one column per feature.
    Raises:
        DataError: the spine lacks `ts` or a key column its features need.
    """
    need = {"ts", "__row"} | {KEY[f.entity] for f in features if f.entity in KEY}
    if any(f.entity == "user_title" for f in features):
        need |= {"user_id", "item_id"}
    missing = sorted(need - set(spine.columns))
    if missing:
        raise DataError("feature spine", f"missing columns {missing} (has {spine.columns})")
    shown = [c for c in spine.columns if c != "__row"]
    if any(f.entity == "context" for f in features) and "device" not in spine.columns:
        from pyspark.sql import functions as F

        spine = spine.withColumn("device", F.lit(None).cast("string"))
    name = f"spine_{uuid.uuid4().hex[:12]}"
    spine.createOrReplaceTempView(name)
    columns: dict[str, str] = {}
    joins = []
    for entity in ("user", "title"):
        chosen = [f for f in features if f.entity == entity and isinstance(f, Feature | Ratio)]
        if chosen:
            alias = f"{entity}_f"
            joins.append(f"LEFT JOIN ({_entity_query(name, entity, chosen, events)}) {alias} ON {alias}.__row = s.__row")
            columns.update({f.name: f'{alias}."{f.name}"' for f in chosen})
        attributes = [f for f in features if f.entity == entity and isinstance(f, Attribute)]
        if attributes and CATALOG[entity] in catalog:
            joins.append(f"LEFT JOIN {CATALOG[entity]} c_{entity} ON c_{entity}.{KEY[entity]} = s.{KEY[entity]}")
            columns.update({f.name: attribute_sql(f, f"c_{entity}") for f in attributes})
        else:
            columns.update({f.name: f"CAST(NULL AS {f.dtype})" for f in attributes})
    columns.update({f.name: attribute_sql(f, "c") for f in features if f.entity == "context"})
    for i, f in enumerate(f for f in features if isinstance(f, GenreMatch)):
        if "titles" in catalog:
            joins.append(f"LEFT JOIN ({_genre_match_query(name, f, events)}) gm{i} ON gm{i}.__row = s.__row")
            columns[f.name] = f"coalesce(gm{i}.value, 0.0)"
        else:
            columns[f.name] = "CAST(NULL AS DOUBLE)"
    selects = [f'CAST({columns[f.name]} AS {f.dtype}) AS "{f.name}"' if isinstance(f, Attribute)
               else f'{columns[f.name]} AS "{f.name}"' for f in features]
    cols = ", ".join(f's."{c}"' for c in shown)
    query = f"SELECT {', '.join([cols, *selects])} FROM {name} s {' '.join(joins)} ORDER BY s.__row"
    return spark.sql(to_spark(query))


def default_time(spark: "SparkSession", events: str = "events") -> datetime:
    """Just after the newest event (what `features.snapshot.default_time` gives).

    Raises:
        DataError: no events.
    """
    newest = spark.sql(f"SELECT max(ts) AS ts FROM {events}").collect()[0]["ts"]
    if newest is None:
        raise DataError("event store", "no events yet (run `streamrec ingest` first)")
    return newest + timedelta(seconds=1)


def entity_features(spark: "SparkSession", entity: str, at: datetime, features: Sequence[Definition] = BUILTIN,
                    events: str = "events", catalog: Sequence[str] = ()) -> pa.Table:
    """The features of every `entity` ("user" / "title") with events before `at`, as of `at`, ordered by key."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key = KEY[entity]
    chosen = select(entity=entity, features=tuple(features))  # type: ignore[arg-type]
    keys = spark.table(events).where(F.col("ts") < F.lit(at).cast("timestamp_ntz")).select(key).distinct()
    spine = keys.select(key, F.lit(at).cast("timestamp_ntz").alias("ts"),
                        F.row_number().over(Window.orderBy(key)).alias("__row"))
    table = point_in_time(spark, spine, chosen, events, catalog).drop("ts").toArrow()
    return _plain(table)


def _plain(table: pa.Table) -> pa.Table:
    """Spark's Arrow (large strings) as the DuckDB path writes it (plain strings)."""
    fields = [pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type) for f in table.schema]
    return table.cast(pa.schema(fields))


def build_snapshot(spark: "SparkSession", out_dir: Path, at: datetime | None = None,
                   features: Sequence[Definition] = BUILTIN, events: str = "events",
                   catalog: Sequence[str] = ()) -> SnapshotReport:
    """OUT_DIR/users.parquet and OUT_DIR/titles.parquet as `features.snapshot.build_snapshot` writes them (each
    replaced atomically), computed on Spark."""
    began = time.perf_counter()
    at = at or default_time(spark, events)
    report = SnapshotReport(at=at)
    out_dir.mkdir(parents=True, exist_ok=True)
    for entity, file in (("user", "users.parquet"), ("title", "titles.parquet")):
        table = entity_features(spark, entity, at, features, events, catalog)
        table = table.replace_schema_metadata({b"as_of": at.isoformat().encode()})
        path = out_dir / file
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        report.rows[entity] = table.num_rows
        report.features[entity] = table.num_columns - 1
        report.files[entity] = path
    report.seconds = time.perf_counter() - began
    return report
