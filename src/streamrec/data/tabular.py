"""Generic event files (CSV, TSV, Parquet, JSON lines) with a column mapping, into canonical events.

Any data set can come in: a ColumnMapping names the file's column for each event field; unmapped fields are
looked up among common names (user_id, userId, user ...). Timestamps may be epoch seconds / milliseconds /
microseconds / nanoseconds (the unit is inferred from the magnitude unless given), ISO-8601 strings (with or
without an offset; no offset means UTC), strings in an explicit strptime format, or typed timestamps/dates.
Without a type column, events are "rating" if a rating column is mapped, else "play". Without an event id
column (or where it is empty), event_id is "ev:" + md5 of the row's content and its row number, so reloading
the same file yields the same ids. `file_to_dataset` writes a data set folder whose titles and users are the
distinct ids of the events (titles carry only their id; users get region "unknown" and signup at their first
event; no availability rows, so every title is available everywhere).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from streamrec.data.catalog import AVAILABILITY_SCHEMA, UNKNOWN
from streamrec.data.dataset import DatasetInfo, DatasetWriter, conform_events
from streamrec.errors import DataError, NotFound
from streamrec.events.schema import EVENT_ARROW_SCHEMA

FORMATS: tuple[str, ...] = ("csv", "tsv", "parquet", "jsonl")
_SUFFIX_FORMAT = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")

# Mapping field → (canonical event column, names looked up when the field is not mapped, lower-cased).
_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "user": ("user_id", ("user_id", "userid", "user", "uid", "profile_id", "customer_id", "visitor_id")),
    "item": ("item_id", ("item_id", "itemid", "movieid", "movie_id", "title_id", "item", "content_id", "video_id")),
    "timestamp": ("ts", ("ts", "timestamp", "time", "event_time", "event_ts", "datetime", "created_at", "date")),
    "rating": ("rating", ("rating",)),
    "type": ("type", ("type", "event_type")),
    "event_id": ("event_id", ("event_id", "eventid")),
    "request_id": ("request_id", ("request_id",)),
    "position": ("position", ("position",)),
    "row": ("row", ("row",)),
    "device": ("device", ("device",)),
    "watched_s": ("watched_s", ("watched_s", "watch_time_s", "seconds_watched")),
    "fraction": ("fraction", ("fraction", "completion", "watch_fraction")),
}
_REQUIRED = ("user", "item", "timestamp")
_STRING_FIELDS = ("user", "item", "type", "event_id", "request_id", "row", "device", "timestamp")
# Largest absolute epoch value per unit (from ~year 5138 in seconds): the smallest unit that fits is chosen.
_UNIT_LIMITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", float("inf")))
_PER_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}


class ColumnMapping(BaseModel, extra="forbid"):
    """Which column of a file holds each event field. None: looked up among common names (if `guess`)."""

    user: str | None = Field(default=None, description="user id column (default: user_id, userId, user, uid ...)")
    item: str | None = Field(default=None, description="item/title id column (default: item_id, movieId, item ...)")
    timestamp: str | None = Field(default=None, description="event time column (default: ts, timestamp, time ...)")
    rating: str | None = Field(default=None, description="rating value column (makes the default type 'rating')")
    type: str | None = Field(default=None, description="event type column (default: 'rating' or 'play' for every row)")
    event_id: str | None = Field(default=None, description="unique event id column (default: a hash of the row)")
    request_id: str | None = None
    position: str | None = None
    row: str | None = None
    device: str | None = None
    watched_s: str | None = None
    fraction: str | None = None
    timestamp_unit: Literal["auto", "s", "ms", "us", "ns", "iso"] = Field(
        default="auto", description="numbers: epoch unit (auto: from the magnitude); 'iso': ISO-8601 strings"
    )
    timestamp_format: str | None = Field(
        default=None, description="strptime format of string timestamps, e.g. %d/%m/%Y %H:%M"
    )
    guess: bool = Field(default=True, description="look up unmapped fields among common column names")

    def resolve(self, columns: Sequence[str], source: str = "file") -> dict[str, str]:
        """Map each event field to a column of `columns`.

        Returns:
            {field: column name} for every field found.
        Raises:
            DataError naming the source, the missing column(s) and the columns found.
        """
        by_lower = {c.lower(): c for c in reversed(list(columns))}  # first column wins on a case clash
        found: dict[str, str] = {}
        missing: list[str] = []
        for name, (_, candidates) in _FIELDS.items():
            explicit = getattr(self, name)
            if explicit is not None:
                if explicit in columns:
                    found[name] = explicit
                else:
                    missing.append(f"'{explicit}' (mapped to {name})")
            elif self.guess:
                hit = next((by_lower[c] for c in candidates if c in by_lower), None)
                if hit is not None:
                    found[name] = hit
                elif name in _REQUIRED:
                    hint = f"map it: --{_flag(name)} or ColumnMapping.{name}"
                    missing.append(f"{name} (none of {', '.join(candidates)}; {hint})")
            elif name in _REQUIRED:
                missing.append(f"{name} (not mapped)")
        if missing:
            raise DataError(source, f"missing column(s): {'; '.join(missing)}; columns found: {list(columns)}")
        return found


def _flag(name: str) -> str:
    return {"user": "user-col", "item": "item-col", "timestamp": "ts-col"}.get(name, f"{name}-col")


def detect_format(path: Path | str) -> str:
    """csv / tsv / parquet / jsonl from the file name (a compression suffix such as .gz is skipped)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    while suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    fmt = _SUFFIX_FORMAT.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DataError(str(path), f"cannot tell the file format from its name; pass one of {', '.join(FORMATS)}")
    return fmt


def _read_table(path: Path, fmt: str, mapping: ColumnMapping) -> pa.Table:
    """The whole file as an Arrow table; in CSV/TSV, mapped id and time columns are read as strings."""
    source = str(path)
    try:
        if fmt in ("csv", "tsv"):
            parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
            reader = pacsv.open_csv(path, parse_options=parse)
            names = reader.schema.names
            reader.close()
            fields = mapping.resolve(names, source)
            as_text = {fields[f]: pa.string() for f in _STRING_FIELDS if f in fields}
            return pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=16 << 20),
                parse_options=parse,
                convert_options=pacsv.ConvertOptions(column_types=as_text),
            )
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "jsonl":
            return pajson.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise DataError(source, f"cannot be read as {fmt}: {exc}") from None
    raise DataError(source, f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")


def _first_bad(mask: pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _to_timestamps(values: pa.ChunkedArray | pa.Array, mapping: ColumnMapping, source: str, column: str) -> pa.Array:
    """Any supported time column → timestamp[us] (UTC, naive)."""
    col = _array(values)
    kind = col.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            col = col.cast(pa.timestamp(kind.unit, tz="UTC")).cast(pa.timestamp(kind.unit))
        return col.cast(pa.timestamp("us"), safe=False)
    if pa.types.is_date(kind):
        return col.cast(pa.timestamp("us"))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        col = col.cast(pa.string())
        if mapping.timestamp_format:
            out = pc.strptime(col, format=mapping.timestamp_format, unit="us", error_is_null=True)
            how = f"a time in format '{mapping.timestamp_format}'"
        elif (
            mapping.timestamp_unit != "iso"
            and col.null_count < len(col)
            and pc.all(pc.match_substring_regex(col, r"^\s*-?\d+(\.\d*)?\s*$")).as_py()
        ):
            numbers = pc.utf8_trim_whitespace(col)
            is_int = pc.all(pc.match_substring_regex(numbers, r"^-?\d+$")).as_py()
            return _to_timestamps(numbers.cast(pa.int64() if is_int else pa.float64()), mapping, source, column)
        else:
            out = _parse_iso(col)
            how = "an ISO-8601 time"
        bad = pc.and_(pc.is_valid(col), pc.is_null(out))
        if pc.any(bad).as_py():
            i = _first_bad(bad)
            raise DataError(source, f"data row {i + 1}: column '{column}': cannot read {col[i].as_py()!r} as {how}")
        return out
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if mapping.timestamp_unit == "iso":
            raise DataError(source, f"column '{column}' holds numbers, not ISO-8601 strings")
        unit: str = mapping.timestamp_unit
        if unit == "auto":
            peak = pc.max(pc.abs(col)).as_py() or 0
            unit = next(u for u, limit in _UNIT_LIMITS if peak < limit)
        if pa.types.is_integer(kind):
            ints = col.cast(pa.int64())
            micros = pc.divide(ints, 1000) if unit == "ns" else pc.multiply_checked(ints, _PER_US[unit])
        else:
            scale = _PER_US[unit] / (1000 if unit == "ns" else 1)
            micros = pc.round(pc.multiply(col.cast(pa.float64()), scale)).cast(pa.int64())
        return micros.cast(pa.timestamp("us"))
    raise DataError(source, f"column '{column}' has type {kind}, which is not a time")


def _parse_iso(col: pa.Array) -> pa.Array:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("iso_input", pa.table({"x": col}))
        sql = "SELECT CAST(TRY_CAST(trim(x) AS TIMESTAMPTZ) AS TIMESTAMP) AS t FROM iso_input"
        result = con.sql(sql).to_arrow_table()
        return result.column("t").combine_chunks().cast(pa.timestamp("us"))
    finally:
        con.close()


def _event_ids(events: pa.Table, given: pa.Array | None) -> pa.Array:
    """Deterministic ids from each row's content and row number, where no id is given."""
    con = duckdb.connect()
    try:
        rows = events.select(["user_id", "item_id", "type", "ts", "rating"]).append_column(
            "n", pa.array(np.arange(events.num_rows, dtype=np.int64))
        )
        rows = rows.append_column("given", given if given is not None else pa.nulls(events.num_rows, pa.string()))
        con.register("id_rows", rows)
        sql = """
        SELECT coalesce(given, 'ev:' || md5(concat_ws(chr(31), user_id, item_id, type,
                        CAST(epoch_us(ts) AS VARCHAR), CAST(rating AS VARCHAR), CAST(n AS VARCHAR)))) AS event_id
        FROM id_rows
        """
        return con.sql(sql).to_arrow_table().column("event_id").combine_chunks().cast(pa.string())
    finally:
        con.close()


def read_events_file(path: Path | str, mapping: ColumnMapping | None = None, fmt: str | None = None) -> pa.Table:
    """Read a CSV / TSV / Parquet / JSON-lines file of events into canonical events, in file order.

    Args:
        path: the file (CSV/TSV may be compressed: .gz, .bz2, .zst).
        mapping: which column holds which field; None guesses every field from common names.
        fmt: csv, tsv, parquet or jsonl; from the file name when None.
    Returns:
        A table with streamrec.events.schema.EVENT_ARROW_SCHEMA.
    Raises:
        NotFound if the file does not exist; DataError naming the file and the column (and row) that is
        missing, unreadable or empty where a value is required.
    """
    return _read_events(Path(path), mapping or ColumnMapping(), fmt)[0]


def _read_events(path: Path, mapping: ColumnMapping, fmt: str | None) -> tuple[pa.Table, dict[str, str]]:
    source = str(path)
    if not path.is_file():
        raise NotFound("events file", source)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(source, f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")
    table = _read_table(path, fmt, mapping)
    fields = mapping.resolve(table.column_names, source)
    n = table.num_rows

    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name, col_name in fields.items():
        target = _FIELDS[name][0]
        if name == "timestamp":
            columns["ts"] = _to_timestamps(table.column(col_name), mapping, source, col_name)
            continue
        arrow_type = EVENT_ARROW_SCHEMA.field(target).type
        try:
            columns[target] = table.column(col_name).cast(arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(source, f"column '{col_name}' ({name}) cannot be read as {arrow_type}: {exc}") from None
    for target in ("user_id", "item_id", "ts"):
        col = columns[target]
        if col.null_count:
            i = _first_bad(pc.is_null(col))
            field = next(f for f, (t, _) in _FIELDS.items() if t == target)
            raise DataError(
                source, f"{col.null_count} row(s) have no {field} (column '{fields[field]}'), first at data row {i + 1}"
            )
    if "type" not in columns:
        columns["type"] = pa.array(np.full(n, "rating" if "rating" in columns else "play", dtype=object), pa.string())
    events = pa.table(columns)
    given = columns.get("event_id")
    if given is None or given.null_count:
        base = events.drop_columns(["event_id"]) if "event_id" in events.column_names else events
        base = base if "rating" in base.column_names else base.append_column("rating", pa.nulls(n, pa.float64()))
        events = base.append_column("event_id", _event_ids(base, None if given is None else _array(given)))
    return conform_events(events, source=source), fields


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def file_to_dataset(
    path: Path | str,
    out: Path | str,
    mapping: ColumnMapping | None = None,
    fmt: str | None = None,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    name: str | None = None,
    batch_rows: int = 1_000_000,
) -> DatasetInfo:
    """Load an events file into a data set folder: events in time order (ties in file order), titles and users
    from the ids in the events.

    Args:
        path: the events file; mapping, fmt: as for read_events_file.
        out: the data set folder to write; overwrite: replace it if it exists.
        on_progress: called with (events written, total events).
        name: the data set's name (default: the file's stem).
    Returns:
        The DatasetInfo written (source "<fmt>:<file name>").
    """
    start = time.perf_counter()
    path = Path(path)
    mapping = mapping or ColumnMapping()
    fmt = fmt or detect_format(path)
    events, fields = _read_events(path, mapping, fmt)
    events = events.take(pc.sort_indices(events, sort_keys=[("ts", "ascending")]))  # stable: ties keep file order
    items = pc.unique(events.column("item_id"))
    titles = pa.table({"item_id": items.take(pc.sort_indices(items))})
    firsts = events.group_by("user_id", use_threads=False).aggregate([("ts", "min")]).sort_by("user_id")
    users = pa.table(
        {
            "user_id": firsts.column("user_id"),
            "region": pa.array(np.full(firsts.num_rows, UNKNOWN, dtype=object), pa.string()),
            "signup_ts": firsts.column("ts_min"),
        }
    )
    total = events.num_rows
    with DatasetWriter(out, overwrite=overwrite) as writer:
        writer.put_table("titles", titles)
        writer.put_table("availability", AVAILABILITY_SCHEMA.empty_table())
        writer.put_table("users", users)
        if on_progress:
            on_progress(0, total)
        for offset in range(0, total, batch_rows):
            writer.put_events([events.slice(offset, batch_rows)])
            if on_progress:
                on_progress(min(offset + batch_rows, total), total)
        info = DatasetInfo(
            name=name or path.name.split(".")[0],
            source=f"{fmt}:{path.name}",
            params={
                "path": str(path.resolve()),
                "format": fmt,
                "mapping": fields,
                "seconds": round(time.perf_counter() - start, 3),
            },
        )
        writer.commit(info)
    return info


__all__ = ["FORMATS", "ColumnMapping", "detect_format", "file_to_dataset", "read_events_file"]
