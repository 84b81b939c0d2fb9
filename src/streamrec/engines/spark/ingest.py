"""Check one event file with Spark: stage it as raw columns, type it, run the shared validation rules (events.rules,
translated to Spark SQL), and split it into the new events (deduplicated by event_id) and the quarantine.

The same steps as DuckDB's ingestion (events.ingest), so both engines accept, reject and drop the same rows:
records the reader cannot parse are quarantined as `parse_error`, every readable record gets the reason of its first
failing rule, and among the valid ones only the first occurrence of an event_id in file order is kept, unless the
store holds it already. Row numbers are file lines (the header is line 1), counted over the records Spark reads.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from streamrec.engines.spark.dialect import duckdb_type, to_spark, typed_columns
from streamrec.errors import DataError
from streamrec.events.rules import RAW, TYPED, build_rules, detail_sql, first_failing_sql, kept_raw_columns
from streamrec.events.schema import EVENT_COLUMN_NAMES, EVENT_COLUMNS, SCHEMA_VERSION
from streamrec.events.staging import _match_columns
from streamrec.settings import IngestConfig

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

CORRUPT = "__corrupt"
_ID_BITS = 33  # monotonically_increasing_id: partition index above bit 33, the record's place in it below


@dataclass
class Staged:
    """A file as Spark reads it: raw columns (RAW + name), CORRUPT (the text of an unparsable record) and __idx,
    the record's 0-based place in the file; line = __idx + first_line."""

    frame: "DataFrame"
    staged_types: dict[str, str]  # canonical column → DuckDB name of its type in the file
    first_line: int
    ignored_columns: list[str] = field(default_factory=list)
    unparsable: int = 0  # records with CORRUPT set


@dataclass
class Checked:
    """A checked batch: the events to store (canonical columns, without batch_id) and the quarantine rows (row,
    field, reason, detail, raw), with the counts the report needs."""

    events: "DataFrame"
    quarantine: "DataFrame"
    readable: int
    valid: int
    rejected: int
    by_reason: dict[str, int]
    ignored_columns: list[str]
    kept: list["DataFrame"] = field(default_factory=list)  # persisted frames, released by `release`


def stage(spark: "SparkSession", path: Path, fmt: str, delimiter: str = ",") -> Staged:
    """Read `path` (csv, parquet or jsonl) as raw columns with record positions.

    Raises:
        DataError: the file cannot be read as `fmt`, or lacks a required column.
    """
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    try:
        if fmt == "csv":
            header = _csv_header(path, delimiter)
            mapping, ignored = _match_columns(path, header)
            positions = {name: header.index(src) for name, src in mapping.items()}
            schema = T.StructType([T.StructField(f"c{i}", T.StringType()) for i in range(len(header))]
                                  + [T.StructField(CORRUPT, T.StringType())])
            frame = (spark.read.schema(schema).option("header", True).option("sep", delimiter)
                     .option("quote", '"').option("escape", '"').option("mode", "PERMISSIVE")
                     .option("columnNameOfCorruptRecord", CORRUPT).option("enforceSchema", True).csv(str(path)))
            frame = frame.select(*(F.col(f"c{i}").alias(RAW + name) for name, i in positions.items()), CORRUPT)
            staged_types, first_line = {name: "VARCHAR" for name in mapping}, 2
        elif fmt == "jsonl":
            schema = T.StructType([T.StructField(n, T.StringType()) for n in EVENT_COLUMN_NAMES]
                                  + [T.StructField(CORRUPT, T.StringType())])
            frame = (spark.read.schema(schema).option("mode", "PERMISSIVE")
                     .option("columnNameOfCorruptRecord", CORRUPT).json(str(path)))
            frame = frame.select(*(F.col(n).alias(RAW + n) for n in EVENT_COLUMN_NAMES), CORRUPT)
            staged_types, first_line, ignored = {n: "VARCHAR" for n in EVENT_COLUMN_NAMES}, 1, []
        elif fmt == "parquet":
            frame = spark.read.parquet(str(path))
            types = {f.name: duckdb_type(f.dataType.simpleString()) for f in frame.schema.fields}
            mapping, ignored = _match_columns(path, list(types))
            frame = frame.select(*(F.col(f"`{src}`").alias(RAW + name) for name, src in mapping.items()),
                                 F.lit(None).cast("string").alias(CORRUPT))
            staged_types, first_line = {name: types[src] for name, src in mapping.items()}, 1
        else:
            raise DataError(str(path), f"unknown format '{fmt}' (use one of csv, parquet, jsonl)")
        numbered, unparsable = _numbered(frame)
        return Staged(numbered, staged_types, first_line, ignored, unparsable)
    except PySparkException as exc:
        raise DataError(str(path), f"cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc


def _csv_header(path: Path, delimiter: str) -> list[str]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            first = handle.readline()
    except OSError as exc:
        raise DataError(str(path), f"cannot read as csv: {exc}") from exc
    text = first.decode("utf-8-sig", errors="replace")
    row = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    if not row:
        raise DataError(str(path), "has no header line")
    return row


def _numbered(frame: "DataFrame") -> tuple["DataFrame", int]:
    """The frame, kept, with __idx: each record's place in file order (Spark numbers records per partition, a file
    split, in order; a place is the records of the earlier splits plus the place within its own), and the number of
    unparsable records (one pass for both)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    frame = frame.withColumn("__mid", F.monotonically_increasing_id()).persist(StorageLevel.MEMORY_AND_DISK)
    parts = frame.groupBy(F.shiftright("__mid", _ID_BITS).alias("p")).agg(
        F.count(F.lit(1)).alias("n"), F.count(CORRUPT).alias("bad")).collect()
    sizes = sorted((r["p"], r["n"]) for r in parts)
    before, offsets = 0, []
    for part, n in sizes:
        offsets.append((part, before))
        before += n
    start = F.lit(0)
    for part, offset in offsets:  # a handful of splits per file
        start = F.when(F.shiftright("__mid", _ID_BITS) == part, F.lit(offset)).otherwise(start)
    idx = (start + F.col("__mid").bitwiseAND((1 << _ID_BITS) - 1)).cast("long")
    return frame.withColumn("__idx", idx).drop("__mid"), sum(r["bad"] for r in parts)


def check(spark: "SparkSession", staged: Staged, config: IngestConfig, source: str,
          titles: "DataFrame | None", users: "DataFrame | None", stored_ids: "DataFrame | None") -> Checked:
    """Type and check every readable record with the shared rules, quarantine the failures and the unparsable
    records, and keep the first valid occurrence of each event_id not in `stored_ids`.

    Args:
        titles / users: the catalog's keys (item_id / user_id) when unknown titles / users are quarantined and the
            catalog has rows; None otherwise.
        stored_ids: the store's event_ids (column event_id), or None for an empty store.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rules = build_rules(config, staged.staged_types, titles is not None, users is not None)
    raw_cols = [f"`{RAW}{c}`" for c in staged.staged_types]
    readable = staged.frame.where(F.col(CORRUPT).isNull())
    typed = readable.selectExpr(*raw_cols, "__idx", *typed_columns(staged.staged_types))
    for keys, column, flag in ((titles, "item_id", "known_title"), (users, "user_id", "known_user")):
        if keys is not None:
            known = F.broadcast(keys.select(F.col(column).alias("__key")).distinct())
            typed = (typed.join(known, F.col(f"{TYPED}{column}") == F.col("__key"), "left")
                     .withColumn(flag, F.col("__key").isNotNull()).drop("__key"))
    codes = F.array(*(F.lit(r.code) for r in rules))
    fields = F.array(*(F.lit(r.field) for r in rules))
    kept = kept_raw_columns(staged.staged_types)
    shown = ", ".join(f"'{c}', `{RAW if c in kept else TYPED}{c}`" for c in staged.staged_types)
    detail = to_spark(detail_sql(rules, "__reason"))
    for column in EVENT_COLUMNS:  # a number as DuckDB spells it where Spark's spelling differs (NaN, Infinity)
        if column.sql_type == "DOUBLE":
            typed_col = f"`{TYPED}{column.name}`"
            detail = detail.replace(f"CAST({typed_col} AS STRING)", f"CASE WHEN isnan({typed_col}) THEN 'nan' "
                                    f"WHEN abs({typed_col}) = double('infinity') THEN "
                                    f"CASE WHEN {typed_col} > 0 THEN 'inf' ELSE '-inf' END "
                                    f"ELSE CAST({typed_col} AS STRING) END")
    checked = (typed.withColumn("__reason", F.expr(to_spark(first_failing_sql(rules))))
               .withColumn("__detail", F.expr(f"CASE WHEN __reason IS NOT NULL THEN {detail} END")))
    from pyspark import StorageLevel

    checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    line = F.col("__idx") + F.lit(staged.first_line)
    failed = checked.where(F.col("__reason").isNotNull()).select(
        line.alias("row"), F.element_at(fields, F.col("__reason") + 1).alias("field"),
        F.element_at(codes, F.col("__reason") + 1).alias("reason"), F.col("__detail").alias("detail"),
        F.expr(f"left(to_json(named_struct({shown})), 2000)").alias("raw"))
    unparsable = staged.frame.where(F.col(CORRUPT).isNotNull()).select(
        line.alias("row"), F.lit("*").alias("field"), F.lit("parse_error").alias("reason"),
        F.lit("malformed record").alias("detail"), F.expr(f"left(`{CORRUPT}`, 2000)").alias("raw"))
    quarantine = failed.unionByName(unparsable)
    per_rule = {r["__reason"]: r["n"] for r in checked.groupBy("__reason").agg(F.count(F.lit(1)).alias("n")).collect()}
    by_reason: dict[str, int] = {"parse_error": staged.unparsable} if staged.unparsable else {}
    for index, n in per_rule.items():
        if index is not None:
            by_reason[rules[index].code] = by_reason.get(rules[index].code, 0) + n
    counts = {"readable": sum(per_rule.values()), "valid": per_rule.get(None, 0)}
    valid = checked.where(F.col("__reason").isNull())
    event_id = f"{TYPED}event_id"
    first = Window.partitionBy(event_id)
    new = valid.withColumn("__first", F.min("__idx").over(first)).where(F.col("__idx") == F.col("__first"))
    if stored_ids is not None:
        new = new.join(stored_ids.select(F.col("event_id").alias(event_id)), event_id, "left_anti")
    columns = [F.col(f"{TYPED}{c.name}").cast("timestamp_ntz" if c.sql_type == "TIMESTAMP" else
                                               "int" if c.sql_type == "INTEGER" else c.sql_type.replace(
                                                   "VARCHAR", "string").lower()).alias(c.name)
               for c in EVENT_COLUMNS]
    events = new.select(*columns, F.lit(SCHEMA_VERSION).cast("smallint").alias("schema_version"))
    return Checked(events, quarantine, counts["readable"], counts["valid"], sum(by_reason.values()),
                   dict(sorted(by_reason.items(), key=lambda kv: -kv[1])), staged.ignored_columns, [checked])


def release(staged: Staged, checked: Checked | None = None) -> None:
    """Drop the kept frames of a batch."""
    for frame in [staged.frame, *(checked.kept if checked else [])]:
        frame.unpersist()
