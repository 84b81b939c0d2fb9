"""Implicit-feedback weights: one interaction row per (user, title) from its events, in one SQL aggregation.

For each (user_id, item_id) with at least one non-impression event:

    watched   = 1 if any play, progress, complete or rating event, else 0   (a rating means the title was
                watched: rating-only data such as MovieLens becomes plays with a weight)
    completed = any complete event, or max_fraction >= complete_fraction
    f         = 1 if completed else max_fraction (0 when there is no progress)
    added     = 1 if any add_to_list event, else 0
    s(r)      = (min(r / scale, 1) - neutral) / (1 - neutral) for the last rating r (at one instant: the highest),
                0 without one;
                scale = rating_scale_max, or 5 when every rating in the source is <= 5, else 10
    weight    = play_weight * watched + complete_weight * f + add_to_list_weight * added + rating_weight * s(r)

`max_fraction` is the largest `fraction` of progress/complete events (a complete without one counts as 1.0).
So a rating at the top of the scale adds `rating_weight`, a rating at `neutral` (half the scale by default)
adds nothing, and lower ratings subtract up to `rating_weight * neutral / (1 - neutral)`: a low rating is
a weak positive (with the defaults a 0.5-star MovieLens rating weighs 0.2, a 5-star one 2.0) and becomes
negative feedback only when it outweighs the rest. Rows whose weight is <= 0 are not interactions; they are
counted (`n_nonpositive`) and left out. Completing never lowers a weight (f only grows), any play without a
rating weighs at least `play_weight`, and for rating-only data the weight grows with the rating.

Impressions alone are not interactions: (user, title) pairs that were shown but never acted on go to a
separate table of impression counts, the negatives a ranker learns from.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from streamrec.preprocess._sql import create_table, drop_temp, output_name, relation, require_columns, sql_float
from streamrec.settings import PreprocessConfig

WEIGHT_INPUT_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "item_id", "type", "ts", "fraction", "rating")
INTERACTION_COLUMNS: tuple[str, ...] = (
    "user_id",
    "item_id",
    "weight",
    "first_ts",
    "last_ts",
    "n_events",
    "n_plays",
    "n_impressions",
    "max_fraction",
    "rating",
    "completed",
    "added_to_list",
)
IMPRESSION_ONLY_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "n_impressions", "first_ts", "last_ts")

# The last rating wins; among ratings at the same instant the highest, so the choice never depends on row order.
# One HUGEINT key (time, then rating in thousandths) is much cheaper to arg_max over than a struct.
_LAST_RATING_KEY = (
    "(CAST(epoch_us(ts) AS HUGEINT) * 100000 + CAST(round(least(greatest(rating, 0), 99.999) * 1000) AS HUGEINT))"
)


@dataclass(frozen=True)
class WeightResult:
    """What `compute_interactions` made: the two tables and their counts."""

    interactions: str
    impressions_only: str
    n_interactions: int
    n_nonpositive: int
    n_impressions_only: int
    rating_scale: float | None  # None when the source has no ratings and none was configured


def rating_scale(con: duckdb.DuckDBPyConnection, source: str, cfg: PreprocessConfig) -> float | None:
    """The top of the rating scale: configured, else 5 if every rating in `source` is <= 5, else 10."""
    if cfg.rating_scale_max is not None:
        return float(cfg.rating_scale_max)
    (top,) = con.execute(top_rating_query(source)).fetchone()  # type: ignore[misc]
    return scale_of(top, cfg)


def top_rating_query(source: str) -> str:
    """The highest rating of the rating events in `source` (the input of `scale_of`)."""
    return f"SELECT max(rating) FROM {relation(source)} WHERE type = 'rating'"


def scale_of(top_rating: float | None, cfg: PreprocessConfig) -> float | None:
    """The top of the rating scale given the highest rating seen: configured, else 5 or 10 (None: no ratings)."""
    if cfg.rating_scale_max is not None:
        return float(cfg.rating_scale_max)
    if top_rating is None:
        return None
    return 5.0 if top_rating <= 5.0 else 10.0


def weight_sql(cfg: PreprocessConfig, scale: float | None) -> str:
    """The weight formula as an SQL expression over the pair aggregate's columns."""
    neutral = cfg.rating_neutral
    if scale is None:
        rating_term = "0.0"
    else:
        rating_term = (
            f"CASE WHEN rating IS NULL THEN 0.0 ELSE "
            f"(least(rating / {sql_float(scale)}, 1.0) - {sql_float(neutral)}) / {sql_float(1.0 - neutral)} END"
        )
    return (
        f"({sql_float(cfg.play_weight)} * CASE WHEN watched THEN 1.0 ELSE 0.0 END"
        f" + {sql_float(cfg.complete_weight)} * CASE WHEN completed THEN 1.0 ELSE coalesce(max_fraction, 0.0) END"
        f" + {sql_float(cfg.add_to_list_weight)} * CASE WHEN added_to_list THEN 1.0 ELSE 0.0 END"
        f" + {sql_float(cfg.rating_weight)} * {rating_term})"
    )


def compute_interactions(
    con: duckdb.DuckDBPyConnection,
    source: str,
    cfg: PreprocessConfig,
    *,
    output: str = "interactions",
    impressions_output: str = "impressions_only",
    temporary: bool = False,
    impressions_temporary: bool | None = None,
) -> WeightResult:
    """Aggregate the events of `source` into weighted interactions and impression-only counts.

    Args:
        con: the database holding `source`.
        source: a table or view with canonical event columns.
        cfg: the weights (play_weight, complete_weight, add_to_list_weight, rating_weight, rating_scale_max,
            rating_neutral, complete_fraction).
        output: table of interactions (columns INTERACTION_COLUMNS, weight > 0), ordered by user_id, item_id.
        impressions_output: table of pairs with impressions and no other event (IMPRESSION_ONLY_COLUMNS).
        temporary: create `output` as a temporary table instead of a persistent one.
        impressions_temporary: the same for `impressions_output` (default: as `temporary`).

    Returns:
        The table names and counts.
    """
    src = relation(source)
    output_name(output)
    output_name(impressions_output)
    require_columns(con, src, WEIGHT_INPUT_COLUMNS)
    scale = rating_scale(con, src, cfg)
    pairs = "_pp_pairs"
    drop_temp(con, pairs)
    con.execute(f"CREATE TEMP TABLE {pairs} AS {pairs_query(src)}")
    create_table(con, output, interactions_query(pairs, cfg, scale), temporary=temporary)
    create_table(
        con,
        impressions_output,
        impressions_only_query(pairs),
        temporary=temporary if impressions_temporary is None else impressions_temporary,
    )
    (n_pairs_acted,) = con.execute(f"SELECT count(*) FROM {pairs} WHERE n_events > 0").fetchone()  # type: ignore[misc]
    (n_out,) = con.execute(f"SELECT count(*) FROM {output}").fetchone()  # type: ignore[misc]
    (n_imp,) = con.execute(f"SELECT count(*) FROM {impressions_output}").fetchone()  # type: ignore[misc]
    drop_temp(con, pairs)
    return WeightResult(
        interactions=output,
        impressions_only=impressions_output,
        n_interactions=int(n_out),
        n_nonpositive=int(n_pairs_acted) - int(n_out),
        n_impressions_only=int(n_imp),
        rating_scale=scale,
    )


def pairs_query(source: str) -> str:
    """One row per (user_id, item_id) of `source` with the aggregates the weight reads (DuckDB SQL; the Spark
    engine runs it translated)."""
    return f"""
        SELECT user_id, item_id,
               count(*) FILTER (WHERE type <> 'impression') AS n_events,
               count(*) FILTER (WHERE type = 'play') AS n_plays,
               count(*) FILTER (WHERE type = 'impression') AS n_impressions,
               min(ts) FILTER (WHERE type <> 'impression') AS first_ts,
               max(ts) FILTER (WHERE type <> 'impression') AS last_ts,
               min(ts) FILTER (WHERE type = 'impression') AS first_impression_ts,
               max(ts) FILTER (WHERE type = 'impression') AS last_impression_ts,
               max(CASE WHEN type = 'complete' THEN least(coalesce(fraction, 1.0), 1.0)
                        WHEN type = 'progress' AND fraction IS NOT NULL THEN least(fraction, 1.0) END)
                   AS max_fraction,
               bool_or(type = 'complete') AS has_complete,
               bool_or(type IN ('play', 'progress', 'complete', 'rating')) AS watched,
               bool_or(type = 'add_to_list') AS added_to_list,
               arg_max(rating, {_LAST_RATING_KEY}) FILTER (WHERE type = 'rating' AND rating IS NOT NULL) AS rating
        FROM {relation(source)}
        WHERE type IN ('impression', 'play', 'progress', 'complete', 'rating', 'add_to_list')
        GROUP BY user_id, item_id
        """


def interactions_query(pairs: str, cfg: PreprocessConfig, scale: float | None) -> str:
    """The weighted interactions (INTERACTION_COLUMNS, weight > 0, ordered by user_id, item_id) of a `pairs_query`
    relation."""
    pairs = relation(pairs)
    complete_fraction = sql_float(cfg.complete_fraction)
    weighted = f"""
        SELECT *, {weight_sql(cfg, scale)} AS weight FROM (
            SELECT *, has_complete OR coalesce(max_fraction >= {complete_fraction}, false) AS completed
            FROM {pairs} WHERE n_events > 0
        )
    """
    return f"""
        SELECT user_id, item_id, CAST(weight AS DOUBLE) AS weight, first_ts, last_ts,
               CAST(n_events AS BIGINT) AS n_events, CAST(n_plays AS BIGINT) AS n_plays,
               CAST(n_impressions AS BIGINT) AS n_impressions,
               CAST(max_fraction AS DOUBLE) AS max_fraction, CAST(rating AS DOUBLE) AS rating,
               completed, added_to_list
        FROM ({weighted}) WHERE weight > 0
        ORDER BY user_id, item_id
        """


def impressions_only_query(pairs: str) -> str:
    """The shown-but-never-acted-on pairs (IMPRESSION_ONLY_COLUMNS) of a `pairs_query` relation."""
    return f"""
        SELECT user_id, item_id, CAST(n_impressions AS BIGINT) AS n_impressions,
               first_impression_ts AS first_ts, last_impression_ts AS last_ts
        FROM {relation(pairs)} WHERE n_events = 0
        ORDER BY user_id, item_id
        """
