"""Sessionization: split each user's events into sessions at gaps of inactivity, in SQL.

A user's events are ordered by (ts, event_id). The first event starts session 1; an event more than
`gap_s` seconds after the user's previous event starts the next session (a gap of exactly `gap_s` stays
in the session). `session_seq` counts a user's sessions from 1, and `session_id` is "<user_id>:<session_seq>",
so the ids are deterministic and the same on every run over the same events.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from streamrec.preprocess._sql import drop_temp, output_name, relation, require_columns

SESSION_INPUT_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "item_id", "type", "ts")


def sessionize(
    con: duckdb.DuckDBPyConnection,
    source: str,
    gap_s: float,
    *,
    output: str = "sessionized_events",
    materialize: bool = False,
) -> str:
    """Create `output`: every column of `source` plus `session_seq` (INTEGER) and `session_id` (VARCHAR).

    Args:
        con: the database holding `source`.
        source: a table or view with canonical event columns.
        gap_s: inactivity (seconds) after which the next event starts a new session; must be > 0.
        output: name of the view (or table) to create; replaced if it exists.
        materialize: create a temporary table instead of a temporary view (computed once).

    Returns:
        The name of the created view or table.
    """
    src = relation(source)
    out = output_name(output)
    columns = require_columns(con, src, SESSION_INPUT_COLUMNS)
    query = sessionize_query(src, columns, gap_s)
    kind = "TABLE" if materialize else "VIEW"
    drop_temp(con, out)
    con.execute(f"CREATE TEMP {kind} {out} AS {query}")
    return out


def sessionize_query(source: str, columns: Sequence[str], gap_s: float) -> str:
    """The query behind `sessionize` (DuckDB SQL; the Spark engine runs it translated): `columns` of `source`
    plus session_seq and session_id."""
    if gap_s <= 0:
        raise ValueError(f"gap_s must be > 0, got {gap_s}")
    gap_us = round(gap_s * 1_000_000)
    kept = ", ".join(f'"{c}"' for c in columns)
    return f"""
        WITH gaps AS (
            SELECT *,
                   epoch_us(ts) - lag(epoch_us(ts)) OVER (PARTITION BY user_id ORDER BY ts, event_id) AS _gap_us
            FROM {relation(source)}
        ), numbered AS (
            SELECT {kept},
                   CAST(sum(CASE WHEN _gap_us IS NULL OR _gap_us > {gap_us} THEN 1 ELSE 0 END)
                        OVER (PARTITION BY user_id ORDER BY ts, event_id ROWS UNBOUNDED PRECEDING) AS INTEGER)
                       AS session_seq
            FROM gaps
        )
        SELECT *, user_id || ':' || CAST(session_seq AS VARCHAR) AS session_id FROM numbered
        """


def session_summary(
    con: duckdb.DuckDBPyConnection,
    sessionized: str,
    *,
    output: str = "session_summary",
) -> str:
    """Create a temporary table with one row per session of a `sessionize` result.

    Columns: user_id, session_id, session_seq, start_ts, end_ts, duration_s (DOUBLE), n_events,
    n_titles (distinct), n_impressions, n_plays, n_completes, watched_s (largest per title, summed).

    Returns:
        The name of the created table.
    """
    src = relation(sessionized)
    out = output_name(output)
    require_columns(con, src, (*SESSION_INPUT_COLUMNS, "watched_s", "session_id", "session_seq"))
    drop_temp(con, out)
    con.execute(f"CREATE TEMP TABLE {out} AS {session_summary_query(src)}")
    return out


def session_summary_query(sessionized: str) -> str:
    """The query behind `session_summary` (DuckDB SQL; the Spark engine runs it translated)."""
    return f"""
        WITH per_title AS (
            SELECT user_id, session_id, item_id, max(watched_s) AS watched_s
            FROM {relation(sessionized)} GROUP BY user_id, session_id, item_id
        ), watched AS (
            SELECT session_id, coalesce(sum(watched_s), 0.0) AS watched_s FROM per_title GROUP BY session_id
        )
        SELECT s.user_id, s.session_id, s.session_seq,
               min(s.ts) AS start_ts, max(s.ts) AS end_ts,
               (epoch_us(max(s.ts)) - epoch_us(min(s.ts))) / 1e6 AS duration_s,
               count(*) AS n_events,
               count(DISTINCT s.item_id) AS n_titles,
               count(*) FILTER (WHERE s.type = 'impression') AS n_impressions,
               count(*) FILTER (WHERE s.type = 'play') AS n_plays,
               count(*) FILTER (WHERE s.type = 'complete') AS n_completes,
               any_value(w.watched_s) AS watched_s
        FROM {relation(sessionized)} s JOIN watched w USING (session_id)
        GROUP BY s.user_id, s.session_id, s.session_seq
        ORDER BY s.user_id, s.session_seq
        """
