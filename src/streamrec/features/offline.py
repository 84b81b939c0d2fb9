"""Offline features, point-in-time correct: for each (entity, time) row of a spine, aggregates of that entity's
events strictly before the time, so a training example never sees its own future (no leakage)."""

from __future__ import annotations

import re
import uuid
import zlib

import duckdb
import numpy as np
import pyarrow as pa

from streamrec.errors import DataError
from streamrec.features.definitions import CATALOG, Attribute, Definition, Feature, GenreMatch, Ratio

KEY = {"user": "user_id", "title": "item_id"}


def category_codes(values: list[str | None]) -> np.ndarray:
    """A stable number per category value (CRC-32, NaN for missing), so a model trained on codes reads the same
    codes online, whatever values appear in a batch (a per-batch dictionary encoding would renumber them)."""
    return np.array([float(zlib.crc32(v.encode())) if v is not None else np.nan for v in values], dtype=np.float64)


def feature_sql(feature: Feature, time_col: str = "s.ts", event: str = "e") -> str:
    """The SQL aggregate of one feature over events `event` joined to spine rows whose time is `time_col`."""
    types = ", ".join(f"'{t}'" for t in feature.events)
    conditions = [f"{event}.type IN ({types})"]
    if feature.window_days is not None:
        seconds = int(round(feature.window_days * 86_400))
        conditions.append(f"{event}.ts >= {time_col} - to_seconds({seconds})")
    where = " AND ".join(conditions)
    if feature.aggregation == "count":
        return f"count(*) FILTER (WHERE {where})"
    if feature.aggregation == "sum":
        return f"coalesce(sum({event}.{feature.value}) FILTER (WHERE {where}), 0)"
    if feature.aggregation == "mean":
        return f"avg({event}.{feature.value}) FILTER (WHERE {where})"
    # days_since_last
    return f"(epoch_us({time_col}) - epoch_us(max({event}.ts) FILTER (WHERE {where}))) / 86400e6"


def point_in_time(con: duckdb.DuckDBPyConnection, spine: pa.Table, features: list[Definition],
                  events: str = "events") -> pa.Table:
    """Each spine row with the features of its entities as of its `ts` (events at or after `ts` never count).

    Args:
        con: a DuckDB connection where `events` (user_id, item_id, type, ts, watched_s, fraction, rating) is visible,
            and the catalog tables `users` / `titles` when attributes of theirs are asked for (absent: NULL).
        spine: rows with `ts` (UTC timestamp) and the key column of each entity asked for: `user_id` for user
            features, `item_id` for title features; context features may also read a `device` column.
        features: the definitions to compute (see `streamrec.features.definitions`).
        events: the events relation's name.
    Returns:
        The spine's columns, in its row order, then one column per feature.
    Raises:
        DataError: the spine lacks `ts` or a key column its features need.
    """
    need = {"ts"} | {KEY[f.entity] for f in features if f.entity in KEY}
    if any(f.entity == "user_title" for f in features):
        need |= {"user_id", "item_id"}
    missing = sorted(need - set(spine.column_names))
    if missing:
        raise DataError("feature spine", f"missing columns {missing} (has {spine.column_names})")
    # context attributes read the request's device beside its time; a spine without one has no device (NULL)
    no_device = any(f.entity == "context" for f in features) and "device" not in spine.column_names
    shown = spine.column_names
    if no_device:
        spine = spine.append_column("device", pa.nulls(spine.num_rows, pa.string()))
    name = f"spine_{uuid.uuid4().hex[:12]}"
    con.register(name, spine.append_column("__row", pa.array(range(spine.num_rows), pa.int64())))
    try:
        columns: dict[str, str] = {}
        joins = []
        for entity in ("user", "title"):
            chosen = [f for f in features if f.entity == entity and isinstance(f, Feature | Ratio)]
            if chosen:
                alias = f"{entity}_f"
                joins.append(f"LEFT JOIN ({_entity_query(name, entity, chosen, events)}) {alias} "
                             f"ON {alias}.__row = s.__row")
                columns.update({f.name: f'{alias}."{f.name}"' for f in chosen})
            attributes = [f for f in features if f.entity == entity and isinstance(f, Attribute)]
            if attributes and has_table(con, CATALOG[entity]):
                joins.append(f"LEFT JOIN {CATALOG[entity]} c_{entity} ON c_{entity}.{KEY[entity]} = s.{KEY[entity]}")
                columns.update({f.name: f"{attribute_sql(f, f'c_{entity}')}" for f in attributes})
            else:  # no catalog loaded (e.g. a bare events file): the attribute is unknown
                columns.update({f.name: f"CAST(NULL AS {f.dtype})" for f in attributes})
        columns.update({f.name: attribute_sql(f, "c") for f in features if f.entity == "context"})
        for i, f in enumerate(f for f in features if isinstance(f, GenreMatch)):
            if has_table(con, "titles"):
                joins.append(f"LEFT JOIN ({_genre_match_query(name, f, events)}) gm{i} ON gm{i}.__row = s.__row")
                columns[f.name] = f"coalesce(gm{i}.value, 0.0)"
            else:
                columns[f.name] = "CAST(NULL AS DOUBLE)"
        selects = [f'CAST({columns[f.name]} AS {f.dtype}) AS "{f.name}"' if isinstance(f, Attribute)
                   else f'{columns[f.name]} AS "{f.name}"' for f in features]
        cols = ", ".join(f's."{c}"' for c in shown)
        query = (f"SELECT {', '.join([cols, *selects])} FROM {name} s "
                 f"{' '.join(joins)} ORDER BY s.__row")
        return con.sql(query).to_arrow_table()
    finally:
        con.unregister(name)


def _genre_match_query(spine: str, feature: GenreMatch, events: str) -> str:
    """Per spine row: mean over the title's genres of the share of the user's matching events in that genre."""
    types = ", ".join(f"'{t}'" for t in feature.events)
    window = ""
    if feature.window_days is not None:
        window = f" AND e.ts >= s.ts - to_seconds({int(round(feature.window_days * 86_400))})"
    return (
        f"WITH hist AS (SELECT s.__row, e.item_id FROM {spine} s JOIN {events} e ON e.user_id = s.user_id "
        f"AND e.ts < s.ts{window} AND e.type IN ({types})), "
        "n AS (SELECT __row, count(*) AS n FROM hist GROUP BY __row), "
        "watched AS (SELECT __row, genre, count(*) AS k FROM (SELECT h.__row, unnest(list_distinct(c.genres)) "
        "AS genre FROM hist h JOIN titles c ON c.item_id = h.item_id) GROUP BY ALL), "
        f"own AS (SELECT s.__row, unnest(list_distinct(c.genres)) AS genre FROM {spine} s "
        "JOIN titles c ON c.item_id = s.item_id) "
        "SELECT own.__row, avg(coalesce(watched.k, 0) / n.n) AS value FROM own JOIN n ON n.__row = own.__row "
        "LEFT JOIN watched ON watched.__row = own.__row AND watched.genre = own.genre GROUP BY own.__row"
    )


def attribute_sql(attribute: Attribute, alias: str) -> str:
    """The attribute's expression with its catalog alias `c.` renamed to this query's."""
    return re.sub(r"\bc\.", f"{alias}.", attribute.sql)


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a table or view (a registered Arrow table too) of that name is visible on the connection."""
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [table]).fetchall()[0][0])


def _aggregate_sql(feature: Feature | Ratio) -> str:
    if isinstance(feature, Ratio):
        return (f"CAST({feature_sql(feature.numerator)} AS DOUBLE) / "
                f"nullif(CAST({feature_sql(feature.denominator)} AS DOUBLE), 0)")
    return feature_sql(feature)


def _entity_query(spine: str, entity: str, features: list[Feature | Ratio], events: str) -> str:
    """One range join of the spine's rows with their entity's earlier events, all features as filtered aggregates.

    The join reaches back only as far as the longest window when every feature has one.
    """
    key = KEY[entity]
    aggregates = ", ".join(f'{_aggregate_sql(f)} AS "{f.name}"' for f in features)
    windows = [f.window_days for f in features]
    reach = ""
    if all(w is not None for w in windows):
        reach = f" AND e.ts >= s.ts - to_seconds({int(round(max(windows) * 86_400))})"
    return (f"SELECT s.__row, {aggregates} "
            f"FROM {spine} s "
            f"LEFT JOIN {events} e ON e.{key} = s.{key} AND e.ts < s.ts{reach} GROUP BY s.__row, s.ts")
