"""Read one event file into a DuckDB temporary table of raw columns, keeping every unreadable record.

CSV and JSONL are read as text so that a bad value in one row fails that row, not the file; Parquet keeps
its own types. Records the reader cannot parse at all (bad encoding, wrong column count, broken JSON) go to
a `rejected` table with their line number and reason instead of being skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamrec.errors import DataError
from streamrec.events.rules import RAW
from streamrec.events.schema import EVENT_COLUMN_NAMES, EVENT_COLUMNS, REQUIRED_COLUMNS

FORMATS = ("csv", "parquet", "jsonl")
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
             ".ndjson": "jsonl", ".json": "jsonl"}
_JSONL_DELIM = "\x1f"  # a byte that does not appear in JSON text; the whole line is one column


@dataclass
class Staged:
    """One file made ready for checking: `source_sql` selects its raw columns (RAW + name); `rejected` is a temp
    table (__row, field, code, detail, raw) of records the reader could not parse.

    A readable record's position is `idx_sql` (0-based, in the table built from source_sql: its rowid, or an
    __idx column); `rows()` turns positions into file line numbers (the header is line 1), accounting for
    rejected lines. Only failing records need that, so the main path never computes line numbers. Run
    `after_scan(con)` once source_sql has been read: CSV rejects are only known then.
    """

    source_sql: str
    rejected: str
    staged_types: dict[str, str]  # canonical column → SQL type of its raw column (absent = not in the file)
    idx_sql: str = "rowid"
    first_line: int = 2
    ignored_columns: list[str] = field(default_factory=list)
    post_sql: list[str] = field(default_factory=list)
    drop_sql: list[str] = field(default_factory=list)
    reject_lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # canonical text column → a query of its distinct raw values (column RAW + name), for the columns where a
    # per-file look at those values is cheap (dictionary-encoded Parquet): a clean column skips per-row work
    distinct_sql: dict[str, str] = field(default_factory=dict)
    # source_sql reads the file itself, which costs little to read again, and __idx numbers its records the same
    # way on every read (Parquet): the check keeps only what it found per row, and the insert reads the file again
    # rather than a typed copy of every row. Otherwise (CSV, JSONL) the check keeps the typed rows.
    rescan: bool = False

    def after_scan(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.post_sql:  # reader rejects that are only known after the scan (CSV)
            for sql in self.post_sql:
                con.execute(sql)
            self.reject_lines = _reject_lines(con, self.rejected)

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for sql in self.drop_sql + [f"DROP TABLE IF EXISTS {self.rejected}"]:
            con.execute(sql)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        return _line_numbers(np.asarray(idx, dtype=np.int64), self.reject_lines, self.first_line)


def detect_format(path: Path) -> str:
    """csv / parquet / jsonl from the file name (a .gz or .zst after it is allowed for csv and jsonl)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes.pop()
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    raise DataError(str(path), f"cannot tell the format from the name; use one of {', '.join(_SUFFIXES)}")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def stage_file(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, delimiter: str = ",", tag: str = "b") -> Staged:
    """Create the staged and rejected temp tables for `path`. Raises DataError if the file as a whole
    cannot be used (unreadable, or a required column missing from its header)."""
    table, rejected = f"staged_{tag}", f"rejected_{tag}"
    con.execute(f"DROP TABLE IF EXISTS {rejected}")
    con.execute(f"CREATE TEMP TABLE {rejected} (__row BIGINT, field VARCHAR, code VARCHAR, detail VARCHAR, raw VARCHAR)")
    try:
        if fmt == "csv":
            return _stage_csv(con, path, table, rejected, delimiter)
        if fmt == "parquet":
            return _stage_parquet(con, path, table, rejected)
        if fmt == "jsonl":
            return _stage_jsonl(con, path, table, rejected)
    except duckdb.Error as exc:
        raise DataError(str(path), f"cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc
    raise DataError(str(path), f"unknown format '{fmt}' (use one of {', '.join(FORMATS)})")


def _match_columns(path: Path, found: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map canonical names to the file's column names (case-insensitive); error if a required one is missing."""
    by_lower = {name.strip().lower(): name for name in found}
    mapping = {c: by_lower[c] for c in EVENT_COLUMN_NAMES if c in by_lower}
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping]
    if missing:
        raise DataError(str(path), f"missing required column(s) {missing}; the file has {found}")
    ignored = [name for name in found if name.strip().lower() not in EVENT_COLUMN_NAMES]
    return mapping, ignored


def _line_numbers(good_index: np.ndarray, reject_lines: np.ndarray, first_line: int) -> np.ndarray:
    """File line of the k-th readable record, given the (sorted) lines the reader rejected."""
    rejects = np.sort(reject_lines)
    # Good record k sits at line first_line + k + (number of rejected lines before it).
    adjusted = rejects - np.arange(len(rejects)) - first_line
    return first_line + good_index + np.searchsorted(adjusted, good_index, side="right")


def _csv_options(path: Path, delimiter: str) -> str:
    return (f"{_lit(str(path))}, all_varchar=true, header=true, delim={_lit(delimiter)}, quote='\"', escape='\"', "
            "auto_detect=true, strict_mode=true, null_padding=false, ignore_errors=true")


def _header_names(path: Path, delimiter: str) -> list[str]:
    """The column names on the first line of a CSV file, parsed by Python's csv module (any bad byte replaced)."""
    import csv

    with open(path, "rb") as handle:
        first = handle.readline(1 << 20).decode("utf-8", errors="replace").lstrip("\ufeff")
    return next(csv.reader([first], delimiter=delimiter), [])


def _stage_csv(con: duckdb.DuckDBPyConnection, path: Path, table: str, rejected: str, delimiter: str) -> Staged:
    options = _csv_options(path, delimiter)
    try:
        header = con.execute(f"SELECT * FROM read_csv({options}) LIMIT 0").description
        found = [d[0] for d in header]
    except duckdb.InvalidInputException:
        # DuckDB's sniffer reads the first rows and gives up on one it cannot parse (a row over its line-size limit):
        # read with the header's own names instead, so that row is rejected alone rather than the whole file.
        found = _header_names(path, delimiter)
        columns = "{" + ", ".join(f"{_lit(name)}: 'VARCHAR'" for name in found) + "}"
        options = options.replace("auto_detect=true", f"auto_detect=false, columns={columns}")
    mapping, ignored = _match_columns(path, found)
    select = ", ".join(f'"{src}" AS "{RAW}{name}"' for name, src in mapping.items())
    rej_t, rej_s = f"rej_errors_{table}", f"rej_scans_{table}"
    drops = [f"DROP TABLE IF EXISTS {rej_t}", f"DROP TABLE IF EXISTS {rej_s}"]
    for sql in drops:
        con.execute(sql)
    source = (f"SELECT {select} FROM read_csv({options}, "
              f"store_rejects=true, rejects_table='{rej_t}', rejects_scan='{rej_s}')")
    # One reject row per error; a record with several errors is one rejected record (its first error).
    collect = (
        f"INSERT INTO {rejected} SELECT line, coalesce(column_name, '*'), "
        f"CASE WHEN error_type = 'INVALID ENCODING' THEN 'bad_encoding' ELSE 'parse_error' END, "
        f"lower(error_type) || ': ' || error_message, left(csv_line, 2000) "
        f"FROM {rej_t} QUALIFY row_number() OVER (PARTITION BY line ORDER BY column_idx) = 1"
    )
    return Staged(source, rejected, {name: "VARCHAR" for name in mapping}, "rowid", 2, ignored,
                  post_sql=[collect], drop_sql=drops)


def _reject_lines(con: duckdb.DuckDBPyConnection, rejected: str) -> np.ndarray:
    return np.sort(con.execute(f"SELECT __row FROM {rejected}").fetchnumpy()["__row"].astype(np.int64))


def _stage_parquet(con: duckdb.DuckDBPyConnection, path: Path, table: str, rejected: str) -> Staged:
    desc = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(str(path))})").fetchall()
    found = [row[0] for row in desc]
    types = {row[0]: row[1] for row in desc}
    mapping, ignored = _match_columns(path, found)
    select = ", ".join(f'"{src}" AS "{RAW}{name}"' for name, src in mapping.items())
    source = f"SELECT {select}, file_row_number AS __idx FROM read_parquet({_lit(str(path))}, file_row_number=true)"
    staged = Staged(source, rejected, {name: types[src] for name, src in mapping.items()}, "__idx", 1, ignored,
                    rescan=True)
    # text read as text: a number or time written as text (an epoch in a VARCHAR ts) is typed per row, not compared
    text_columns = {c.name for c in EVENT_COLUMNS if c.sql_type == "VARCHAR"}
    texts = {src: name for name, src in mapping.items()
             if staged.staged_types[name].upper() == "VARCHAR" and name in text_columns}
    staged.distinct_sql = {
        texts[src]: f'SELECT DISTINCT "{src}" AS "{RAW}{texts[src]}" FROM read_parquet({_lit(str(path))})'
        for src in _dictionary_columns(path, list(texts))
    }
    return staged


def _dictionary_columns(path: Path, columns: list[str]) -> list[str]:
    """The columns among `columns` whose values are dictionary-encoded in every row group (a dictionary page, and
    data pages that hold little more than dictionary indices: at most 3 bytes a value, where a plain string takes
    at least 4). DuckDB reads those as dictionaries, so their distinct values cost little to find; the others
    (unique ids, a dictionary that overflowed into plain pages) would cost a hash of every value."""
    try:
        meta = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowException):
        return []
    chunks: dict[str, list] = {}
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for i in range(group.num_columns):
            chunk = group.column(i)
            chunks.setdefault(chunk.path_in_schema, []).append(chunk)

    def encoded(chunk) -> bool:
        if not chunk.has_dictionary_page or chunk.num_values <= 0:
            return chunk.num_values == 0
        dictionary = chunk.data_page_offset - chunk.dictionary_page_offset
        return (chunk.total_uncompressed_size - dictionary) <= 3 * chunk.num_values

    return [c for c in columns if c in chunks and all(encoded(chunk) for chunk in chunks[c])]


def _stage_jsonl(con: duckdb.DuckDBPyConnection, path: Path, table: str, rejected: str) -> Staged:
    lines = f"lines_{table}"
    rej_t, rej_s = f"rej_errors_{table}", f"rej_scans_{table}"
    con.execute(f"DROP TABLE IF EXISTS {rej_t}; DROP TABLE IF EXISTS {rej_s}; DROP TABLE IF EXISTS {lines}")
    con.execute(
        f"CREATE TEMP TABLE {lines} AS SELECT line FROM read_csv({_lit(str(path))}, columns={{'line': 'VARCHAR'}}, "
        f"header=false, delim={_lit(_JSONL_DELIM)}, quote='', escape='', auto_detect=false, strict_mode=false, "
        f"ignore_errors=true, store_rejects=true, rejects_table='{rej_t}', rejects_scan='{rej_s}')"
    )
    con.execute(
        f"INSERT INTO {rejected} SELECT line, '*', "
        f"CASE WHEN error_type = 'INVALID ENCODING' THEN 'bad_encoding' ELSE 'parse_error' END, "
        f"lower(error_type) || ': ' || error_message, left(csv_line, 2000) "
        f"FROM {rej_t} QUALIFY row_number() OVER (PARTITION BY line ORDER BY column_idx) = 1"
    )
    staged = Staged("", rejected, {name: "VARCHAR" for name in EVENT_COLUMN_NAMES}, "__idx", 1,
                    drop_sql=[f"DROP TABLE IF EXISTS {lines}"])
    staged.reject_lines = _reject_lines(con, rejected)
    is_object = "coalesce(CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' END, FALSE)"
    bad = con.execute(
        f"SELECT rowid, line FROM {lines} WHERE line IS NOT NULL AND trim(line) <> '' AND NOT {is_object}"
    ).fetchall()
    if bad:
        lines_of = staged.rows(np.array([b[0] for b in bad]))
        con.executemany(f"INSERT INTO {rejected} VALUES (?, '*', 'parse_error', 'not a JSON object', ?)",
                        [(int(n), b[1][:2000]) for n, b in zip(lines_of, bad)])
    paths = "[" + ", ".join(_lit(f"$.{c}") for c in EVENT_COLUMN_NAMES) + "]"
    wrong = _wrong_json_types(con, lines, is_object, paths)
    if wrong:
        lines_of = staged.rows(np.array([w[0] for w in wrong]))
        con.executemany(f"INSERT INTO {rejected} VALUES (?, ?, 'bad_type', ?, ?)",
                        [(int(n), column, f"a JSON {kind.lower()} where text or a number is expected", line[:2000])
                         for n, (_, line, column, kind) in zip(lines_of, wrong)])
        con.register("__wrong", pa.table({"r": pa.array([w[0] for w in wrong], pa.int64())}))
        con.execute(f"CREATE OR REPLACE TEMP TABLE wrong_{table} AS SELECT r FROM __wrong")
        con.unregister("__wrong")
        staged.drop_sql.append(f"DROP TABLE IF EXISTS wrong_{table}")
        is_object += f" AND rowid NOT IN (SELECT r FROM wrong_{table})"
    select = ", ".join(f'v[{i + 1}] AS "{RAW}{c}"' for i, c in enumerate(EVENT_COLUMN_NAMES))
    staged.source_sql = (f"SELECT {select}, __idx FROM ("
                         f"SELECT json_extract_string(line, {paths}) AS v, rowid AS __idx FROM {lines} WHERE {is_object})")
    con.execute(f"DROP TABLE IF EXISTS {rej_t}; DROP TABLE IF EXISTS {rej_s}")
    return staged


_NOT_TEXT = ("ARRAY", "OBJECT", "BOOLEAN")  # JSON values that no event field can hold (text was read from them before)


def _wrong_json_types(con: duckdb.DuckDBPyConnection, lines: str, is_object: str, paths: str) -> list[tuple]:
    """(rowid, line, column, JSON type) of each object line whose first event field holding an array, an object or a
    boolean is `column`. Only lines with a '[', a second '{' or a true/false in them are looked at closely."""
    found = con.execute(
        f"SELECT rowid, line, json_type(line, {paths}) FROM {lines} WHERE {is_object} AND (strpos(line, '[') > 0 "
        f"OR strpos(line[2:], '{{') > 0 OR strpos(line, 'true') > 0 OR strpos(line, 'false') > 0)"
    ).fetchall()
    wrong = []
    for rowid, line, types in found:
        bad = next(((c, t) for c, t in zip(EVENT_COLUMN_NAMES, types) if t in _NOT_TEXT), None)
        if bad:
            wrong.append((rowid, line, *bad))
    return wrong
