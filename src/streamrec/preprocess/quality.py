"""Data-quality summary of one batch of events, computed in a single SQL query so ingestion can run it per batch.

Reported: rows, distinct users and titles, events per type, null rate per canonical column, ts min/max,
late events (ts more than `late_after_h` hours before the batch's newest event), duplicate event_ids (rows
beyond the first of each id), future events and freshness when `now` is given, events and distinct titles
not in `known_items` when that relation is given, and the rating values (count, min, max, mean, median and
a histogram in half-point buckets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from streamrec.events.schema import EVENT_COLUMN_NAMES, EVENT_TYPES
from streamrec.preprocess._sql import relation, require_columns

QUALITY_REQUIRED_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "item_id", "type", "ts", "rating")


@dataclass(frozen=True)
class RatingSummary:
    """The rating values of rating events (None fields when there are none)."""

    count: int
    min: float | None
    max: float | None
    mean: float | None
    median: float | None
    histogram: dict[float, int] = field(default_factory=dict)  # value rounded to 0.5 -> events


@dataclass(frozen=True)
class QualitySummary:
    """Data-quality numbers of one batch (or of the whole store)."""

    source: str
    rows: int
    users: int
    titles: int
    events_per_type: dict[str, int]  # every known type, plus "other" when unknown types occur
    null_rate: dict[str, float]  # canonical columns present in the relation -> share of nulls (0 when empty)
    ts_min: datetime | None
    ts_max: datetime | None
    late_after_h: float
    late_events: int
    duplicate_event_ids: int  # rows whose event_id already occurred in the relation
    rating: RatingSummary
    now: datetime | None = None
    future_events: int | None = None  # ts > now (only with now)
    freshness_s: float | None = None  # now - ts_max (only with now)
    known_items: str | None = None
    new_title_events: int | None = None  # events on titles not in known_items (only with known_items)
    new_titles: int | None = None
    new_title_share: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO strings, histogram keys as strings."""
        out = asdict(self)
        for key in ("ts_min", "ts_max", "now"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        out["rating"]["histogram"] = {f"{k:g}": v for k, v in sorted(self.rating.histogram.items())}
        return out


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def batch_quality(
    con: duckdb.DuckDBPyConnection,
    source: str,
    now: datetime | None = None,
    *,
    known_items: str | None = None,
    late_after_h: float = 24.0,
) -> QualitySummary:
    """Summarize the events in `source` with one query.

    Args:
        con: the database holding `source`.
        source: a table or view with canonical event columns (a staged batch or the whole store).
        now: the ingestion time (UTC; naive means UTC); adds future_events and freshness_s.
        known_items: a table or view with an item_id column (e.g. "titles", or the store's distinct item_ids);
            adds the events and titles of the batch that are new to it.
        late_after_h: events older than this many hours before the batch's newest event are late.

    Returns:
        The summary; counts are exact.
    """
    src = relation(source)
    have = require_columns(con, src, QUALITY_REQUIRED_COLUMNS)
    if late_after_h <= 0:
        raise ValueError(f"late_after_h must be > 0, got {late_after_h}")
    nulls_of = [c for c in EVENT_COLUMN_NAMES if c in have]
    type_list = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    per_type = ",\n".join(f"count(*) FILTER (WHERE e.type = '{t}') AS \"type_{t}\"" for t in EVENT_TYPES)
    null_counts = ",\n".join(f'count(*) - count(e."{c}") AS "null_{c}"' for c in nulls_of)
    now_naive = _naive_utc(now) if now is not None else None
    late_us = round(late_after_h * 3600 * 1_000_000)
    if known_items is not None:
        known = relation(known_items)
        require_columns(con, known, ("item_id",))
        join = f"LEFT JOIN (SELECT DISTINCT item_id, true AS _known FROM {known}) k ON e.item_id = k.item_id"
        new_cols = (
            "count(*) FILTER (WHERE k._known IS NULL) AS new_title_events,\n"
            "count(DISTINCT e.item_id) FILTER (WHERE k._known IS NULL) AS new_titles"
        )
    else:
        join = ""
        new_cols = "NULL AS new_title_events, NULL AS new_titles"
    params: list[Any] = []
    if now_naive is not None:
        future = "count(*) FILTER (WHERE e.ts > CAST(? AS TIMESTAMP)) AS future_events"
        params.append(now_naive)
    else:
        future = "NULL AS future_events"
    query = f"""
        WITH b AS (SELECT max(ts) AS ts_max FROM {src})
        SELECT count(*) AS rows,
               count(DISTINCT e.user_id) AS users,
               count(DISTINCT e.item_id) AS titles,
               {per_type},
               count(*) FILTER (WHERE e.type NOT IN ({type_list})) AS type_other,
               {null_counts},
               min(e.ts) AS ts_min,
               max(e.ts) AS ts_max,
               count(*) FILTER (WHERE epoch_us(e.ts) < epoch_us(b.ts_max) - {late_us}) AS late_events,
               count(e.event_id) - count(DISTINCT e.event_id) AS duplicate_event_ids,
               {future},
               {new_cols},
               count(e.rating) FILTER (WHERE e.type = 'rating') AS rating_count,
               min(e.rating) FILTER (WHERE e.type = 'rating') AS rating_min,
               max(e.rating) FILTER (WHERE e.type = 'rating') AS rating_max,
               avg(e.rating) FILTER (WHERE e.type = 'rating') AS rating_mean,
               quantile_cont(e.rating, 0.5) FILTER (WHERE e.type = 'rating') AS rating_median,
               histogram(round(e.rating * 2) / 2) FILTER (WHERE e.type = 'rating' AND e.rating IS NOT NULL)
                   AS rating_histogram
        FROM {src} e CROSS JOIN b {join}
    """
    cursor = con.execute(query, params)
    names = [d[0] for d in cursor.description]
    row = dict(zip(names, cursor.fetchone(), strict=True))  # type: ignore[arg-type]
    rows = int(row["rows"])
    events_per_type = {t: int(row[f"type_{t}"]) for t in EVENT_TYPES}
    if row["type_other"]:
        events_per_type["other"] = int(row["type_other"])
    null_rate = {c: (int(row[f"null_{c}"]) / rows if rows else 0.0) for c in nulls_of}
    ts_max = row["ts_max"]
    histogram = {float(k): int(v) for k, v in (row["rating_histogram"] or {}).items()}
    new_events = None if row["new_title_events"] is None else int(row["new_title_events"])
    return QualitySummary(
        source=source,
        rows=rows,
        users=int(row["users"]),
        titles=int(row["titles"]),
        events_per_type=events_per_type,
        null_rate=null_rate,
        ts_min=row["ts_min"],
        ts_max=ts_max,
        late_after_h=float(late_after_h),
        late_events=int(row["late_events"]),
        duplicate_event_ids=int(row["duplicate_event_ids"]),
        rating=RatingSummary(
            count=int(row["rating_count"]),
            min=row["rating_min"],
            max=row["rating_max"],
            mean=row["rating_mean"],
            median=row["rating_median"],
            histogram=dict(sorted(histogram.items())),
        ),
        now=now_naive,
        future_events=None if row["future_events"] is None else int(row["future_events"]),
        freshness_s=(now_naive - ts_max).total_seconds() if now_naive is not None and ts_max is not None else None,
        known_items=known_items,
        new_title_events=new_events,
        new_titles=None if row["new_titles"] is None else int(row["new_titles"]),
        new_title_share=(new_events / rows if rows else 0.0) if new_events is not None else None,
    )
