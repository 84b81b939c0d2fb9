"""Validation rules for events, written once as SQL so every engine evaluates the same rules.

Ingestion of files (DuckDB, later Spark SQL) and the events API all run these checks. Each rule is a SQL
condition that is TRUE when a row is invalid; the first failing rule names the row's reason. Typed values
are computed once (`typed_columns`) and the rules read both the raw and the typed value.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamrec.events.schema import EVENT_COLUMNS, EVENT_TYPES, TYPE_REQUIRES, Column
from streamrec.settings import IngestConfig

RAW = "r_"  # prefix of raw staged columns
TYPED = "t_"  # prefix of typed columns


@dataclass(frozen=True)
class Rule:
    """One check: `condition` (SQL, TRUE = invalid), the reason code counted in reports, the field it names,
    and `detail` (SQL producing the human-readable explanation, evaluated only for failing rows)."""

    code: str
    field: str
    condition: str
    detail: str


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _shown(sql: str) -> str:
    """A raw value shortened for an error message."""
    return f"coalesce(left(CAST({sql} AS VARCHAR), 40), 'NULL')"


def typed_expression(column: Column, staged_type: str | None) -> str:
    """SQL turning the staged raw column into the canonical type (NULL when it cannot be read)."""
    raw = f'"{RAW}{column.name}"'
    if staged_type is None:
        return f"CAST(NULL AS {column.sql_type})"
    staged_type = staged_type.upper()
    if column.sql_type == "TIMESTAMP":
        if staged_type in ("VARCHAR", "STRING"):
            # Epoch numbers (seconds, or milliseconds when > 1e11) or ISO 8601 with an optional offset.
            return (
                f"CASE WHEN regexp_full_match(trim({raw}), '-?[0-9]{{1,14}}(\\.[0-9]+)?') THEN "
                f"CASE WHEN abs(TRY_CAST(trim({raw}) AS DOUBLE)) > 1e11 "
                f"THEN make_timestamp(TRY_CAST(TRY_CAST(trim({raw}) AS DOUBLE) * 1000 AS BIGINT)) "
                f"ELSE make_timestamp(TRY_CAST(TRY_CAST(trim({raw}) AS DOUBLE) * 1000000 AS BIGINT)) END "
                f"ELSE TRY_CAST(TRY_CAST(trim({raw}) AS TIMESTAMPTZ) AS TIMESTAMP) END"
            )
        if any(k in staged_type for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL")):
            return (
                f"CASE WHEN abs({raw}) > 1e11 THEN make_timestamp(TRY_CAST({raw} * 1000 AS BIGINT)) "
                f"ELSE make_timestamp(TRY_CAST({raw} * 1000000 AS BIGINT)) END"
            )
        return f"TRY_CAST({raw} AS TIMESTAMP)"
    if column.sql_type == "VARCHAR":
        return f"CAST({raw} AS VARCHAR)" if staged_type not in ("VARCHAR", "STRING") else raw
    if column.sql_type in ("INTEGER", "DOUBLE") and staged_type in ("VARCHAR", "STRING"):
        return f"TRY_CAST(trim({raw}) AS {column.sql_type})"
    return f"TRY_CAST({raw} AS {column.sql_type})"


def typed_columns(staged_types: dict[str, str]) -> list[str]:
    """SELECT items giving every canonical column a typed value, named TYPED + column name."""
    items = []
    for column in EVENT_COLUMNS:
        expr = typed_expression(column, staged_types.get(column.name))
        if column.name == "type":
            expr = f"lower(trim({expr}))"
        elif column.sql_type == "VARCHAR":
            expr = f"nullif(trim({expr}), '')"
        items.append(f'{expr} AS "{TYPED}{column.name}"')
    return items


def build_rules(config: IngestConfig, staged_types: dict[str, str], check_titles: bool, check_users: bool) -> list[Rule]:
    """The ordered rules for a batch whose raw columns have `staged_types` (canonical name → SQL type).

    `check_titles` / `check_users`: join against the catalog and the profiles (policy 'quarantine' and a
    non-empty catalog / user table); the batch query must then provide `known_title` / `known_user` booleans.
    """
    rules: list[Rule] = []
    for column in EVENT_COLUMNS:
        raw, typed = f'"{RAW}{column.name}"', f'"{TYPED}{column.name}"'
        present = column.name in staged_types
        is_text = present and staged_types[column.name].upper() in ("VARCHAR", "STRING")
        if column.required:
            rules.append(Rule("missing", column.name, f"{raw} IS NULL OR trim(CAST({raw} AS VARCHAR)) = ''",
                              _q("required field is empty")))
        if not present:
            continue
        if is_text:
            rules.append(Rule("nul_byte", column.name, f"contains({raw}, chr(0))", _q("contains a NUL byte")))
            if column.max_len is not None:
                rules.append(Rule("too_long", column.name, f"length({raw}) > {column.max_len}",
                                  f"'is ' || length({raw}) || ' characters, more than {column.max_len}'"))
        if column.sql_type == "VARCHAR" and column.name in ("event_id", "user_id", "item_id", "request_id"):
            rules.append(Rule("bad_id", column.name, f"regexp_matches({typed}, '[\\x00-\\x1f\\x7f]')",
                              _q("contains control characters")))
        if column.sql_type != "VARCHAR":
            rules.append(Rule("bad_type", column.name, f"{raw} IS NOT NULL AND trim(CAST({raw} AS VARCHAR)) <> '' "
                              f"AND {typed} IS NULL",
                              f"'cannot read ' || {_shown(raw)} || ' as {column.sql_type.lower()}'"))
        if column.sql_type == "DOUBLE":
            rules.append(Rule("out_of_range", column.name, f"NOT isfinite({typed})",
                              f"'is ' || {_shown(typed)} || ', not a finite number'"))
        if column.min_value is not None or column.max_value is not None:
            lo = column.min_value if column.min_value is not None else float("-inf")
            hi = column.max_value if column.max_value is not None else float("inf")
            rules.append(Rule("out_of_range", column.name, f"{typed} < {lo} OR {typed} > {hi}",
                              f"'is ' || {_shown(typed)} || ', outside [{lo:g}, {hi:g}]'"))
    rules.append(Rule("bad_enum", "type", f'"{TYPED}type" NOT IN ({", ".join(_q(t) for t in EVENT_TYPES)})',
                      f"'unknown event type ' || {_shown(chr(34) + RAW + 'type' + chr(34))} || "
                      f"', expected one of {', '.join(EVENT_TYPES)}'"))
    rules.append(Rule("ts_too_old", "ts", f"\"{TYPED}ts\" < TIMESTAMP {_q(config.ts_floor)}",
                      f"'is ' || {_shown(chr(34) + TYPED + 'ts' + chr(34))} || ', before the floor {config.ts_floor}'"))
    rules.append(Rule("ts_future", "ts",
                      f"\"{TYPED}ts\" > (now() AT TIME ZONE 'UTC') + INTERVAL {config.max_future_s} SECOND",
                      f"'is ' || {_shown(chr(34) + TYPED + 'ts' + chr(34))} || ', in the future'"))
    for event_type, fields in TYPE_REQUIRES.items():
        for name in fields:
            rules.append(Rule("type_field_missing", name, f"\"{TYPED}type\" = {_q(event_type)} AND \"{TYPED}{name}\" IS NULL",
                              _q(f"{event_type} events need {name}")))
    if check_titles:
        rules.append(Rule("unknown_title", "item_id", "NOT known_title",
                          f"'title ' || {_shown(chr(34) + TYPED + 'item_id' + chr(34))} || ' is not in the catalog'"))
    if check_users:
        rules.append(Rule("unknown_user", "user_id", "NOT known_user",
                          f"'user ' || {_shown(chr(34) + TYPED + 'user_id' + chr(34))} || ' has no profile'"))
    return rules


def reason_index_sql(rules: list[Rule]) -> str:
    """One CASE giving the index of the first failing rule, NULL for a valid row (cheap on valid rows)."""
    whens = " ".join(f"WHEN coalesce(({r.condition}), FALSE) THEN {i}" for i, r in enumerate(rules))
    return f"CASE {whens} ELSE NULL END"


def detail_sql(rules: list[Rule], index_column: str) -> str:
    """CASE producing the detail text of the failing rule whose index is in `index_column`."""
    whens = " ".join(f"WHEN {index_column} = {i} THEN {r.detail}" for i, r in enumerate(rules))
    return f"CASE {whens} END"
