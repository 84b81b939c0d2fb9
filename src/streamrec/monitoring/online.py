"""Online quality over time: the play rate of served lists per experiment variant (from the exposure log: responses
joined to later plays by request_id), and the popularity concentration and catalog coverage of what was recommended
(from the served-lists log), per day, with the alerts their thresholds raise."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamrec.errors import DataError
from streamrec.monitoring.alerts import Alert
from streamrec.monitoring.config import OnlineThresholds

_PLAY_RATE_SQL = """
WITH responses AS (
    SELECT DISTINCT CAST(ts AS DATE) AS day, ts, user_id, experiment, variant, request_id FROM log
    WHERE type = 'exposure' AND request_id IS NOT NULL
), plays AS (
    SELECT DISTINCT ts, user_id, experiment, item_id, request_id FROM log
    WHERE type = 'play' AND request_id IS NOT NULL
), joined AS (
    SELECT r.day, r.experiment, r.variant, r.request_id, count(p.ts) AS plays
    FROM responses r LEFT JOIN plays p
      ON p.request_id = r.request_id AND p.user_id = r.user_id AND p.experiment = r.experiment
     AND p.ts >= r.ts AND p.ts < r.ts + $window
    GROUP BY ALL
), shown AS (
    SELECT CAST(ts AS DATE) AS day, experiment, variant, count(*) AS impressions FROM log
    WHERE type = 'impression' GROUP BY ALL
)
SELECT j.day, j.experiment, j.variant, count(DISTINCT j.request_id) AS responses,
       count(DISTINCT j.request_id) FILTER (WHERE j.plays > 0) AS played, sum(j.plays) AS plays,
       coalesce(any_value(s.impressions), 0) AS impressions
FROM joined j LEFT JOIN shown s USING (day, experiment, variant)
GROUP BY j.day, j.experiment, j.variant ORDER BY 1, 2, 3
"""


@dataclass(frozen=True)
class PlayRate:
    """One variant on one day: responses served under it, how many led to a play of theirs (same request_id,
    within the attribution window), the plays, impressions, and play_rate = played / responses."""

    day: date
    experiment: str
    variant: str
    responses: int
    played: int
    plays: int
    impressions: int

    @property
    def play_rate(self) -> float:
        return self.played / self.responses if self.responses else 0.0


def play_rate_by_variant(log: pa.Table, attribution_window: timedelta = timedelta(hours=24)) -> list[PlayRate]:
    """Per day (of the response), experiment and variant, from an exposure/outcome log
    (streamrec.experiments.exposure.read_log: ts, user_id, experiment, variant, type, item_id, request_id).

    Raises:
        DataError: the log lacks a column.
    """
    missing = {"ts", "user_id", "experiment", "variant", "type", "request_id"} - set(log.column_names)
    if missing:
        raise DataError("exposure log", f"missing columns: {', '.join(sorted(missing))}")
    if log.num_rows == 0:
        return []
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("raw", log)
        con.execute("CREATE VIEW log AS SELECT CAST(ts AS TIMESTAMP) AS ts, user_id, experiment, variant, type, "
                    "request_id, item_id FROM raw")
        rows = con.execute(_PLAY_RATE_SQL, {"window": attribution_window}).fetchall()
    finally:
        con.close()
    return [PlayRate(day, str(exp), str(var), int(n), int(played), int(plays or 0), int(shown))
            for day, exp, var, n, played, plays, shown in rows]


@dataclass(frozen=True)
class Concentration:
    """What was recommended on one day (per variant when asked): lists, title slots, distinct titles, catalog
    coverage (distinct / catalog size; None without a catalog size), the Gini index of the slots over the catalog's
    titles (0: every title equally often, → 1: all slots on one title), and top_share: the share of slots that went
    to the most recommended 1% of the catalog (at least one title)."""

    day: date
    variant: str | None
    lists: int
    slots: int
    titles: int
    coverage: float | None
    gini: float
    top_share: float


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts (0 for all equal or all zero)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * total))


def _day_numbers(slots: np.ndarray, lists: int, catalog_size: int | None, top_fraction: float) -> tuple:
    _, counts = np.unique(slots, return_counts=True)
    size = max(catalog_size or 0, counts.size)  # titles outside the catalog still count
    padded = np.concatenate([counts, np.zeros(size - counts.size)])
    top = max(1, math.ceil(top_fraction * size))
    top_share = float(np.sort(counts)[::-1][:top].sum() / counts.sum()) if counts.size else 0.0
    coverage = counts.size / catalog_size if catalog_size else None
    return lists, int(slots.size), int(counts.size), coverage, gini(padded), top_share


def concentration_over_time(served: pa.Table, catalog_size: int | None = None, top_fraction: float = 0.01,
                            by_variant: bool = False) -> list[Concentration]:
    """Per day (and variant with `by_variant`) from the served-lists log (streamrec.monitoring.served.read_served:
    ts, variant, items), every route and fallback included: everything shown counts."""
    if served.num_rows == 0:
        return []
    days = pc.cast(served["ts"], pa.date32()).to_numpy(zero_copy_only=False)
    variants = served["variant"].to_numpy(zero_copy_only=False) if by_variant else np.full(len(days), None)
    items = served["items"]
    flat = pc.list_flatten(items).to_numpy(zero_copy_only=False)
    parent = pc.list_parent_indices(items).to_numpy(zero_copy_only=False)
    out = []
    keys = sorted({(d, v) for d, v in zip(days.tolist(), variants.tolist())}, key=lambda kv: (kv[0], kv[1] or ""))
    for day, variant in keys:
        rows = (days == np.datetime64(day)) if not by_variant else \
            (days == np.datetime64(day)) & (variants == variant)
        out.append(Concentration(day, variant, *_day_numbers(flat[rows[parent]], int(rows.sum()), catalog_size,
                                                             top_fraction)))
    return out


def online_alerts(rates: list[PlayRate], concentration: list[Concentration],
                  thresholds: OnlineThresholds) -> list[Alert]:
    """A variant whose latest day's play rate fell below `play_rate_drop` × the median of its earlier days (days with
    at least `min_responses` responses only); a latest day whose recommendations concentrate on the top titles more
    than `max_top_share`, or cover less of the catalog than `min_coverage` (a warning)."""
    alerts: list[Alert] = []
    by_variant: dict[tuple[str, str], list[PlayRate]] = {}
    for r in rates:
        if r.responses >= thresholds.min_responses:
            by_variant.setdefault((r.experiment, r.variant), []).append(r)
    for (experiment, variant), days in by_variant.items():
        if len(days) < 2:
            continue
        latest, earlier = days[-1], statistics.median(d.play_rate for d in days[:-1])
        limit = thresholds.play_rate_drop * earlier
        if earlier > 0 and latest.play_rate < limit:
            alerts.append(Alert("play_rate", f"{experiment}/{variant} {latest.day}", latest.play_rate, limit,
                                f"play rate {latest.play_rate:.1%} on {latest.day} against a median of "
                                f"{earlier:.1%} on the {len(days) - 1} earlier day(s)"))
    latest_day = max((c.day for c in concentration), default=None)
    for c in concentration:
        if c.day != latest_day or c.lists < thresholds.min_lists:
            continue
        name = f"{c.day}" + (f" {c.variant}" if c.variant else "")
        if c.top_share > thresholds.max_top_share:
            alerts.append(Alert("concentration", name, c.top_share, thresholds.max_top_share,
                                f"{c.top_share:.1%} of {c.slots:,} recommended slots went to the top "
                                f"{thresholds.top_fraction:.0%} of titles (Gini {c.gini:.2f})"))
        if c.coverage is not None and c.coverage < thresholds.min_coverage:
            alerts.append(Alert("coverage", name, c.coverage, thresholds.min_coverage,
                                f"{c.titles:,} distinct titles recommended, {c.coverage:.1%} of the catalog",
                                "warn"))
    return alerts
