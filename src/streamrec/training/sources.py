"""Long interaction tables (user_id, item_id, weight, last_ts, rating) from the event store or a plain CSV."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from streamrec.errors import ConfigError, DataError, NotFound
from streamrec.settings import Settings


def interactions_from_store(settings: Settings) -> pa.Table:
    """The `interactions` table `streamrec preprocess` wrote (ConfigError with the next step if there is none)."""
    from streamrec.storage.events import open_event_store

    path = settings.event_store_path
    if not path.exists():
        raise ConfigError(f"{path}: no event store yet; run `streamrec ingest` and `streamrec preprocess`, "
                          "or pass --csv FILE")
    with open_event_store(settings, read_only=True) as store:
        try:
            table = store.read("interactions", ["user_id", "item_id", "weight", "last_ts", "rating"])
        except DataError as exc:
            raise ConfigError(f"{path}: no interactions yet; run `streamrec preprocess` first") from exc
    if table.num_rows == 0:
        raise DataError(str(path), "the interactions table is empty")
    return table


def interactions_from_csv(
    path: Path | str,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = "rating",
    ts_col: str | None = "timestamp",
    delimiter: str = ",",
) -> pa.Table:
    """Read a user/item/rating[/timestamp] CSV as a long interactions table, without the ingestion step.

    The weight is the rating when there is a rating column, else 1. A timestamp may be epoch seconds or ISO text.
    Optional columns (rating, timestamp) may be absent from the file; user and item must be there.

    Raises:
        NotFound: no such file. DataError: a required column is missing (names it and the columns found), or a
            value cannot be read (names the column).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound("file", str(path))
    try:
        table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                               convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"cannot read as CSV: {exc}") from exc
    found = table.column_names
    missing = [c for c in (user_col, item_col) if c not in found]
    if missing:
        raise DataError(str(path), f"missing column(s) {missing}; the file has {found} "
                                   "(set the names with --user-col / --item-col)")
    for name in (user_col, item_col):
        if table.column(name).null_count:
            raise DataError(str(path), f"column '{name}' has {table.column(name).null_count} empty values")
    columns = {"user_id": table.column(user_col).cast(pa.string()), "item_id": table.column(item_col).cast(pa.string())}
    if rating_col and rating_col in found:
        try:
            rating = table.column(rating_col).cast(pa.float32())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(str(path), f"column '{rating_col}' is not numeric: {exc}") from exc
        columns["weight"] = pc.fill_null(rating, 1.0)
        columns["rating"] = rating
    else:
        columns["weight"] = pa.array([1.0] * table.num_rows, pa.float32())
    if ts_col and ts_col in found:
        columns["last_ts"] = _timestamps(table.column(ts_col), str(path), ts_col)
    return pa.table(columns)


def _timestamps(column: pa.ChunkedArray, source: str, name: str) -> pa.ChunkedArray:
    try:
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            return pc.multiply(column.cast(pa.float64()), 1e6).cast(pa.int64()).cast(pa.timestamp("us"))
        if pa.types.is_timestamp(column.type):
            return column.cast(pa.timestamp("us"))
        text = column.cast(pa.string())
        try:
            return text.cast(pa.timestamp("us"))
        except pa.ArrowInvalid:  # ISO text with an offset or Z
            return text.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(source, f"column '{name}' is neither epoch seconds nor ISO time: {exc}") from exc
