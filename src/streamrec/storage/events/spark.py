"""The Spark event store: events as date-partitioned Parquet in a folder, written by Spark, committed batch by batch.

Layout under the store's folder (readable by any Parquet engine; a batch counts only once its commit record exists):

    events/date=YYYY-MM-DD/bNNNNNN-part-*.parquet    canonical events + schema_version + batch_id
    quarantine/bNNNNNN-part-*.parquet                every rejected row: batch_id, source, row, field, reason ...
    batches/bNNNNNN.json                             the commit record: counts, report, the batch's files
    catalog/{titles,availability,users,tags}.parquet
    derived/vNNNNNN/NAME/part-*.parquet              tables later stages write (`streamrec preprocess`: bots,
    derived/current.json                             sessions, interactions, impressions_only), replaced together

A batch is written by Spark into _tmp/, its files are renamed into place, and the commit record is written last
(written to a temporary name, then renamed: atomic on POSIX). A writer that dies before that leaves files no record
names; they are never read, and the next writer removes them. One writer at a time (a lock file); readers need no
Spark: they read the committed files with pyarrow. The folder must be on a file system with atomic renames
(local disk, or a shared POSIX mount the cluster's workers also see). Derived tables follow the same rule: a new
version is written into its own folder, and derived/current.json, written last, names the files of each table.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from streamrec.data.catalog import SCHEMAS, conform
from streamrec.errors import BackendError, ConfigError, DataError, NotFound
from streamrec.events.ingest import _file_state, file_sha256
from streamrec.events.report import BatchReport
from streamrec.events.schema import EVENT_ARROW_SCHEMA
from streamrec.events.staging import detect_format
from streamrec.logs import get_logger
from streamrec.preprocess._sql import output_name
from streamrec.settings import IngestConfig, SparkConfig, SparkEventStoreConfig

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

EVENTS_SCHEMA = EVENT_ARROW_SCHEMA.append(pa.field("schema_version", pa.int16(), nullable=False)).append(
    pa.field("batch_id", pa.int64(), nullable=False))
QUARANTINE_SCHEMA = pa.schema([("batch_id", pa.int64()), ("source", pa.string()), ("row", pa.int64()),
                               ("field", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
                               ("raw", pa.string()), ("quarantined_at", pa.timestamp("us"))])
BATCHES_SCHEMA = pa.schema([("batch_id", pa.int64()), ("source", pa.string()), ("sha256", pa.string()),
                            ("bytes", pa.int64()), ("read", pa.int64()), ("stored", pa.int64()),
                            ("duplicates", pa.int64()), ("quarantined", pa.int64()),
                            ("finished_at", pa.timestamp("us")), ("report", pa.string())])
_CATALOG_KEYS = {"titles": ["item_id"], "availability": ["item_id"], "users": ["user_id"],
                 "tags": ["user_id", "item_id", "tag", "ts"]}
TABLES = ("events", "quarantine", "batches", "titles", "availability", "users", "tags")


class SparkEventStore:
    """Event store on a folder of Parquet files; ingestion runs on Spark (started on the first ingest)."""

    def __init__(self, config: SparkEventStoreConfig, path: Path | str, spark: SparkConfig | None = None,
                 read_only: bool = False):
        self.config = config
        self.spark_config = spark or SparkConfig()
        self.path = Path(path)
        self.read_only = read_only
        self._session: SparkSession | None = None
        self._lock = None
        if read_only:
            if not (self.path / "batches").is_dir():
                raise ConfigError(f"{self.path}: no event store here yet (run `streamrec ingest` first)")
            return
        for sub in ("events", "quarantine", "batches", "catalog", "derived"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / ".writer.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            raise BackendError(f"{self.path}: another process is writing to this event store") from exc
        self._recover()

    # --- the commit log ---------------------------------------------------------------------------
    def _records(self) -> list[dict[str, Any]]:
        records = []
        for file in sorted((self.path / "batches").glob("b*.json")):
            records.append(json.loads(file.read_text()))
        return records

    def _files(self, kind: str) -> list[Path]:
        return [self.path / f for r in self._records() for f in r["files"][kind]]

    def _recover(self) -> None:
        """Remove what a writer that died mid-batch left: its temporary folder and files no commit record names."""
        shutil.rmtree(self.path / "_tmp", ignore_errors=True)
        current = self._derived().get("version", 0)
        for folder in (self.path / "derived").glob("v*"):
            if int(folder.name[1:]) > current:  # a version whose record was never written
                shutil.rmtree(folder, ignore_errors=True)
        committed = {str(f) for kind in ("events", "quarantine") for f in self._files(kind)}
        for kind in ("events", "quarantine"):
            for file in (self.path / kind).rglob("*.parquet"):
                if str(file) not in committed:
                    file.unlink()
                    log.warning("spark_store.removed_uncommitted", file=str(file))

    def _session_(self) -> "SparkSession":
        if self._session is None:
            from streamrec.engines.spark.session import spark_session

            self._session = spark_session(self.spark_config)
        return self._session

    # --- writes -----------------------------------------------------------------------------------
    def ingest_file(self, path: Path | str, config: IngestConfig, fmt: str | None = None,
                    quality: Callable | None = None) -> BatchReport:
        """Validate one file with Spark and commit it as one batch (a no-op if a file with its checksum was)."""
        from streamrec.engines.spark.ingest import check, release, stage

        self._writable()
        started = time.perf_counter()
        path = Path(path)
        if not path.is_file():
            raise NotFound("file", str(path))
        size_mb = path.stat().st_size / 2**20
        if size_mb > config.max_file_mb:
            raise DataError(str(path), f"is {size_mb:,.0f} MiB, over the limit of {config.max_file_mb:,} MiB "
                                       "(split it, or raise ingest.max_file_mb)")
        state = _file_state(path)
        sha = file_sha256(path)
        report = BatchReport(source=str(path), sha256=sha)
        records = self._records()
        done = [r["batch_id"] for r in records if r["sha256"] == sha]
        if done:
            report.batch_id, report.skipped = done[0], True
            report.seconds = time.perf_counter() - started
            log.info("ingest.skipped", file=str(path), batch_id=report.batch_id, reason="already ingested")
            return report
        spark = self._session_()
        staged = stage(spark, path.resolve(), fmt or detect_format(path), config.csv_delimiter)
        checked = None
        try:
            t0 = time.perf_counter()
            checked = check(spark, staged, config, str(path), self._keys("titles", config.unknown_titles),
                            self._keys("users", config.unknown_users), self._frame("events", ["event_id"]))
            t1 = time.perf_counter()
            batch_id = max((r["batch_id"] for r in records), default=0) + 1
            report.batch_id = batch_id
            self._write_batch(checked, report, quality, lambda: _file_state(path) == state)
            report.phases = {"checksum+stage": round(t0 - started, 3), "check": round(t1 - t0, 3),
                             "write": round(time.perf_counter() - t1, 3)}
        finally:
            release(staged, checked)
            shutil.rmtree(self.path / "_tmp", ignore_errors=True)
        report.seconds = time.perf_counter() - started
        log.info("ingest.batch", file=str(path), batch_id=report.batch_id, read=report.read, stored=report.stored,
                 duplicates=report.duplicates, quarantined=report.quarantined, seconds=round(report.seconds, 3))
        return report

    def _keys(self, table: str, policy: str) -> "DataFrame | None":
        """The catalog table's frame when unknown keys are quarantined and it has rows (as DuckDB's store checks)."""
        if policy != "quarantine" or self._catalog_rows(table) == 0:
            return None
        return self._frame(table)

    def _write_batch(self, checked, report: BatchReport, quality: Callable | None,
                     unchanged: Callable[[], bool]) -> None:
        from pyspark.sql import functions as F

        batch_id = report.batch_id
        assert batch_id is not None
        tag = f"b{batch_id:06d}"
        tmp = self.path / "_tmp" / tag
        events = checked.events.withColumn("batch_id", F.lit(batch_id).cast("long")).withColumn(
            "date", F.to_date("ts"))
        events.repartition("date").write.partitionBy("date").option("compression", "zstd").parquet(
            str(tmp / "events"))
        now = datetime.now(UTC).replace(tzinfo=None)
        quarantine = checked.quarantine.select(
            F.lit(batch_id).cast("long").alias("batch_id"), F.lit(report.source).alias("source"),
            F.col("row").cast("long"), "field", "reason", "detail", "raw",
            F.lit(now).cast("timestamp_ntz").alias("quarantined_at"))
        quarantine.coalesce(1).sortWithinPartitions("row").write.option("compression", "zstd").parquet(
            str(tmp / "quarantine"))
        stored = sum(pq.ParquetFile(f).metadata.num_rows for f in (tmp / "events").rglob("*.parquet"))
        if not unchanged():
            raise DataError(report.source, "changed while it was being ingested; nothing was stored (ingest it again)")
        report.read = checked.valid + checked.rejected
        report.stored = stored
        report.quarantined = checked.rejected
        report.duplicates = checked.valid - stored
        report.by_reason = checked.by_reason
        report.ignored_columns = checked.ignored_columns
        if quality is not None:
            report.quality = _quality(quality, tmp / "events")
        files: dict[str, list[str]] = {"events": [], "quarantine": []}
        for kind in files:  # into place under their final names; nothing reads them before the commit record
            for file in sorted((tmp / kind).rglob("*.parquet")):
                part = file.parent.relative_to(tmp / kind)
                target = self.path / kind / part / f"{tag}-{file.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(file, target)
                files[kind].append(str(target.relative_to(self.path)))
        record = {"batch_id": batch_id, "source": report.source, "sha256": report.sha256,
                  "bytes": Path(report.source).stat().st_size, "read": report.read, "stored": report.stored,
                  "duplicates": report.duplicates, "quarantined": report.quarantined,
                  "finished_at": now.isoformat(), "report": report.as_dict(), "files": files}
        _atomic_write(self.path / "batches" / f"{tag}.json", json.dumps(record, default=str))

    def put_catalog(self, tables: Mapping[str, pa.Table]) -> dict[str, int]:
        """Upsert catalog tables by key (availability: all windows of a title), each file replaced atomically."""
        self._writable()
        unknown = set(tables) - set(SCHEMAS)
        if unknown:
            raise DataError("catalog", f"unknown table(s) {sorted(unknown)}; expected {sorted(SCHEMAS)}")
        written: dict[str, int] = {}
        con = duckdb.connect()
        try:
            for name, table in tables.items():
                table = conform(table, name)
                match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM n.{k}" for k in _CATALOG_KEYS[name])
                con.register("t", self._catalog(name))
                con.register("n", table)
                merged = con.sql(f"SELECT * FROM t WHERE NOT EXISTS (SELECT 1 FROM n WHERE {match}) "
                                 "UNION ALL SELECT DISTINCT * FROM n").to_arrow_table()
                con.unregister("t")
                con.unregister("n")
                _atomic_parquet(merged.cast(SCHEMAS[name]), self.path / "catalog" / f"{name}.parquet")
                written[name] = table.num_rows
        finally:
            con.close()
        return written

    def replace_tables(self, frames: Mapping[str, "DataFrame"]) -> dict[str, int]:
        """Write Spark frames as derived tables (bots, interactions ...), replacing earlier versions of all of them
        at once: into a new derived/vNNNNNN/, then derived/current.json (atomic) names their files. The version
        before stays, for a reader still reading it; older ones are removed.

        Returns:
            Rows written per table.
        """
        self._writable()
        clash = set(frames) & set(TABLES)
        if clash:
            raise DataError(str(self.path), f"derived tables cannot replace the store's own {sorted(clash)}")
        before = self._derived()
        version = before.get("version", 0) + 1
        folder = self.path / "derived" / f"v{version:06d}"
        shutil.rmtree(folder, ignore_errors=True)
        tables = dict(before.get("tables", {}))
        for name, frame in frames.items():
            frame.write.option("compression", "zstd").parquet(str(folder / output_name(name)))
            files = sorted((folder / name).glob("*.parquet"))  # part numbers follow the frame's order
            tables[name] = {"files": [str(f.relative_to(self.path)) for f in files],
                            "rows": sum(pq.ParquetFile(f).metadata.num_rows for f in files)}
        record = {"version": version, "tables": tables}
        _atomic_write(self.path / "derived" / "current.json", json.dumps(record))
        used = {Path(f).parts[1] for r in (before, record) for t in r.get("tables", {}).values() for f in t["files"]}
        for old in (self.path / "derived").glob("v*"):
            if old.name not in used:
                shutil.rmtree(old, ignore_errors=True)
        return {name: tables[name]["rows"] for name in frames}

    def _derived(self) -> dict[str, Any]:
        record = self.path / "derived" / "current.json"
        return json.loads(record.read_text()) if record.is_file() else {}

    def _writable(self) -> None:
        if self.read_only:
            raise ConfigError(f"{self.path}: the event store is open read-only")

    # --- reads ------------------------------------------------------------------------------------
    def read(self, table: str, columns: list[str] | None = None) -> pa.Table:
        if table == "events":
            out = _read_files(self._files("events"), EVENTS_SCHEMA)
        elif table == "quarantine":
            out = _read_files(self._files("quarantine"), QUARANTINE_SCHEMA)
        elif table == "batches":
            rows = [{**{k: r[k] for k in BATCHES_SCHEMA.names if k not in ("finished_at", "report")},
                     "finished_at": datetime.fromisoformat(r["finished_at"]),
                     "report": json.dumps(r["report"], default=str)} for r in self._records()]
            out = pa.Table.from_pylist(rows, BATCHES_SCHEMA)
        elif table in SCHEMAS:
            out = self._catalog(table)
        elif table in (derived := self._derived().get("tables", {})):
            out = pa.concat_tables([pq.read_table(self.path / f) for f in derived[table]["files"]])
        else:
            raise DataError(str(self.path), f"no table '{table}' in the event store")
        return out.select(columns) if columns else out

    def _catalog(self, name: str) -> pa.Table:
        file = self.path / "catalog" / f"{name}.parquet"
        return pq.read_table(file).cast(SCHEMAS[name]) if file.is_file() else SCHEMAS[name].empty_table()

    def _catalog_rows(self, name: str) -> int:
        file = self.path / "catalog" / f"{name}.parquet"
        return pq.ParquetFile(file).metadata.num_rows if file.is_file() else 0

    def counts(self) -> dict[str, int]:
        rows = lambda files: sum(pq.ParquetFile(f).metadata.num_rows for f in files)  # noqa: E731
        return {"events": rows(self._files("events")), "quarantine": rows(self._files("quarantine")),
                "batches": len(self._records()), **{name: self._catalog_rows(name) for name in TABLES[3:]}}

    def frame(self, table: str, columns: list[str] | None = None) -> "DataFrame":
        """A table as a Spark DataFrame (events: the committed files, with their `date` partition column)."""
        frame = self._frame(table, columns)
        if frame is None:
            spark = self._session_()
            schema = EVENTS_SCHEMA if table == "events" else QUARANTINE_SCHEMA
            frame = spark.createDataFrame(schema.empty_table().select(columns or schema.names))
        return frame

    def _frame(self, table: str, columns: list[str] | None = None) -> "DataFrame | None":
        spark = self._session_()
        if table in ("events", "quarantine"):
            files = [str(f) for f in self._files(table)]
            if not files:
                return None
            frame = spark.read.option("basePath", str(self.path / table)).parquet(*files)
        elif table in SCHEMAS:
            frame = spark.createDataFrame(self._catalog(table))
        else:
            raise DataError(str(self.path), f"no table '{table}' in the event store")
        return frame.select(*columns) if columns else frame

    def export_parquet(self, out: Path | str) -> Path:
        """The committed events as OUT/date=YYYY-MM-DD/*.parquet (the store's own files, copied)."""
        out = Path(out)
        for file in self._files("events"):
            target = out / file.relative_to(self.path / "events")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
        out.mkdir(parents=True, exist_ok=True)
        return out

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "SparkEventStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_files(files: list[Path], schema: pa.Schema) -> pa.Table:
    if not files:
        return schema.empty_table()
    return pa.concat_tables([pq.read_table(f).select(schema.names).cast(schema) for f in files])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _quality(quality: Callable, events_dir: Path) -> dict:
    """The stored batch's data-quality summary: the callable reads a DuckDB relation, here over the batch's files."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        files = sorted(str(f) for f in events_dir.rglob("*.parquet"))
        if files:
            con.execute(f"CREATE VIEW batch_b AS SELECT * FROM read_parquet({files!r}, hive_partitioning = false)")
        else:
            con.register("batch_b", EVENTS_SCHEMA.empty_table())
        return quality(con, "batch_b")
    finally:
        con.close()
