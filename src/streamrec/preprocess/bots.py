"""Bot and abuse detection: users whose activity no person could produce, found with three SQL checks.

Only users with at least `bot_min_events` events (of any type) are judged. A user is flagged when any of:

- `event_rate`: more than `bot_max_events_per_min` actions in some 60-second sliding window. Actions are the
  events of the types in `bot_rate_types` (default: all but ratings, since rating pages such as MovieLens'
  legitimately produce bursts); the impressions of one request (one page shown) count as one action, because
  a page shows dozens of titles at once. Impressions without a request_id count one each.
- `watch_time`: more watched seconds in some tumbling window of `bot_watch_window_s` seconds than
  `bot_max_watch_ratio` times the window's length. Watched seconds come from `watched_s` of progress and
  complete events, read as the position reached in the title: each event adds the increase over the previous
  `watched_s` of the same (user, title), or its whole value when it is lower (a re-watch from the start).
  If a producer sends per-event increments instead, this under-counts, so the check stays conservative.
- `titles_per_hour`: more than `bot_max_titles_per_hour` distinct titles played (play, progress or complete)
  within one clock hour.

The result has one row per flagged user: user_id, reason (the failed checks, comma-separated, in the order
above), n_events (all the user's events: what excluding the user removes), max_actions_per_min,
max_watched_s_per_window, max_titles_per_hour, first_ts, last_ts.
"""

from __future__ import annotations

import duckdb

from streamrec.preprocess._sql import (
    create_table,
    drop_temp,
    output_name,
    relation,
    require_columns,
    sql_float,
    sql_str_list,
)
from streamrec.settings import PreprocessConfig

BOT_INPUT_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "item_id", "type", "ts", "request_id", "watched_s")
BOT_REASONS: tuple[str, ...] = ("event_rate", "watch_time", "titles_per_hour")
BOT_COLUMNS: tuple[str, ...] = (
    "user_id",
    "reason",
    "n_events",
    "max_actions_per_min",
    "max_watched_s_per_window",
    "max_titles_per_hour",
    "first_ts",
    "last_ts",
)


def flag_bots(
    con: duckdb.DuckDBPyConnection,
    source: str,
    cfg: PreprocessConfig,
    *,
    output: str = "bots",
    temporary: bool = False,
) -> str:
    """Create table `output` with one row per flagged user (columns BOT_COLUMNS), ordered by user_id.

    Args:
        con: the database holding `source`.
        source: a table or view with canonical event columns.
        cfg: thresholds (bot_min_events, bot_max_events_per_min, bot_watch_window_s, bot_max_watch_ratio,
            bot_max_titles_per_hour).
        output: the table to create (replaced if it exists).
        temporary: create a temporary table instead of a persistent one.

    Returns:
        The name of the created table.
    """
    src = relation(source)
    output_name(output)
    require_columns(con, src, BOT_INPUT_COLUMNS)
    return create_table(con, output, bots_query(src, cfg), temporary=temporary)


def bots_query(source: str, cfg: PreprocessConfig) -> str:
    """The query behind `flag_bots` (DuckDB SQL; the Spark engine runs it translated): one row per flagged user of
    the relation `source` (columns BOT_COLUMNS), ordered by user_id."""
    src = relation(source)
    window_us = int(cfg.bot_watch_window_s) * 1_000_000
    counted: list[str] = [t for t in cfg.bot_rate_types if t != "impression"] or ["_none_"]
    count_impressions = "true" if "impression" in cfg.bot_rate_types else "false"
    max_watched = sql_float(cfg.bot_max_watch_ratio * cfg.bot_watch_window_s)
    return f"""
        WITH eligible AS (
            SELECT user_id, count(*) AS n_events, min(ts) AS first_ts, max(ts) AS last_ts
            FROM {src} GROUP BY user_id HAVING count(*) >= {int(cfg.bot_min_events)}
        ), ev AS (
            SELECT e.event_id, e.user_id, e.item_id, e.type, e.ts, e.request_id, e.watched_s
            FROM {src} e SEMI JOIN eligible USING (user_id)
        ), actions AS (
            SELECT user_id, epoch_us(ts) AS t FROM ev WHERE type IN {sql_str_list(counted)}
            UNION ALL
            SELECT user_id, min(epoch_us(ts)) AS t FROM ev WHERE type = 'impression' AND {count_impressions}
            GROUP BY user_id, coalesce(request_id, 'event:' || event_id)
        ), rate AS (
            SELECT user_id, max(n) AS max_actions_per_min FROM (
                SELECT user_id,
                       count(*) OVER (PARTITION BY user_id ORDER BY t
                                      RANGE BETWEEN CURRENT ROW AND 59999999 FOLLOWING) AS n
                FROM actions
            ) GROUP BY user_id
        ), watch_steps AS (
            SELECT user_id, ts, watched_s,
                   coalesce(lag(watched_s) OVER (PARTITION BY user_id, item_id ORDER BY ts, event_id), 0.0) AS prev
            FROM ev WHERE watched_s IS NOT NULL AND type IN ('progress', 'complete')
        ), watch AS (
            SELECT user_id, max(watched) AS max_watched_s_per_window FROM (
                SELECT user_id, epoch_us(ts) // {window_us} AS bucket,
                       sum(CASE WHEN watched_s >= prev THEN watched_s - prev ELSE watched_s END) AS watched
                FROM watch_steps GROUP BY user_id, bucket
            ) GROUP BY user_id
        ), titles AS (
            SELECT user_id, max(n) AS max_titles_per_hour FROM (
                SELECT user_id, epoch_us(ts) // 3600000000 AS hour, count(DISTINCT item_id) AS n
                FROM ev WHERE type IN ('play', 'progress', 'complete') GROUP BY user_id, hour
            ) GROUP BY user_id
        ), judged AS (
            SELECT e.user_id, e.n_events, e.first_ts, e.last_ts,
                   coalesce(r.max_actions_per_min, 0) AS max_actions_per_min,
                   coalesce(w.max_watched_s_per_window, 0.0) AS max_watched_s_per_window,
                   coalesce(t.max_titles_per_hour, 0) AS max_titles_per_hour
            FROM eligible e
            LEFT JOIN rate r USING (user_id)
            LEFT JOIN watch w USING (user_id)
            LEFT JOIN titles t USING (user_id)
        ), flagged AS (
            SELECT *, concat_ws(',',
                       CASE WHEN max_actions_per_min > {sql_float(cfg.bot_max_events_per_min)} THEN 'event_rate' END,
                       CASE WHEN max_watched_s_per_window > {max_watched} THEN 'watch_time' END,
                       CASE WHEN max_titles_per_hour > {int(cfg.bot_max_titles_per_hour)} THEN 'titles_per_hour' END
                   ) AS reason
            FROM judged
        )
        SELECT user_id, reason,
               CAST(n_events AS BIGINT) AS n_events,
               CAST(max_actions_per_min AS BIGINT) AS max_actions_per_min,
               CAST(max_watched_s_per_window AS DOUBLE) AS max_watched_s_per_window,
               CAST(max_titles_per_hour AS BIGINT) AS max_titles_per_hour,
               first_ts, last_ts
        FROM flagged WHERE reason <> ''
        ORDER BY user_id
    """


def exclude_users(
    con: duckdb.DuckDBPyConnection,
    source: str,
    flagged: str,
    *,
    output: str = "events_without_bots",
) -> str:
    """Create temporary view `output`: the rows of `source` whose user_id is not in table `flagged`.

    Returns:
        The name of the created view.
    """
    out = output_name(output)
    drop_temp(con, out)
    con.execute(f"CREATE TEMP VIEW {out} AS {exclude_users_query(source, flagged)}")
    return out


def exclude_users_query(source: str, flagged: str) -> str:
    """The rows of `source` whose user_id is not in `flagged` (DuckDB SQL; the Spark engine runs it translated)."""
    return f"SELECT * FROM {relation(source)} ANTI JOIN (SELECT user_id FROM {relation(flagged)}) USING (user_id)"
