"""Validation rules for events, written once as SQL so every engine evaluates the same rules.

Ingestion of files (DuckDB, later Spark SQL) and the events API all run these checks. Each rule is a SQL
condition that is TRUE when a row is invalid; the first failing rule names the row's reason. Typed values
are computed once (`typed_columns`) and the rules read both the raw and the typed value.

Each rule also carries `passes`, a cheap test that is TRUE only where the rule cannot fail. The batch query
first ANDs the distinct `passes` tests (several rules share one, e.g. the allowed event types rule out an
empty, over-long or NUL-carrying type); only the rows that do not pass all of them, the few invalid ones,
walk the ordered rules to find their reason. Which tests a file needs is decided from its staged types: a
column the file already stores in the canonical type (a Parquet TIMESTAMP, INTEGER or DOUBLE) cannot fail
to read, so its read test is left out of the fast path. Likewise a text column whose distinct values in the file
were all found clean beforehand (`clean_values_sql`, run where those values are cheap to list: dictionary-encoded
Parquet) is typed as written, and only its NULL test stays in the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamrec.events.schema import EVENT_COLUMNS, EVENT_TYPES, TYPE_REQUIRES, Column
from streamrec.settings import IngestConfig

RAW = "r_"  # prefix of raw staged columns
TYPED = "t_"  # prefix of typed columns
_CONTROL = "'[\\x00-\\x1f\\x7f]'"  # a regex for one control character
_IDS = ("event_id", "user_id", "item_id", "request_id")  # text that must be free of any control character


@dataclass(frozen=True)
class Rule:
    """One check: `condition` (SQL, TRUE = invalid), the reason code counted in reports, the field it names,
    and `detail` (SQL producing the human-readable explanation, evaluated only for failing rows)."""

    code: str
    field: str
    condition: str
    detail: str
    passes: str = "FALSE"  # SQL, TRUE only where `condition` cannot be TRUE; "TRUE" = the rule cannot fail here


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _shown(sql: str) -> str:
    """A raw value shortened for an error message."""
    return f"coalesce(left(CAST({sql} AS VARCHAR), 40), 'NULL')"


def _utc(timestamptz: str) -> str:
    """A TIMESTAMPTZ as the UTC TIMESTAMP, from its epoch value (no time-zone library call per row; infinite
    values, which have no epoch, keep the plain cast)."""
    return f"coalesce(make_timestamp(epoch_us({timestamptz})), TRY_CAST({timestamptz} AS TIMESTAMP))"


_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT")
_NUMBERS = _INTEGERS + ("UINTEGER", "BIGINT", "UBIGINT", "HUGEINT", "UHUGEINT", "FLOAT", "DOUBLE")
_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_NS")  # not DATE: wider than TIMESTAMP


def always_reads(column: Column, staged_type: str | None) -> bool:
    """True when every non-NULL value of a raw column of `staged_type` has a typed value: the file already stores
    the canonical type or one that widens into it (a Parquet INTEGER for an INTEGER column, any number for a
    DOUBLE one, any timestamp or date for the event time). Such a column cannot fail its read test."""
    if staged_type is None:
        return False
    staged_type = staged_type.upper()
    if column.sql_type == "VARCHAR":
        return True
    if column.sql_type == "INTEGER":
        return staged_type in _INTEGERS
    if column.sql_type == "DOUBLE":
        return staged_type in _NUMBERS
    if column.sql_type == "TIMESTAMP":
        return staged_type in _TIMESTAMPS
    return False


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


def _trimmed(sql: str) -> str:
    """nullif(trim(value), ''), without trim's copy of a value it leaves as it is: one of ASCII only (as many
    characters as bytes, so no Unicode space, the only other thing trim removes), neither empty nor starting or
    ending with a space. Those tests cost less than the copy, and most values pass them."""
    return (f"CASE WHEN strlen({sql}) = length({sql}) AND {sql} <> '' AND NOT starts_with({sql}, ' ') "
            f"AND NOT ends_with({sql}, ' ') THEN {sql} ELSE nullif(trim({sql}), '') END")


def typed_columns(staged_types: dict[str, str], clean: frozenset[str] = frozenset()) -> list[str]:
    """SELECT items giving every canonical column a typed value, named TYPED + column name. A `clean` text column
    (every value of it in the file is its own typed value, see `clean_values_sql`) is taken as it is."""
    items = []
    for column in EVENT_COLUMNS:
        expr = typed_expression(column, staged_types.get(column.name))
        if column.name in clean:
            pass
        elif column.name == "type":  # an allowed type as written needs no lower(trim()), and most rows have one
            allowed = ", ".join(_q(t) for t in EVENT_TYPES)
            expr = f"CASE WHEN {expr} IN ({allowed}) THEN {expr} ELSE lower(trim({expr})) END"
        elif column.sql_type == "VARCHAR":
            expr = _trimmed(expr)
        items.append(f'{expr} AS "{TYPED}{column.name}"')
    return items


def build_rules(config: IngestConfig, staged_types: dict[str, str], check_titles: bool, check_users: bool,
                clean: frozenset[str] = frozenset()) -> list[Rule]:
    """The ordered rules for a batch whose raw columns have `staged_types` (canonical name → SQL type).

    `check_titles` / `check_users`: join against the catalog and the profiles (policy 'quarantine' and a
    non-empty catalog / user table); the batch query must then provide `known_title` / `known_user` booleans.
    `clean`: text columns whose every value in the file was found clean beforehand (`clean_values_sql` over the
    file's distinct values): no rule on a value alone can fail there, so only their NULL test stays in the fast
    path (the rules themselves stay, for the rows that leave it).
    """
    # Shared fast-path tests: one control-character test over the ids stands for the id rules, one NUL
    # test over the other joined text columns for their NUL-byte rules (concat skips NULLs); the allowed event
    # types stand for the type's text rules.
    def joined(names: list[str]) -> str:
        return f"concat({', '.join(f'{chr(34)}{TYPED}{n}{chr(34)}' for n in names)})"

    texts = [c.name for c in EVENT_COLUMNS
             if c.sql_type == "VARCHAR" and c.name in staged_types and c.name != "type" and c.name not in clean]
    ids = [n for n in texts if n in _IDS]
    others = [n for n in texts if n not in _IDS]
    # The ids' shared test, per id (no joined copy): URL encoding keeps a text as it is only when every byte is a
    # letter, a digit or one of -._~ (most ids), so none is a control character; otherwise JSON escapes every
    # character below 0x20 (so the JSON text of a string holding one is longer than the string plus its two
    # quotes; a quote or a backslash also lengthens it, and merely sends the row to the ordered rules), and DEL is
    # looked for on its own. Each costs a fraction of a regex match, and the JSON test only runs where URL
    # encoding changed the text.
    def clean_id(name: str) -> str:
        text = f'"{TYPED}{name}"'
        return (f"({text} IS NULL OR strlen(url_encode({text})) = strlen({text}) OR "
                f"(strlen(to_json({text})::VARCHAR) = strlen({text}) + 2 AND NOT contains({text}, chr(127))))")

    clean_ids = f"({' AND '.join(clean_id(n) for n in ids)})" if ids else "TRUE"
    no_nul = f"NOT contains({joined(others)}, chr(0))" if others else "TRUE"
    allowed_type = f'"{TYPED}type" IN ({", ".join(_q(t) for t in EVENT_TYPES)})'
    ts = f'"{TYPED}ts"'
    future = f"(now() AT TIME ZONE 'UTC') + INTERVAL {config.max_future_s} SECOND"
    ts_window = f"{ts} BETWEEN TIMESTAMP {_q(config.ts_floor)} AND {future}"

    rules: list[Rule] = []
    for column in EVENT_COLUMNS:
        raw, typed = f'"{RAW}{column.name}"', f'"{TYPED}{column.name}"'
        present = column.name in staged_types
        is_type = column.name == "type"  # an allowed type is a clean, non-empty word: that test covers its text rules
        is_clean = column.name in clean  # its value rules cannot fail: their fast-path test is TRUE
        if column.required:
            # Typed text is already trimmed and '' → NULL; for other types only a NULL typed value needs the
            # (slower) look at the raw text, and the OR skips that for every readable row.
            # A column that always reads is NULL exactly where its raw value is.
            empty = (f"{typed} IS NULL" if column.sql_type == "VARCHAR" or always_reads(column, staged_types.get(column.name))
                     else f"{raw} IS NULL OR ({typed} IS NULL AND trim(CAST({raw} AS VARCHAR)) = '')")
            rules.append(Rule("missing", column.name, empty if present else "TRUE", _q("required field is empty"),
                              (allowed_type if is_type and not is_clean else f"{typed} IS NOT NULL")
                              if present else "FALSE"))
        if not present:
            continue
        is_id = column.name in _IDS
        # Text rules read the typed value (the trimmed text), so raw text never needs keeping.
        is_text = column.sql_type == "VARCHAR"
        if is_text and not is_id:  # ids get the wider control-character rule below
            rules.append(Rule("nul_byte", column.name, f"contains({typed}, chr(0))", _q("contains a NUL byte"),
                              "TRUE" if is_clean else allowed_type if is_type else no_nul))
        if is_text and column.max_len is not None:
            # strlen (bytes, O(1)) >= length (characters), so only a long byte string pays for counting characters.
            rules.append(Rule("too_long", column.name,
                              f"strlen({typed}) > {column.max_len} AND length({typed}) > {column.max_len}",
                              f"'is ' || length({typed}) || ' characters, more than {column.max_len}'",
                              "TRUE" if is_clean
                              else allowed_type if is_type and max(map(len, EVENT_TYPES)) <= column.max_len
                              else f"({typed} IS NULL OR strlen({typed}) <= {column.max_len})"))
        if is_id:
            rules.append(Rule("bad_id", column.name, f"regexp_matches({typed}, {_CONTROL})",
                              f"CASE WHEN contains({typed}, chr(0)) THEN 'contains a NUL byte' "
                              "ELSE 'contains control characters' END", "TRUE" if is_clean else clean_ids))
        if not always_reads(column, staged_types[column.name]):  # else the file's own type rules it out
            # The typed test first: the raw value is only cast to text for the rows that did not read.
            rules.append(Rule("bad_type", column.name, f"{typed} IS NULL AND {raw} IS NOT NULL "
                              f"AND trim(CAST({raw} AS VARCHAR)) <> ''",
                              f"'cannot read ' || {_shown(raw)} || ' as {column.sql_type.lower()}'",
                              f"({typed} IS NOT NULL OR {raw} IS NULL)"))
        in_range = f"({typed} IS NULL OR {typed} BETWEEN {column.min_value} AND {column.max_value})" \
            if column.min_value is not None and column.max_value is not None else None
        if column.sql_type == "DOUBLE":  # NaN and infinities lie outside any finite range
            rules.append(Rule("out_of_range", column.name, f"NOT isfinite({typed})",
                              f"'is ' || {_shown(typed)} || ', not a finite number'",
                              in_range or f"({typed} IS NULL OR isfinite({typed}))"))
        if column.min_value is not None or column.max_value is not None:
            lo = column.min_value if column.min_value is not None else float("-inf")
            hi = column.max_value if column.max_value is not None else float("inf")
            rules.append(Rule("out_of_range", column.name, f"{typed} < {lo} OR {typed} > {hi}",
                              f"'is ' || {_shown(typed)} || ', outside [{lo:g}, {hi:g}]'", in_range or "FALSE"))
    rules.append(Rule("bad_enum", "type", f'"{TYPED}type" NOT IN ({", ".join(_q(t) for t in EVENT_TYPES)})',
                      f"'unknown event type ' || {_shown(chr(34) + TYPED + 'type' + chr(34))} || "
                      f"', expected one of {', '.join(EVENT_TYPES)}'", "TRUE" if "type" in clean else allowed_type))
    rules.append(Rule("ts_too_old", "ts", f"{ts} < TIMESTAMP {_q(config.ts_floor)}",
                      f"'is ' || {_shown(ts)} || ', before the floor {config.ts_floor}'", ts_window))
    rules.append(Rule("ts_future", "ts", f"{ts} > {future}", f"'is ' || {_shown(ts)} || ', in the future'", ts_window))
    for event_type, fields in TYPE_REQUIRES.items():
        for name in fields:
            # The NULL test first: cheaper than the string comparison, and rows that have the field skip that.
            rules.append(Rule("type_field_missing", name,
                              f"\"{TYPED}{name}\" IS NULL AND \"{TYPED}type\" = {_q(event_type)}",
                              _q(f"{event_type} events need {name}"),
                              f"(\"{TYPED}{name}\" IS NOT NULL OR \"{TYPED}type\" <> {_q(event_type)})"))
    if check_titles:
        rules.append(Rule("unknown_title", "item_id", "NOT known_title",
                          f"'title ' || {_shown(chr(34) + TYPED + 'item_id' + chr(34))} || ' is not in the catalog'",
                          "known_title"))
    if check_users:
        rules.append(Rule("unknown_user", "user_id", "NOT known_user",
                          f"'user ' || {_shown(chr(34) + TYPED + 'user_id' + chr(34))} || ' has no profile'",
                          "known_user"))
    return rules


def kept_raw_columns(staged_types: dict[str, str]) -> list[str]:
    """Raw columns the rules still read after typing: the non-text ones that may fail to read (to tell 'missing'
    from 'unreadable'); a column that always reads shows its typed value instead."""
    return [c.name for c in EVENT_COLUMNS if c.name in staged_types and not always_reads(c, staged_types[c.name])]


def first_failing_sql(rules: list[Rule]) -> str:
    """One CASE giving the index of the first failing rule, NULL for a valid row. A condition that is NULL
    does not match a WHEN, so the conditions need no coalesce (which would cost a pass per rule)."""
    return f"CASE {' '.join(f'WHEN ({r.condition}) THEN {i}' for i, r in enumerate(rules))} ELSE NULL END"


def passes_sql(rules: list[Rule]) -> str:
    """The AND of the rules' distinct fast-path tests: TRUE only for a row that no rule fails. The (costlier)
    control-character test of the ids goes last, so rows that already failed skip it."""
    tests = list(dict.fromkeys(r.passes for r in rules if r.passes != "TRUE"))
    tests.sort(key=lambda t: "to_json" in t)
    return " AND ".join(f"({t})" for t in tests) or "TRUE"


def reason_index_sql(rules: list[Rule]) -> str:
    """The index of the row's first failing rule, NULL for a valid row: valid rows stop at the shared fast-path
    tests (`passes_sql`); only the rest, the few invalid rows, walk the ordered rules (`first_failing_sql`)."""
    return f"CASE WHEN {passes_sql(rules)} THEN NULL ELSE {first_failing_sql(rules)} END"


def detail_sql(rules: list[Rule], index_column: str) -> str:
    """CASE producing the detail text of the failing rule whose index is in `index_column`."""
    whens = " ".join(f"WHEN {index_column} = {i} THEN {r.detail}" for i, r in enumerate(rules))
    return f"CASE {whens} END"


# Rules that judge a text value on its own (no other column, no catalog): the ones a clean column cannot fail.
VALUE_RULES = ("missing", "nul_byte", "too_long", "bad_id", "bad_enum")


def clean_values_sql(name: str, values: str) -> str:
    """A query over `values`, a table with one text column RAW + name (the distinct values of that column in a
    file, or any superset of them), giving TRUE when every non-NULL value is clean: its typed value is the value
    itself (nothing to trim, not empty, an event type as written) and no rule on the value alone fails. Written
    with the same typed expression and rule conditions as the batch query, so a clean column needs neither."""
    item = next(t for t in typed_columns({name: "VARCHAR"}) if t.endswith(f'"{TYPED}{name}"'))
    rules = [r for r in build_rules(IngestConfig(), {name: "VARCHAR"}, False, False)
             if r.field == name and r.code in VALUE_RULES]
    fails = " OR ".join(f"coalesce(({r.condition}), FALSE)" for r in rules) or "FALSE"
    raw, typed = f'"{RAW}{name}"', f'"{TYPED}{name}"'
    return (f"SELECT coalesce(bool_and({typed} IS NOT DISTINCT FROM {raw} AND NOT ({fails})), TRUE) "
            f"FROM (SELECT {raw}, {item} FROM {values} WHERE {raw} IS NOT NULL)")
