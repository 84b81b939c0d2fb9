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
import numpy as np
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

# Every look in one pass: each row gets the index k of the first look it counts in (the first cutoff after it; a
# user's rows before their first exposure's look count from that look on), increments are aggregated per (user, k)
# and summed over looks. Exact because each definition of _SQL only grows with the cutoff: the first exposure and the
# pre-period are fixed once a user is in (the variant once it is non-null), a play's attribution reads only rows at
# or before it, and the play a progress row belongs to only earlier plays (so only each play's running max of
# watched_s moves).
_LOOKS_SQL = """
WITH exp_rows AS (
    SELECT l.ts, l.user_id, l.variant, l.request_id, c.k FROM (
        SELECT * FROM log_view WHERE type = 'exposure' AND experiment = $name) l
    ASOF JOIN look_cutoffs c ON l.ts < c.cutoff
), exposed AS (  -- arg_min skips null variants: a user's variant is null until their first non-null one
    SELECT user_id, arg_min(variant, ts) AS variant, min(ts) AS first_exposure, min(k) AS k0,
           min(k) FILTER (WHERE variant IS NOT NULL) AS k_variant
    FROM exp_rows GROUP BY user_id
), exposure_inc AS (
    SELECT user_id, k, count(*) AS exposures FROM exp_rows GROUP BY user_id, k
), variant_inc AS (  -- a distinct variant counts from the look of its first exposure
    SELECT user_id, k, count(*) AS variants FROM (
        SELECT user_id, variant, min(k) AS k FROM exp_rows WHERE variant IS NOT NULL GROUP BY user_id, variant)
    GROUP BY user_id, k
), ev_all AS (
    SELECT DISTINCT l.ts, l.user_id, l.type, l.item_id, l.request_id, l.watched_s, x.first_exposure, x.k0
    FROM log_view l JOIN exposed x ON l.user_id = x.user_id
    WHERE l.type IN ('impression', 'play', 'progress', 'complete')
      AND (l.experiment = $name OR l.experiment IS NULL)
      AND l.ts >= x.first_exposure - $pre
), ev AS (
    SELECT e.ts, e.user_id, e.type, e.item_id, e.request_id, e.watched_s, e.first_exposure,
           greatest(c.k, e.k0) AS k
    FROM ev_all e ASOF JOIN look_cutoffs c ON e.ts < c.cutoff
), plays AS (
    SELECT ts, user_id, item_id, request_id, first_exposure, k FROM ev WHERE type = 'play'
), shown AS (
    SELECT ts, user_id, item_id, request_id FROM ev WHERE type = 'impression' AND ts >= first_exposure
    UNION ALL
    SELECT r.ts, r.user_id, NULL, r.request_id FROM exp_rows r
), play_inc AS (
    SELECT p.user_id, p.k, count(*) AS plays FROM plays p
    WHERE p.ts >= p.first_exposure AND EXISTS (
        SELECT 1 FROM shown s WHERE s.user_id = p.user_id AND s.ts <= p.ts AND p.ts < s.ts + $window
          AND (s.item_id = p.item_id OR (p.request_id IS NOT NULL AND s.request_id = p.request_id)))
    GROUP BY p.user_id, p.k
), watched AS (  -- per play and look: the largest watched_s of its rows first counted at that look
    SELECT p.user_id, p.item_id, p.ts AS play_ts, p.first_exposure, w.k, max(w.watched_s) AS watched_s
    FROM (SELECT * FROM ev WHERE type IN ('progress', 'complete') AND watched_s IS NOT NULL) w
    ASOF JOIN plays p ON w.user_id = p.user_id AND w.item_id = p.item_id AND w.ts >= p.ts
    GROUP BY p.user_id, p.item_id, p.ts, p.first_exposure, w.k
), running AS (
    SELECT *, max(watched_s) OVER (PARTITION BY user_id, item_id, play_ts ORDER BY k) AS best FROM watched
), gains AS (  -- how much each look raises its play's watch time (they add up to the running max)
    SELECT user_id, k, play_ts >= first_exposure AS after_exposure,
           best - coalesce(lag(best) OVER (PARTITION BY user_id, item_id, play_ts ORDER BY k), 0) AS gain
    FROM running
), watch_inc AS (
    SELECT user_id, k, sum(gain) FILTER (WHERE after_exposure) AS watch_s,
           sum(gain) FILTER (WHERE NOT after_exposure) AS pre_watch_s
    FROM gains GROUP BY user_id, k
), count_inc AS (
    SELECT user_id, k,
           count(*) FILTER (WHERE type = 'impression' AND ts >= first_exposure) AS impressions,
           count(*) FILTER (WHERE type = 'play' AND ts < first_exposure) AS pre_plays
    FROM ev GROUP BY user_id, k
), grid AS (  -- each user at each look from their first exposure's on
    SELECT x.user_id, CASE WHEN c.k >= x.k_variant THEN x.variant END AS variant, x.first_exposure, c.k
    FROM exposed x JOIN look_cutoffs c ON c.k >= x.k0
)
SELECT g.k, g.user_id, g.variant, g.first_exposure,
       CAST(sum(coalesce(v.variants, 0)) OVER w AS BIGINT) AS variants,
       CAST(sum(coalesce(e.exposures, 0)) OVER w AS BIGINT) AS exposures,
       CAST(sum(coalesce(n.impressions, 0)) OVER w AS BIGINT) AS impressions,
       CAST(sum(coalesce(p.plays, 0)) OVER w AS BIGINT) AS plays,
       sum(coalesce(h.watch_s, 0.0)) OVER w / 60.0 AS watch_minutes,
       CAST(sum(coalesce(n.pre_plays, 0)) OVER w AS BIGINT) AS pre_plays,
       sum(coalesce(h.pre_watch_s, 0.0)) OVER w / 60.0 AS pre_watch_minutes
FROM grid g
LEFT JOIN variant_inc v ON v.user_id = g.user_id AND v.k = g.k
LEFT JOIN exposure_inc e ON e.user_id = g.user_id AND e.k = g.k
LEFT JOIN count_inc n ON n.user_id = g.user_id AND n.k = g.k
LEFT JOIN play_inc p ON p.user_id = g.user_id AND p.k = g.k
LEFT JOIN watch_inc h ON h.user_id = g.user_id AND h.k = g.k
WINDOW w AS (PARTITION BY g.user_id ORDER BY g.k ROWS UNBOUNDED PRECEDING)
ORDER BY g.k, g.user_id
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

    def at_looks(self, experiment: str, cutoffs: list[datetime], attribution_window: timedelta = timedelta(hours=24),
                 pre_period: timedelta = timedelta(days=14)) -> list[pa.Table]:
        """`[self.at(experiment, c, ...) for c in cutoffs]` from one pass over the log (linear in the looks)."""
        order = sorted({naive_utc(c) for c in cutoffs})
        if not order:
            return []
        self.con.register("look_cutoffs", pa.table({"k": pa.array(range(len(order)), pa.int64()),
                                                    "cutoff": pa.array(order, pa.timestamp("us"))}))
        try:
            params = {"name": experiment, "window": attribution_window, "pre": pre_period}
            table = self.con.sql(_LOOKS_SQL, params=params).to_arrow_table()
        finally:
            self.con.unregister("look_cutoffs")
        ends = np.searchsorted(table["k"].to_numpy(), np.arange(len(order) + 1))
        per_look = [table.slice(lo, hi - lo).drop_columns(["k"]).cast(OUTCOME_SCHEMA)
                    for lo, hi in zip(ends[:-1], ends[1:])]
        index = {c: k for k, c in enumerate(order)}
        return [per_look[index[naive_utc(c)]] for c in cutoffs]

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
