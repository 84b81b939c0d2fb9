"""Per-user outcomes of one experiment from its exposure/outcome log, as of a cutoff time (DuckDB SQL).

Definitions (one place, used by the analysis, its tests and the benchmark):

* The log has columns ts, user_id, experiment, variant, type ∈ {exposure, impression, play, progress, complete},
  item_id, request_id (nullable), watched_s (nullable). Rows with ts ≥ the cutoff are ignored, so an analysis can be
  redone as of any earlier day.
* A user is in the analysis from their **first exposure** to the experiment (serving answered them under it); their
  variant is the one of that exposure. Users exposed under more than one variant keep the first and are counted in
  `variants` (> 1) so the analysis can exclude and report them.
* Outcome rows count when their experiment is this one or null (null: events from outside the experiment log, such as
  the event store's history, useful for the pre-period); identical rows are counted once.
* After the first exposure everything the user does counts (a user-level, triggered analysis):
  `impressions` — impression rows; `plays` — play rows **attributed** to a recommendation: within
  `attribution_window` after an impression of the same title, or after an exposure/impression whose request_id the play
  carries; `watch_minutes` — minutes watched in all plays started after the first exposure (attributed or not: the
  engagement the variant may change). watched_s of progress/complete rows is the position reached in the title, so a
  play's watch time is the largest watched_s among the progress/complete rows of its title that follow it before the
  next play of that title (an ASOF join).
* Pre-period covariates for CUPED: `pre_plays` (all plays) and `pre_watch_minutes` in `pre_period` before the first
  exposure.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pyarrow as pa

from streamrec.errors import DataError

LOG_COLUMNS = ("ts", "user_id", "experiment", "variant", "type", "item_id", "request_id", "watched_s")
OUTCOME_SCHEMA = pa.schema([
    ("user_id", pa.string()), ("variant", pa.string()), ("first_exposure", pa.timestamp("us")),
    ("variants", pa.int64()), ("exposures", pa.int64()), ("impressions", pa.int64()), ("plays", pa.int64()),
    ("watch_minutes", pa.float64()), ("pre_plays", pa.int64()), ("pre_watch_minutes", pa.float64()),
])

_SQL = """
WITH exp_rows AS (
    SELECT ts, user_id, variant, request_id FROM log_view
    WHERE type = 'exposure' AND experiment = $name AND ts < $at
), exposed AS (
    SELECT user_id, arg_min(variant, ts) AS variant, min(ts) AS first_exposure,
           count(DISTINCT variant) AS variants, count(*) AS exposures
    FROM exp_rows GROUP BY user_id
), ev AS (
    SELECT DISTINCT l.ts, l.user_id, l.type, l.item_id, l.request_id, l.watched_s, x.first_exposure
    FROM log_view l JOIN exposed x ON l.user_id = x.user_id
    WHERE l.type IN ('impression', 'play', 'progress', 'complete')
      AND (l.experiment = $name OR l.experiment IS NULL) AND l.ts < $at
      AND l.ts >= x.first_exposure - $pre
), plays AS (
    SELECT ts, user_id, item_id, request_id, first_exposure FROM ev WHERE type = 'play'
), shown AS (  -- what the user was shown after exposure: titles (impressions) and responses (request ids)
    SELECT ts, user_id, item_id, request_id FROM ev WHERE type = 'impression' AND ts >= first_exposure
    UNION ALL
    SELECT r.ts, r.user_id, NULL, r.request_id FROM exp_rows r
), attributed AS (
    SELECT p.user_id, count(*) AS plays FROM plays p
    WHERE p.ts >= p.first_exposure AND EXISTS (
        SELECT 1 FROM shown s WHERE s.user_id = p.user_id AND s.ts <= p.ts AND p.ts < s.ts + $window
          AND (s.item_id = p.item_id OR (p.request_id IS NOT NULL AND s.request_id = p.request_id)))
    GROUP BY p.user_id
), watched AS (  -- each progress/complete row belongs to the latest earlier play of its title
    SELECT p.user_id, p.ts AS play_ts, p.first_exposure, max(w.watched_s) AS watched_s
    FROM (SELECT * FROM ev WHERE type IN ('progress', 'complete') AND watched_s IS NOT NULL) w
    ASOF JOIN plays p ON w.user_id = p.user_id AND w.item_id = p.item_id AND w.ts >= p.ts
    GROUP BY p.user_id, p.item_id, p.ts, p.first_exposure
), per_user AS (
    SELECT user_id,
           sum(CASE WHEN play_ts >= first_exposure THEN watched_s ELSE 0 END) / 60.0 AS watch_minutes,
           sum(CASE WHEN play_ts < first_exposure THEN watched_s ELSE 0 END) / 60.0 AS pre_watch_minutes
    FROM watched GROUP BY user_id
), counts AS (
    SELECT user_id,
           count(*) FILTER (WHERE type = 'impression' AND ts >= first_exposure) AS impressions,
           count(*) FILTER (WHERE type = 'play' AND ts < first_exposure) AS pre_plays
    FROM ev GROUP BY user_id
)
SELECT x.user_id, x.variant, x.first_exposure, x.variants, x.exposures,
       coalesce(c.impressions, 0) AS impressions, coalesce(a.plays, 0) AS plays,
       coalesce(w.watch_minutes, 0.0) AS watch_minutes, coalesce(c.pre_plays, 0) AS pre_plays,
       coalesce(w.pre_watch_minutes, 0.0) AS pre_watch_minutes
FROM exposed x
LEFT JOIN counts c ON c.user_id = x.user_id
LEFT JOIN attributed a ON a.user_id = x.user_id
LEFT JOIN per_user w ON w.user_id = x.user_id
ORDER BY x.user_id
"""


class OutcomeQuery:
    """One DuckDB connection over one log, for computing the per-user table at many cutoffs (one per day)."""

    def __init__(self, log: pa.Table):
        missing = [c for c in LOG_COLUMNS if c not in log.column_names]
        if missing:
            raise DataError("experiment log",
                            f"missing columns: {', '.join(missing)} (expected {', '.join(LOG_COLUMNS)})")
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.register("raw_log", log.select(list(LOG_COLUMNS)))
        # Timestamps compared as naive UTC whatever the log's time zone annotation.
        self.con.execute("CREATE VIEW log_view AS SELECT CAST(ts AS TIMESTAMP) AS ts, CAST(user_id AS VARCHAR) AS "
                         "user_id, experiment, variant, type, item_id, request_id, watched_s FROM raw_log")

    def first_exposure(self, experiment: str) -> datetime | None:
        """The earliest exposure to `experiment` in the log (naive UTC), or None when there is none."""
        rows = self.con.sql("SELECT min(ts) FROM log_view WHERE type = 'exposure' AND experiment = $name",
                            params={"name": experiment}).fetchall()
        return rows[0][0] if rows else None

    def newest_row(self, experiment: str) -> datetime | None:
        """The time of the newest row the analysis of `experiment` reads (its rows and null-experiment rows)."""
        return self.con.sql("SELECT max(ts) FROM log_view WHERE experiment = $name OR experiment IS NULL",
                            params={"name": experiment}).fetchall()[0][0]

    def days_with_rows(self, experiment: str, since: datetime, until: datetime) -> list[date]:
        """The UTC days with rows the analysis of `experiment` reads in [since, until), oldest first."""
        rows = self.con.sql("SELECT DISTINCT CAST(ts AS DATE) AS day FROM log_view WHERE (experiment = $name OR "
                            "experiment IS NULL) AND ts >= $since AND ts < $until ORDER BY day",
                            params={"name": experiment, "since": naive_utc(since), "until": naive_utc(until)})
        return [r[0] for r in rows.fetchall()]

    def at(self, experiment: str, cutoff: datetime, attribution_window: timedelta = timedelta(hours=24),
           pre_period: timedelta = timedelta(days=14)) -> pa.Table:
        """The per-user table (OUTCOME_SCHEMA) of `experiment` from the rows before `cutoff`."""
        params = {"name": experiment, "at": naive_utc(cutoff), "window": attribution_window, "pre": pre_period}
        table = self.con.sql(_SQL, params=params).to_arrow_table()
        return table.cast(OUTCOME_SCHEMA)

    def close(self) -> None:
        self.con.close()


def user_outcomes(log: pa.Table, experiment: str, at: datetime,
                  attribution_window: timedelta = timedelta(hours=24),
                  pre_period: timedelta = timedelta(days=14)) -> pa.Table:
    """The per-user table of one experiment as of `at` (see the module docstring for every definition).

    Args:
        log: the exposure/outcome log (columns LOG_COLUMNS; ts naive UTC or time-zone aware).
        experiment: the experiment's name.
        at: the cutoff; rows at or after it are ignored (naive datetimes are UTC).
        attribution_window: how long after an impression or response a play still counts as caused by it.
        pre_period: the window before each user's first exposure for the CUPED covariates.

    Returns:
        One row per exposed user, columns of OUTCOME_SCHEMA, ordered by user_id.
    """
    query = OutcomeQuery(log)
    try:
        return query.at(experiment, at, attribution_window, pre_period)
    finally:
        query.close()


def naive_utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t
