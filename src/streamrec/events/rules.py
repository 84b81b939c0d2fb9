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


def _utc(timestamptz: str) -> str:
    """A TIMESTAMPTZ as the UTC TIMESTAMP, from its epoch value (no time-zone library call per row; infinite
    values, which have no epoch, keep the plain cast)."""
    return f"coalesce(make_timestamp(epoch_us({timestamptz})), TRY_CAST({timestamptz} AS TIMESTAMP))"


def typed_expression(column: Column, staged_type: str | None) -> str:
    """SQL turning the staged raw column into the canonical type (NULL when it cannot be read)."""
    raw = f'"{RAW}{column.name}"'
    if staged_type is None:
        return f"CAST(NULL AS {column.sql_type})"
    staged_type = staged_type.upper()
    if column.sql_type == "TIMESTAMP":
        if staged_type in ("VARCHAR", "STRING"):
            # ISO 8601 with an optional offset (the common case, tried first), else epoch seconds, or
            # milliseconds when the number is > 1e11. COALESCE only evaluates later branches for the misses.
            number = f"TRY_CAST(trim({raw}) AS DOUBLE)"
            return (
                f"coalesce({_utc(f'TRY_CAST({raw} AS TIMESTAMPTZ)')}, "
                f"{_utc(f'TRY_CAST(trim({raw}) AS TIMESTAMPTZ)')}, "
                f"CASE WHEN regexp_full_match(trim({raw}), '-?[0-9]{{1,14}}(\\.[0-9]+)?') THEN "
                f"make_timestamp(TRY_CAST(CASE WHEN abs({number}) > 1e11 THEN {number} * 1000 "
                f"ELSE {number} * 1000000 END AS BIGINT)) END)"
            )
        if staged_type in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
            return _utc(raw)
        if any(k in staged_type for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL")):
            return (
                f"CASE WHEN abs({raw}) > 1e11 THEN make_timestamp(TRY_CAST({raw} * 1000 AS BIGINT)) "
                f"ELSE make_timestamp(TRY_CAST({raw} * 1000000 AS BIGINT)) END"
            )
        return f"TRY_CAST({raw} AS TIMESTAMP)"
    if column.sql_type == "VARCHAR":
        return f"CAST({raw} AS VARCHAR)" if staged_type not in ("VARCHAR", "STRING") else raw
    if column.sql_type in ("INTEGER", "DOUBLE") and staged_type in ("VARCHAR", "STRING"):
        # The cast itself skips ASCII spaces; trim (which also strips Unicode spaces) only runs where it fails.
        return f"coalesce(TRY_CAST({raw} AS {column.sql_type}), TRY_CAST(trim({raw}) AS {column.sql_type}))"
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
        if column.required:
            # Typed text is already trimmed and '' → NULL; for other types only a NULL typed value needs the
            # (slower) look at the raw text, and the OR skips that for every readable row.
            empty = (f"{typed} IS NULL" if column.sql_type == "VARCHAR"
                     else f"{raw} IS NULL OR ({typed} IS NULL AND trim(CAST({raw} AS VARCHAR)) = '')")
            rules.append(Rule("missing", column.name, empty if present else "TRUE", _q("required field is empty")))
        if not present:
            continue
        is_id = column.name in ("event_id", "user_id", "item_id", "request_id")
        # Text rules read the typed value (the trimmed text), so raw text never needs keeping.
        is_text = column.sql_type == "VARCHAR"
        if is_text and not is_id:  # ids get the wider control-character rule below
            rules.append(Rule("nul_byte", column.name, f"contains({typed}, chr(0))", _q("contains a NUL byte")))
        if is_text and column.max_len is not None:
            # strlen (bytes, O(1)) >= length (characters), so only a long byte string pays for counting characters.
            rules.append(Rule("too_long", column.name,
                              f"strlen({typed}) > {column.max_len} AND length({typed}) > {column.max_len}",
                              f"'is ' || length({typed}) || ' characters, more than {column.max_len}'"))
        if is_id:
            rules.append(Rule("bad_id", column.name, f"regexp_matches({typed}, '[\\x00-\\x1f\\x7f]')",
                              f"CASE WHEN contains({typed}, chr(0)) THEN 'contains a NUL byte' "
                              "ELSE 'contains control characters' END"))
        if column.sql_type != "VARCHAR":
            # The typed test first: the raw value is only cast to text for the rows that did not read.
            rules.append(Rule("bad_type", column.name, f"{typed} IS NULL AND {raw} IS NOT NULL "
                              f"AND trim(CAST({raw} AS VARCHAR)) <> ''",
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
                      f"'unknown event type ' || {_shown(chr(34) + TYPED + 'type' + chr(34))} || "
                      f"', expected one of {', '.join(EVENT_TYPES)}'"))
    rules.append(Rule("ts_too_old", "ts", f"\"{TYPED}ts\" < TIMESTAMP {_q(config.ts_floor)}",
                      f"'is ' || {_shown(chr(34) + TYPED + 'ts' + chr(34))} || ', before the floor {config.ts_floor}'"))
    rules.append(Rule("ts_future", "ts",
                      f"\"{TYPED}ts\" > (now() AT TIME ZONE 'UTC') + INTERVAL {config.max_future_s} SECOND",
                      f"'is ' || {_shown(chr(34) + TYPED + 'ts' + chr(34))} || ', in the future'"))
    for event_type, fields in TYPE_REQUIRES.items():
        for name in fields:
            # The NULL test first: cheaper than the string comparison, and rows that have the field skip that.
            rules.append(Rule("type_field_missing", name,
                              f"\"{TYPED}{name}\" IS NULL AND \"{TYPED}type\" = {_q(event_type)}",
                              _q(f"{event_type} events need {name}")))
    if check_titles:
        rules.append(Rule("unknown_title", "item_id", "NOT known_title",
                          f"'title ' || {_shown(chr(34) + TYPED + 'item_id' + chr(34))} || ' is not in the catalog'"))
    if check_users:
        rules.append(Rule("unknown_user", "user_id", "NOT known_user",
                          f"'user ' || {_shown(chr(34) + TYPED + 'user_id' + chr(34))} || ' has no profile'"))
    return rules


def kept_raw_columns(staged_types: dict[str, str]) -> list[str]:
    """Raw columns the rules still read after typing: the non-text ones (to tell 'missing' from 'unreadable')."""
    return [c.name for c in EVENT_COLUMNS if c.name in staged_types and c.sql_type != "VARCHAR"]


_CONTROL = "'[\\x00-\\x1f\\x7f]'"


def reason_index_sql(rules: list[Rule]) -> str:
    """One CASE giving the index of the first failing rule, NULL for a valid row.

    The per-id control-character rules are tested together first (one regex over the joined ids instead of
    one per column); only a row that fails it pays for finding which id it was. A condition that is NULL does
    not match a WHEN, so the conditions need no coalesce (which would cost a pass per rule over every row).
    """
    ids = [(i, r) for i, r in enumerate(rules) if r.code == "bad_id"]
    whens = []
    for i, rule in enumerate(rules):
        if rule.code != "bad_id":
            whens.append(f"WHEN ({rule.condition}) THEN {i}")
        elif i == ids[0][0]:
            joined = ", ".join(f'"{TYPED}{r.field}"' for _, r in ids)
            which = " ".join(f"WHEN ({r.condition}) THEN {j}" for j, r in ids)
            whens.append(f"WHEN regexp_matches(concat({joined}), {_CONTROL}) THEN CASE {which} END")
    return f"CASE {' '.join(whens)} ELSE NULL END"


def detail_sql(rules: list[Rule], index_column: str) -> str:
    """CASE producing the detail text of the failing rule whose index is in `index_column`."""
    whens = " ".join(f"WHEN {index_column} = {i} THEN {r.detail}" for i, r in enumerate(rules))
    return f"CASE {whens} END"
