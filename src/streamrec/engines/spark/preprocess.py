"""`streamrec preprocess` on Spark: the DuckDB path's own queries (preprocess.bots, .sessions, .weights and the
pipeline's counts) translated to Spark SQL, and k-core as the same rounds on DataFrames, so both engines write the same
bots, sessions, interactions and impressions_only tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from streamrec.engines.spark.dialect import to_spark
from streamrec.events.schema import EVENT_COLUMN_NAMES
from streamrec.logs import get_logger
from streamrec.preprocess.bots import bots_query, exclude_users_query
from streamrec.preprocess.kcore import KCoreResult, KCoreRound
from streamrec.preprocess.pipeline import (
    BOTS_TABLE,
    IMPRESSIONS_ONLY_TABLE,
    INTERACTIONS_TABLE,
    SESSIONS_TABLE,
    PreprocessReport,
    bot_counts_query,
    bot_reasons_query,
    input_counts_query,
    make_report,
    session_stats_query,
)
from streamrec.preprocess.sessions import session_summary_query, sessionize_query
from streamrec.preprocess.weights import (
    WeightResult,
    impressions_only_query,
    interactions_query,
    pairs_query,
    scale_of,
    top_rating_query,
)
from streamrec.settings import PreprocessConfig

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

# Temp views the translated queries read (named as the DuckDB path names its temporary tables).
_EVENTS, _BOTS, _CLEAN, _SESSIONIZED, _SESSIONS, _PAIRS = (
    "_pp_events", "_pp_bots", "_pp_clean_events", "_pp_sessionized", "_pp_session_summary", "_pp_pairs")


def preprocess_frames(spark: "SparkSession", events: "DataFrame", cfg: PreprocessConfig,
                      write: Callable[[Mapping[str, "DataFrame"]], object], source: str = "events") -> PreprocessReport:
    """Flag bots, sessionize, weight and k-core `events` on Spark, as `preprocess.pipeline.run_preprocess` does.

    Args:
        events: canonical event columns (others are ignored).
        write: called once with the four tables as DataFrames (bots, sessions, interactions, impressions_only, each
            ordered as the DuckDB path orders it) while their inputs are still cached; it stores them.
        source: the name the report gives the events.
    Returns:
        The counts of the run, as the DuckDB path reports them.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    def sql(query: str) -> "DataFrame":
        return spark.sql(to_spark(query))

    def kept(frame: "DataFrame", view: str | None = None) -> "DataFrame":
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(frame)
        if view:
            frame.createOrReplaceTempView(view)
        return frame

    started = time.perf_counter()
    steps: dict[str, float] = {}
    cached: list[DataFrame] = []
    try:
        t0 = time.perf_counter()
        kept(events.select(*EVENT_COLUMN_NAMES), _EVENTS)
        events_in, users_in = sql(input_counts_query(_EVENTS)).first()  # type: ignore[misc]
        bots = kept(sql(bots_query(_EVENTS, cfg)), _BOTS)
        bot_users, bot_events = sql(bot_counts_query(_BOTS)).first()  # type: ignore[misc]
        reason_rows = sql(bot_reasons_query(_BOTS)).collect()
        kept(sql(exclude_users_query(_EVENTS, _BOTS)), _CLEAN)
        steps["bots"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        sql(sessionize_query(_CLEAN, EVENT_COLUMN_NAMES, cfg.session_gap_s)).createOrReplaceTempView(_SESSIONIZED)
        sessions = kept(sql(session_summary_query(_SESSIONIZED)), _SESSIONS)
        session_stats = sql(session_stats_query(_SESSIONS)).first()
        steps["sessions"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        top = None if cfg.rating_scale_max is not None else sql(top_rating_query(_CLEAN)).first()
        scale = scale_of(top and top[0], cfg)
        pairs = kept(sql(pairs_query(_CLEAN)), _PAIRS)
        weighted = kept(sql(interactions_query(_PAIRS, cfg, scale)))
        impressions = kept(sql(impressions_only_query(_PAIRS)))
        n_acted, n_impressions = pairs.agg(F.count(F.when(F.col("n_events") > 0, 1)),
                                           F.count(F.when(F.col("n_events") == 0, 1))).first()  # type: ignore[misc]
        steps["weights"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        interactions, core = kcore(weighted, cfg.min_user_interactions, cfg.min_item_interactions, cached)
        steps["kcore"] = time.perf_counter() - t0
        # k-core's input is every weighted pair: its rows_before counts them
        weights = WeightResult("_pp_interactions_all", IMPRESSIONS_ONLY_TABLE, core.rows_before,
                               n_acted - core.rows_before, n_impressions, scale)
        write({BOTS_TABLE: bots, SESSIONS_TABLE: sessions, INTERACTIONS_TABLE: interactions,
               IMPRESSIONS_ONLY_TABLE: impressions})
    finally:
        for frame in cached:
            frame.unpersist()
        for view in (_EVENTS, _BOTS, _CLEAN, _SESSIONIZED, _SESSIONS, _PAIRS):
            spark.catalog.dropTempView(view)
    report = make_report(source, (events_in, users_in, bot_users, bot_events), reason_rows, session_stats,
                         weights, core, time.perf_counter() - started, steps)
    log.debug("preprocess.done", engine="spark", **{k: v for k, v in report.as_dict().items()
                                                     if isinstance(v, int | float)})
    return report


def kcore(frame: "DataFrame", min_user: int, min_item: int, cached: list["DataFrame"],
          max_rounds: int = 10_000) -> tuple["DataFrame", KCoreResult]:
    """The rows of `frame` forming its (min_user, min_item)-core, in the rounds of `preprocess.kcore.kcore_filter`:
    each removes at once every user with fewer than `min_user` rows and every title with fewer than `min_item` rows
    of what is left, until one removes nothing.

    Args:
        frame: one row per (user_id, item_id); its columns are kept.
        cached: each round's persisted result is added here, for the caller to release.
    Returns:
        The core, ordered by user_id, item_id, and the counts (KCoreResult.table is 'interactions').
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if min_user < 1 or min_item < 1:
        raise ValueError(f"min_user and min_item must be >= 1, got {min_user}, {min_item}")

    def counts(of: "DataFrame") -> tuple[int, int, int]:
        row = of.agg(F.count(F.lit(1)), F.countDistinct("user_id"), F.countDistinct("item_id")).first()
        return int(row[0]), int(row[1]), int(row[2])  # type: ignore[index]

    rows_before, users_before, items_before = counts(frame)
    rounds: list[KCoreRound] = []
    current, rows_now = frame, rows_before
    for number in range(1, max_rounds + 1):
        # one pass a round: each row learns its user's and its title's row counts in what is left
        sparse_user = F.count(F.lit(1)).over(Window.partitionBy("user_id")) < min_user
        sparse_item = F.count(F.lit(1)).over(Window.partitionBy("item_id")) < min_item
        judged = current.select(*frame.columns, sparse_user.alias("__bad_user"), sparse_item.alias("__bad_item"))
        judged = judged.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(judged)
        stats = judged.agg(F.countDistinct(F.when(F.col("__bad_user"), F.col("user_id"))),
                           F.countDistinct(F.when(F.col("__bad_item"), F.col("item_id"))),
                           F.count(F.when(~F.col("__bad_user") & ~F.col("__bad_item"), 1))).first()
        n_users, n_items, rows_left = int(stats[0]), int(stats[1]), int(stats[2])  # type: ignore[index]
        if not n_users and not n_items:
            break
        current = judged.where(~F.col("__bad_user") & ~F.col("__bad_item")).select(*frame.columns)
        rounds.append(KCoreRound(number, n_users, n_items, rows_now - rows_left))
        rows_now = rows_left
    else:
        raise RuntimeError(f"k-core did not converge in {max_rounds} rounds")
    after = counts(current) if rounds else (rows_before, users_before, items_before)
    result = KCoreResult(INTERACTIONS_TABLE, rows_before, after[0], users_before, after[1], items_before, after[2],
                         rounds)
    return current.orderBy("user_id", "item_id"), result
