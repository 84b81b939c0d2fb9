"""The default event store: one DuckDB database file (ACID), with a Parquet export partitioned by date.

Tables: events (canonical events + schema_version + batch_id), quarantine (every rejected row with file,
row, field, reason and raw text), batches (the manifest: one row per ingested file, keyed by checksum),
and the catalog: titles, availability, users, tags. Later stages add their own tables (interactions ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from streamrec.data.catalog import SCHEMAS, conform
from streamrec.errors import BackendError, ConfigError, DataError
from streamrec.events.ingest import ingest_file
from streamrec.events.report import BatchReport
from streamrec.events.schema import EVENT_COLUMN_NAMES, events_table_ddl
from streamrec.settings import DuckDBEventStoreConfig, IngestConfig

_DDL = [
    events_table_ddl("events").rstrip(")") + ",\n  batch_id BIGINT NOT NULL\n)",
    """CREATE TABLE IF NOT EXISTS quarantine (
        batch_id BIGINT NOT NULL, source VARCHAR NOT NULL, "row" BIGINT, field VARCHAR, reason VARCHAR NOT NULL,
        detail VARCHAR, raw VARCHAR, quarantined_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id BIGINT PRIMARY KEY, source VARCHAR NOT NULL, sha256 VARCHAR NOT NULL UNIQUE, bytes BIGINT,
        "read" BIGINT, stored BIGINT, duplicates BIGINT, quarantined BIGINT, finished_at TIMESTAMP, report JSON)""",
]
_CATALOG_KEYS = {"titles": ["item_id"], "availability": ["item_id"], "users": ["user_id"],
                 "tags": ["user_id", "item_id", "tag", "ts"]}
TABLES = ("events", "quarantine", "batches", "titles", "availability", "users", "tags")


class DuckDBEventStore:
    """Event store on a DuckDB file. One process writes at a time (DuckDB's file lock enforces it)."""

    def __init__(self, config: DuckDBEventStoreConfig, path: Path | str, read_only: bool = False):
        self.config = config
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise ConfigError(f"{self.path}: no event store here yet (run `streamrec ingest` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise BackendError(f"{self.path}: cannot open the event store: {str(exc).splitlines()[0]}") from exc
        self.con.execute("SET TimeZone = 'UTC'")
        if config.threads:
            self.con.execute(f"SET threads = {int(config.threads)}")
        if config.memory_limit:
            self.con.execute("SET memory_limit = ?", [config.memory_limit])
        if not read_only:
            self._create_tables()

    def _create_tables(self) -> None:
        with self.transaction():  # all tables or none, even if killed here
            for ddl in _DDL:
                self.con.execute(ddl)
            for name, schema in SCHEMAS.items():
                self.con.register("__empty", schema.empty_table())
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM __empty")
                self.con.unregister("__empty")

    # --- writes -----------------------------------------------------------------------------------
    def ingest_file(self, path: Path | str, config: IngestConfig, fmt: str | None = None,
                    quality: Callable | None = None) -> BatchReport:
        try:
            return ingest_file(self.con, path, config, fmt, quality)
        except (duckdb.IOException, duckdb.TransactionException) as exc:
            # the store's disk is full or failing (a write, or the COMMIT, failed): the batch was rolled back whole
            raise BackendError(f"{self.path}: cannot write the event store ({str(exc).splitlines()[0]}); nothing "
                               f"from {path} was stored and the store holds what it held before") from exc

    def put_catalog(self, tables: Mapping[str, pa.Table]) -> dict[str, int]:
        """Upsert catalog tables by key, all in one transaction."""
        unknown = set(tables) - set(SCHEMAS)
        if unknown:
            raise DataError("catalog", f"unknown table(s) {sorted(unknown)}; expected {sorted(SCHEMAS)}")
        written: dict[str, int] = {}
        with self.transaction():
            for name, table in tables.items():
                table = conform(table, name)
                keys = _CATALOG_KEYS[name]
                self.con.register("__new", table)
                # availability is replaced per title (all its windows), the rest row by row on their key.
                match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM n.{k}" for k in keys)
                self.con.execute(f"DELETE FROM {name} t WHERE EXISTS (SELECT 1 FROM __new n WHERE {match})")
                self.con.execute(f"INSERT INTO {name} SELECT DISTINCT * FROM __new")
                self.con.unregister("__new")
                written[name] = table.num_rows
        return written

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    # --- reads ------------------------------------------------------------------------------------
    def read(self, table: str, columns: list[str] | None = None) -> pa.Table:
        if not self._has_table(table):
            raise DataError(str(self.path), f"no table '{table}' in the event store")
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return self.con.sql(f"SELECT {cols} FROM {table}").to_arrow_table()

    def counts(self) -> dict[str, int]:
        return {t: self.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES if self._has_table(t)}

    def _has_table(self, table: str) -> bool:
        return bool(self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [table]).fetchall()[0][0])

    def export_parquet(self, out: Path | str) -> Path:
        """events as OUT/date=YYYY-MM-DD/*.parquet (Hive partitioning, readable by Spark and DuckDB)."""
        out = Path(out)
        cols = ", ".join(f'"{c}"' for c in EVENT_COLUMN_NAMES)
        self.con.execute(
            f"COPY (SELECT {cols}, CAST(ts AS DATE) AS date FROM events ORDER BY ts) TO '{out.as_posix()}' "
            "(FORMAT parquet, PARTITION_BY (date), OVERWRITE_OR_IGNORE, COMPRESSION zstd)"
        )
        return out

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "DuckDBEventStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
