"""Batch ingestion: one file → validated, deduplicated events stored exactly once, as one atomic batch.

The flow for a file: checksum → skip if the manifest has it → stage (events.staging) → type and check every
row with the shared SQL rules (events.rules) → quarantine the failures with file, row, field and reason →
drop event_ids seen before (in the file or the store) → one transaction writes events, quarantine rows and
the manifest entry together. A kill at any moment leaves the store as before or after the whole batch, and
re-running the same file afterwards is a no-op or completes it. A file that changes while it is being ingested
(its size, modification time or inode) stores nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from streamrec.errors import DataError, NotFound
from streamrec.events.report import BatchReport
from streamrec.events.rules import (
    RAW,
    TYPED,
    build_rules,
    clean_values_sql,
    detail_sql,
    kept_raw_columns,
    reason_index_sql,
    typed_columns,
)
from streamrec.events.schema import EVENT_COLUMN_NAMES
from streamrec.events.staging import Staged, detect_format, stage_file
from streamrec.logs import get_logger
from streamrec.settings import IngestConfig

log = get_logger(__name__)


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _nonempty(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchall()[0][0]


def _file_state(path: Path) -> tuple[int, int, int, int]:
    """What changes when a file is rewritten, appended to or replaced: size, modification time, device and inode."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino


@dataclass(frozen=True)
class Checked:
    """Where `_check` left a batch: `pos` is the column holding a record's position in the file; `rows` selects the
    typed columns (TYPED + name) and `pos` of every readable record: checked_b itself, or, for a source read again
    (`Staged.rescan`), the typed query over the file."""

    pos: str
    rows: str


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path | str,
    config: IngestConfig,
    fmt: str | None = None,
    quality=None,
) -> BatchReport:
    """Ingest one file into the store behind `con` (tables from storage.events.duckdb).

    Args:
        con: connection to the event store database.
        path: a CSV, Parquet or JSONL file of canonical events.
        config: validation rules and policies.
        fmt: csv / parquet / jsonl; guessed from the name when None.
        quality: optional callable (con, relation) -> dict, a data-quality summary of the stored batch.
    Returns:
        The batch's counts. read == stored + duplicates + quarantined.
    Raises:
        NotFound: no such file. DataError: the file as a whole is unusable (nothing is stored).
    """
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
    done = con.execute("SELECT batch_id FROM batches WHERE sha256 = ?", [sha]).fetchall()
    if done:
        report.batch_id, report.skipped = done[0][0], True
        report.seconds = time.perf_counter() - started
        log.info("ingest.skipped", file=str(path), batch_id=report.batch_id, reason="already ingested")
        return report

    staged = stage_file(con, path, fmt or detect_format(path), config.csv_delimiter)
    report.ignored_columns = staged.ignored_columns
    try:
        t0 = time.perf_counter()
        checked = _check(con, staged, config)
        t1 = time.perf_counter()
        _write_batch(con, staged, checked, report, quality, lambda: _file_state(path) == state)
        report.phases = {"checksum+stage": round(t0 - started, 3), "check": round(t1 - t0, 3),
                         "write": round(time.perf_counter() - t1, 3)}
    finally:
        staged.drop(con)
        con.execute("DROP VIEW IF EXISTS batch_b; DROP TABLE IF EXISTS checked_b; "
                    "DROP TABLE IF EXISTS dropped_b; DROP TABLE IF EXISTS rules_b; DROP TABLE IF EXISTS twice_b")
    report.seconds = time.perf_counter() - started
    log.info("ingest.batch", file=str(path), batch_id=report.batch_id, read=report.read, stored=report.stored,
             duplicates=report.duplicates, quarantined=report.quarantined, seconds=round(report.seconds, 3))
    return report


def _check(con: duckdb.DuckDBPyConnection, staged: Staged, config: IngestConfig) -> Checked:
    """Create `checked_b`: one row per readable record, its typed columns (for a source read again, `Staged.rescan`,
    only the event_id), `__reason` (the index of its first failing rule, NULL when valid), the hash of its event_id
    and, for failing rows, the quarantine detail; put the failing rows, with reasons, into the staged `rejected`
    table. The record's position in the file is __idx where the source numbers its records, else checked_b's rowid
    (rows kept in file order)."""
    check_titles = config.unknown_titles == "quarantine" and _nonempty(con, "titles")
    check_users = config.unknown_users == "quarantine" and _nonempty(con, "users")
    clean = _clean_columns(con, staged)
    rules = build_rules(config, staged.staged_types, check_titles, check_users, clean)
    known = []
    if check_titles:
        known.append(f'"{TYPED}item_id" IN (SELECT item_id FROM titles) AS known_title')
    if check_users:
        known.append(f'"{TYPED}user_id" IN (SELECT user_id FROM users) AS known_user')
    raw_cols = ", ".join(f'"{RAW}{c}"' for c in staged.staged_types)
    has_idx = staged.idx_sql == "__idx"
    idx = ", __idx" if has_idx else ""
    typed = ", ".join(typed_columns(staged.staged_types, clean))
    typed_names = ", ".join(f'"{TYPED}{c}"' for c in EVENT_COLUMN_NAMES)
    inner = f"SELECT {raw_cols}{idx}, {typed} FROM ({staged.source_sql})"
    # The typed rows of a source read again: the same expressions over the same records give the same values.
    typed_rows = f"(SELECT {typed}, __idx FROM ({staged.source_sql}))" if staged.rescan else "checked_b"
    kept = f'"{TYPED}event_id"' if staged.rescan else typed_names
    if known:
        inner = f"SELECT *, {', '.join(known)} FROM ({inner})"
    # One pass over the file: type every value, run the rules over the typed values (valid rows stop at the
    # shared fast-path tests), and materialize the reason index with the typed columns, so the valid majority is
    # stored once, typed; a source read again keeps only the event_id, for dedup (writing every typed column costs
    # more than typing the file again). The quarantine detail and the raw values shown with it (the raw value of a
    # column that may fail to read, else the typed one) are computed for the failing rows only.
    kept_names = kept_raw_columns(staged.staged_types)
    shown = {c: (f"{RAW}{c}" if c in kept_names else f"{TYPED}{c}") for c in staged.staged_types}
    raw_json = f"left(to_json(struct_pack({', '.join(f'{c} := {v}' for c, v in shown.items())}))::VARCHAR, 2000)"

    def failing(sql: str) -> str:
        return f"CASE WHEN __reason IS NOT NULL THEN {sql} END"

    # Unless rows are found by their rowid (CSV line numbers), checked_b's row order carries no meaning.
    if has_idx:
        con.execute("SET preserve_insertion_order = false")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE checked_b AS SELECT {kept}{idx}, __reason, "
            f"hash(\"{TYPED}event_id\") AS __h, {failing(detail_sql(rules, '__reason'))} AS __detail, "
            f"{failing(raw_json)} AS __raw "
            f"FROM (SELECT *, {reason_index_sql(rules)} AS __reason FROM ({inner}))"
        )
    finally:
        con.execute("RESET preserve_insertion_order")
    staged.after_scan(con)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rules_b AS SELECT * FROM (VALUES "
        + ", ".join(f"({i}, '{r.code}', '{r.field}')" for i, r in enumerate(rules))
        + ") AS t(idx, code, field)"
    )
    bad = con.sql(
        f"SELECT c.{staged.idx_sql} AS __idx, r.code, r.field, c.__detail AS detail, c.__raw AS raw "
        f"FROM checked_b c JOIN rules_b r ON r.idx = c.__reason WHERE c.__reason IS NOT NULL ORDER BY 1"
    ).to_arrow_table()
    if bad.num_rows:
        rows = staged.rows(bad.column("__idx").to_numpy())
        bad = bad.set_column(0, "__row", pa.array(rows, pa.int64()))
        con.register("bad_b", bad)
        con.execute(f"INSERT INTO {staged.rejected} SELECT __row, field, code, detail, raw FROM bad_b")
        con.unregister("bad_b")
    return Checked("__idx" if has_idx else "rowid", typed_rows)


def _clean_columns(con: duckdb.DuckDBPyConnection, staged: Staged) -> frozenset[str]:
    """The text columns whose distinct values in the file are all clean (`rules.clean_values_sql`): their values are
    typed as they are and their value rules leave the per-row fast path. One dirty value keeps the column's
    per-row checks, so the rules still find every failing row."""
    return frozenset(name for name, sql in staged.distinct_sql.items()
                     if con.execute(clean_values_sql(name, f"({sql})")).fetchall()[0][0])


# Hashes sorted at a time when looking for repeated ones (8 bytes each): bounds the memory that takes.
_HASHES_PER_PART = 1 << 25


def _repeated_hashes(con: duckdb.DuckDBPyConnection, table: str, rows: int) -> np.ndarray:
    """The values of `table`.__h (UBIGINT) that occur more than once, each once. Sorting the fixed-width hashes and
    comparing neighbours costs a fraction of a hash aggregate over as many distinct keys; a large table is taken
    in parts by the top bits of the hash, so no more than _HASHES_PER_PART (about) are held at once."""
    bits = max(0, int(np.ceil(np.log2(max(rows, 1) / _HASHES_PER_PART))))
    found = []
    for part in range(1 << bits):
        where = f" WHERE __h >> {64 - bits} = {part}" if bits else ""
        hashes = con.execute(f"SELECT __h FROM {table}{where}").fetchnumpy()["__h"]
        hashes = np.sort(np.asarray(hashes, dtype=np.uint64))
        found.append(np.unique(hashes[1:][hashes[1:] == hashes[:-1]]))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.uint64)


def _write_batch(con: duckdb.DuckDBPyConnection, staged: Staged, checked: Checked, report: BatchReport, quality,
                 unchanged: Callable[[], bool]) -> None:
    """One transaction: new events, quarantine rows, manifest entry. Nothing is visible until COMMIT, and nothing
    is committed unless `unchanged()` says the file is still the one that was checked."""
    cols = ", ".join(f'"{c}"' for c in EVENT_COLUMN_NAMES)
    typed = ", ".join(f'"{TYPED}{c}"' for c in EVENT_COLUMN_NAMES)
    pos = checked.pos
    readable, valid = con.execute("SELECT count(*), count(*) FILTER (__reason IS NULL) FROM checked_b").fetchall()[0]
    rejected = con.execute(f"SELECT count(*) FROM {staged.rejected}").fetchall()[0][0]
    event_id = f'"{TYPED}event_id"'
    con.execute("BEGIN TRANSACTION")
    try:
        # Valid rows to leave out: later repeats of an event_id within the file (the first valid one in file
        # order is kept), and ids that are stored already (a join against the whole events table is built on
        # the batch's side, never on the store's; an empty store needs none). Repeats are found by the id's hash
        # first (a fixed-width key), then compared exactly among the few rows whose hash repeats.
        stored_before = ""
        if _nonempty(con, "events"):
            stored_before = (f" UNION SELECT c.{pos} FROM checked_b c JOIN events e ON e.event_id = c.{event_id} "
                             "WHERE c.__reason IS NULL")
        # The repeated hashes (of every readable row: a superset) are few, so they form the build side of the
        # semi-join that picks the candidate rows.
        con.register("twice_arrow_b", pa.table({"__h": pa.array(_repeated_hashes(con, "checked_b", readable))}))
        con.execute("CREATE OR REPLACE TEMP TABLE twice_b AS SELECT __h FROM twice_arrow_b")
        con.unregister("twice_arrow_b")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE dropped_b AS "
            f"WITH maybe AS (SELECT c.{pos} AS r, c.{event_id} AS id FROM checked_b c SEMI JOIN twice_b t "
            f"ON c.__h = t.__h WHERE c.__reason IS NULL) "
            f"SELECT r FROM maybe QUALIFY r <> min(r) OVER (PARTITION BY id){stored_before}"
        )
        dropped = con.execute("SELECT count(*) FROM dropped_b").fetchall()[0][0]
        batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchall()[0][0]
        # Row order inside the events table carries no meaning (dedup already chose the first occurrence), so the
        # insert may write in whatever order its threads finish.
        con.execute("SET preserve_insertion_order = false")
        try:
            if checked.rows == "checked_b":
                # That set is small: deleting it from the batch table (rather than anti-joining in the insert) keeps
                # the insert a plain filtered scan, which DuckDB runs as a parallel batch insert.
                if dropped:
                    con.execute(f"DELETE FROM checked_b WHERE {pos} IN (SELECT r FROM dropped_b)")
                keep = "__reason IS NULL"
            else:
                # The file read again: every record but the failing and the dropped ones (a small set, the build
                # side of the anti-join), each found by its position in the file.
                keep = (f"{pos} NOT IN (SELECT {pos} FROM checked_b WHERE __reason IS NOT NULL "
                        "UNION ALL SELECT r FROM dropped_b)")
            stored = con.execute(f"INSERT INTO events ({cols}, batch_id) SELECT {typed}, {batch_id} "
                                 f"FROM {checked.rows} WHERE {keep}").fetchall()[0][0]
        finally:
            # Inside a failed (aborted) transaction a RESET would raise and hide the real error (a full disk); the
            # handler below resets after its ROLLBACK instead.
            _quietly(con, "RESET preserve_insertion_order")
        # A source read again must give the records that were checked: the same file, the same count.
        if not unchanged() or stored != valid - dropped:
            raise DataError(report.source, "changed while it was being ingested; nothing was stored (ingest it again)")
        con.execute(
            f"INSERT INTO quarantine SELECT {batch_id}, ?, __row, field, code, detail, raw, "
            f"now() AT TIME ZONE 'UTC' FROM {staged.rejected} ORDER BY __row",
            [report.source],
        )
        report.batch_id = batch_id
        report.read = valid + rejected
        report.stored = stored
        report.quarantined = rejected
        report.duplicates = valid - stored
        report.by_reason = dict(
            con.execute(f"SELECT code, count(*) FROM {staged.rejected} GROUP BY code ORDER BY 2 DESC").fetchall()
        )
        if quality is not None:
            con.execute(f"CREATE OR REPLACE TEMP VIEW batch_b AS SELECT * FROM events WHERE batch_id = {batch_id}")
            report.quality = quality(con, "batch_b")
        con.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, now() AT TIME ZONE 'UTC', ?)",
            [batch_id, report.source, report.sha256, Path(report.source).stat().st_size, report.read,
             report.stored, report.duplicates, report.quarantined, _json(report)],
        )
        con.execute("COMMIT")
    except BaseException:
        _quietly(con, "ROLLBACK")  # a COMMIT that failed has no transaction left to roll back
        _quietly(con, "RESET preserve_insertion_order")
        raise


def _quietly(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run `sql`, ignoring DuckDB's refusal while an error is already on its way up (it must not replace it)."""
    try:
        con.execute(sql)
    except duckdb.Error:
        pass


def _json(report: BatchReport) -> str:
    return json.dumps(report.as_dict(), default=str)

