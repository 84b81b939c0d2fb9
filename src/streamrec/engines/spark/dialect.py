"""The shared SQL (validation rules, feature attributes, preprocessing) spoken by Spark: DuckDB's spelling turned into
Spark SQL.

The rules, attributes and preprocessing queries are written once, as DuckDB SQL; this module rewrites the few
constructs the two dialects spell differently (quoted identifiers, text casts, a handful of functions, semi and anti
joins, integer division, HUGEINT, backslashes in literals), so Spark runs
the very same conditions. A construct missing here fails at Spark's analysis, naming the function, never silently.
It also types raw staged values the way `events.rules.typed_expression` does, in Spark's functions.
"""

from __future__ import annotations

import re

from streamrec.events.rules import RAW, TYPED
from streamrec.events.schema import EVENT_COLUMNS, EVENT_TYPES, Column

_LITERAL = re.compile(r"'(?:[^']|'')*'")

# name(args) → Spark, each {0} is the call's argument text (already translated)
_CALLS: dict[str, str] = {
    "strlen": "octet_length({0})",
    "regexp_matches": "regexp({0})",
    "isfinite": "(NOT isnan({0}) AND abs({0}) <> double('infinity'))",
    "epoch_us": "unix_micros(CAST({0} AS TIMESTAMP))",
    "len": "(CASE WHEN ({0}) IS NULL THEN NULL ELSE size({0}) END)",
    "isodow": "(weekday({0}) + 1)",
    "to_seconds": "make_dt_interval(0, 0, 0, {0})",
    "unnest": "explode({0})",
    "list_distinct": "array_distinct({0})",
    "arg_max": "max_by({0})",
    "string_split": "split({0})",
}
_NOW_UTC = re.compile(r"\(?\s*now\(\)\s+AT\s+TIME\s+ZONE\s+§\d+§\s*\)?", re.IGNORECASE)


def to_spark(sql: str) -> str:
    """DuckDB SQL of the shared rules and attributes as Spark SQL.

    Args:
        sql: an expression as `events.rules` or `features.definitions` write it.
    Returns:
        The same expression for Spark's parser (ANSI mode on or off).
    """
    literals: list[str] = []

    def keep(match: re.Match[str]) -> str:
        literals.append(match.group(0))
        return f"§{len(literals) - 1}§"

    code = _LITERAL.sub(keep, sql)
    code = _NOW_UTC.sub("current_timestamp()", code)  # the session's time zone is UTC (engines.spark.session)
    code = re.sub(r'"([^"]+)"', r"`\1`", code)  # double quotes name columns in DuckDB, they are strings in Spark
    code = re.sub(r"\bAS\s+VARCHAR\b", "AS STRING", code, flags=re.IGNORECASE)
    code = re.sub(r"\bHUGEINT\b", "DECIMAL(38, 0)", code, flags=re.IGNORECASE)
    code = re.sub(r"(?<!LEFT )\b(SEMI|ANTI)\s+JOIN\b", r"LEFT \1 JOIN", code, flags=re.IGNORECASE)
    code = re.sub(r"\s*//\s*", " div ", code)  # DuckDB's integer division
    code = _rewrite_calls(code)
    # Spark unescapes backslashes inside literals, DuckDB takes them as written; '' stays the quote's escape.
    return re.sub(r"§(\d+)§", lambda m: literals[int(m.group(1))].replace("\\", "\\\\"), code)


def _rewrite_calls(code: str) -> str:
    pattern = re.compile(r"\b(" + "|".join(_CALLS) + r")\s*\(", re.IGNORECASE)
    out, pos = [], 0
    while match := pattern.search(code, pos):
        close = _closing(code, match.end() - 1)
        args = _rewrite_calls(code[match.end():close])
        out.append(code[pos:match.start()] + _CALLS[match.group(1).lower()].format(args))
        pos = close + 1
    out.append(code[pos:])
    return "".join(out)


def _closing(code: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(code)):
        depth += {"(": 1, ")": -1}.get(code[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses in {code!r}")


# Spark's simple type names as the DuckDB names the rules reason about (`events.rules.always_reads`).
_TYPE_NAMES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT", "tinyint": "TINYINT",
               "double": "DOUBLE", "float": "FLOAT", "timestamp": "TIMESTAMP WITH TIME ZONE",
               "timestamp_ntz": "TIMESTAMP", "date": "DATE", "boolean": "BOOLEAN"}


def duckdb_type(spark_type: str) -> str:
    """A Spark column type (simpleString) under the name DuckDB gives it."""
    if spark_type.startswith("decimal"):
        return spark_type.upper()
    return _TYPE_NAMES.get(spark_type, spark_type.upper())


_NUMBER = "'^-?[0-9]{1,14}([.][0-9]+)?$'"
_SPACES = "'^[\\\\p{Z}]+|[\\\\p{Z}]+$'"  # leading / trailing Unicode spaces: what DuckDB's trim removes


def _epoch(number: str) -> str:
    """Epoch seconds, or milliseconds above 1e11, as a timestamp (as the DuckDB rules read numbers)."""
    return (f"CASE WHEN abs({number}) > 1e11 THEN timestamp_micros(try_cast({number} * 1000 AS BIGINT)) "
            f"ELSE timestamp_micros(try_cast({number} * 1000000 AS BIGINT)) END")


def typed_expression(column: Column, staged_type: str | None) -> str:
    """Spark SQL reading the staged raw column as the canonical type (NULL where it cannot be read)."""
    raw = f"`{RAW}{column.name}`"
    if staged_type is None:
        return f"CAST(NULL AS {'STRING' if column.sql_type == 'VARCHAR' else column.sql_type})"
    staged = staged_type.upper()
    text = staged == "VARCHAR"
    numeric = any(k in staged for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL"))
    if column.sql_type == "TIMESTAMP":
        if text:  # epoch numbers first: Spark would read '2024' as a year, DuckDB reads no bare number as a date
            return (f"CASE WHEN trim({raw}) rlike {_NUMBER} THEN {_epoch(f'try_cast(trim({raw}) AS DOUBLE)')} "
                    f"ELSE try_cast(trim({raw}) AS TIMESTAMP) END")
        if numeric:
            return _epoch(f"CAST({raw} AS DOUBLE)")
        return f"try_cast({raw} AS TIMESTAMP)"
    if column.sql_type == "VARCHAR":
        return raw if text else f"CAST({raw} AS STRING)"
    if column.sql_type == "INTEGER":
        if text:  # DuckDB reads '1e3' and '2.5' as integers too (rounded)
            return (f"coalesce(try_cast(trim({raw}) AS INT), "
                    f"try_cast(round(try_cast(trim({raw}) AS DOUBLE)) AS INT))")
        if "DOUBLE" in staged or "FLOAT" in staged or "DECIMAL" in staged:
            return f"try_cast(round({raw}) AS INT)"
        return f"try_cast({raw} AS INT)"
    if column.sql_type == "DOUBLE":
        return f"try_cast(trim({raw}) AS DOUBLE)" if text else f"try_cast({raw} AS DOUBLE)"
    raise AssertionError(f"no Spark typing for {column.sql_type}")  # the schema has no other types


def typed_columns(staged_types: dict[str, str]) -> list[str]:
    """SELECT items giving every canonical column its typed value (TYPED + name), as `rules.typed_columns` does:
    text trimmed with '' as NULL, the event type lower-cased."""
    allowed = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    items = []
    for column in EVENT_COLUMNS:
        expr = typed_expression(column, staged_types.get(column.name))
        if column.name == "type":
            expr = f"CASE WHEN {expr} IN ({allowed}) THEN {expr} ELSE lower(regexp_replace({expr}, {_SPACES}, '')) END"
        elif column.sql_type == "VARCHAR":
            expr = f"nullif(regexp_replace({expr}, {_SPACES}, ''), '')"
        items.append(f"{expr} AS `{TYPED}{column.name}`")
    return items
