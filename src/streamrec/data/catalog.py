"""The catalog and the profiles: titles, where and when they may be shown, and the users who watch them.

Tables are Arrow tables with fixed schemas, so every loader (synthetic world, MovieLens, CSV) produces the
same shapes and every store keeps them the same way.
"""

from __future__ import annotations

import pyarrow as pa

from streamrec.errors import DataError

# Maturity ladder, lowest first. A title may be shown when its rating's index <= the profile's limit's index.
MATURITY_LEVELS: tuple[str, ...] = ("all", "7+", "13+", "16+", "18+")
TITLE_KINDS: tuple[str, ...] = ("movie", "series")
UNKNOWN = "unknown"

TITLES_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("kind", pa.string()),  # movie | series
        pa.field("genres", pa.list_(pa.string())),
        pa.field("release_date", pa.date32()),
        pa.field("runtime_min", pa.int32()),  # a movie's runtime, or a series' episode runtime
        pa.field("maturity", pa.string()),  # one of MATURITY_LEVELS
        pa.field("language", pa.string()),
        pa.field("seasons", pa.int32()),  # series only
        pa.field("episodes", pa.int32()),  # series only
    ]
)

# One row per (title, region) window. end_ts null = open-ended.
AVAILABILITY_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("start_ts", pa.timestamp("us"), nullable=False),
        pa.field("end_ts", pa.timestamp("us")),
    ]
)

USERS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("region", pa.string()),
        pa.field("signup_ts", pa.timestamp("us")),
        pa.field("maturity_limit", pa.string()),  # one of MATURITY_LEVELS
    ]
)

TAGS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("tag", pa.string()),
        pa.field("ts", pa.timestamp("us")),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "titles": TITLES_SCHEMA,
    "availability": AVAILABILITY_SCHEMA,
    "users": USERS_SCHEMA,
    "tags": TAGS_SCHEMA,
}


def conform(table: pa.Table, name: str, source: str = "") -> pa.Table:
    """Return `table` with exactly the columns and types of the named schema, in order.

    Missing nullable columns are filled with nulls; a missing non-null column or an uncastable type is a
    DataError naming the table and column.
    """
    schema = SCHEMAS[name]
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            try:
                arrays.append(column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(source or name, f"column '{field.name}' cannot be read as {field.type}: {exc}")
            if not field.nullable and column.null_count:
                raise DataError(source or name, f"column '{field.name}' has {column.null_count} empty values")
        elif field.nullable:
            arrays.append(pa.nulls(table.num_rows, field.type))
        else:
            raise DataError(source or name, f"required column '{field.name}' is missing")
    return pa.Table.from_arrays(arrays, schema=schema)
