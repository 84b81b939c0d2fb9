"""Small SQL helpers shared by the preprocessing steps: checked relation names and column checks."""

from __future__ import annotations

import re
from collections.abc import Iterable

import duckdb

from streamrec.errors import ConfigError, DataError, NotFound

_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def relation(name: str) -> str:
    """`name` if it is a plain (optionally schema-qualified) relation name, so it can go into SQL text.

    Raises:
        ConfigError: the name has characters other than letters, digits, '_' and '.'.
    """
    if not isinstance(name, str) or not _RELATION.match(name):
        raise ConfigError(f"not a plain table or view name: {name!r}")
    return name


def output_name(name: str) -> str:
    """`name` if it is a plain unqualified name for a table or view this package creates."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"not a plain output table name: {name!r}")
    return name


def columns_of(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    """Column names of a relation.

    Raises:
        NotFound: there is no such table or view.
    """
    try:
        cursor = con.execute(f"SELECT * FROM {relation(source)} LIMIT 0")
    except duckdb.CatalogException as exc:
        raise NotFound("table", source, "no such table or view in the database") from exc
    return [d[0] for d in cursor.description]


def require_columns(con: duckdb.DuckDBPyConnection, source: str, needed: Iterable[str]) -> list[str]:
    """The relation's columns, after checking that every column in `needed` is among them.

    Raises:
        NotFound: there is no such table or view.
        DataError: columns are missing (all of them are named).
    """
    have = columns_of(con, source)
    missing = [c for c in needed if c not in have]
    if missing:
        raise DataError(source, f"missing column(s) {', '.join(missing)} (has: {', '.join(have)})")
    return have


def sql_float(value: float) -> str:
    """A float as an SQL DOUBLE literal (config values are pasted into SQL text, never user strings)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def sql_str_list(values: Iterable[str]) -> str:
    """A list of known constant strings as an SQL list, e.g. ('play', 'progress')."""
    items = []
    for v in values:
        if not _NAME.match(v):
            raise ConfigError(f"not a plain constant: {v!r}")
        items.append(f"'{v}'")
    return "(" + ", ".join(items) + ")"


def drop_temp(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a temporary table or view called `name` if there is one (never a persistent one).

    Looks the kind up first: a failed DROP would abort the caller's transaction.
    """
    out = output_name(name)
    found = con.execute(
        "SELECT 'VIEW' FROM duckdb_views() WHERE database_name = 'temp' AND view_name = ? "
        "UNION ALL SELECT 'TABLE' FROM duckdb_tables() WHERE database_name = 'temp' AND table_name = ?",
        [out, out],
    ).fetchall()
    for (kind,) in found:
        con.execute(f"DROP {kind} temp.main.{out}")


def create_table(con: duckdb.DuckDBPyConnection, name: str, query: str, *, temporary: bool) -> str:
    """CREATE (OR REPLACE) a table from a query: a temporary one, or a persistent one in the default schema."""
    out = output_name(name)
    if temporary:
        drop_temp(con, out)
        con.execute(f"CREATE TEMP TABLE {out} AS {query}")
    else:
        con.execute(f"CREATE OR REPLACE TABLE {out} AS {query}")
    return out
