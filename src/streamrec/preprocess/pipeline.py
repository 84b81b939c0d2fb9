"""The preprocessing run: bot filter -> sessions -> weights -> k-core, writing its tables in one transaction.

Writes, in the same database as the events, replacing earlier versions:
- `bots`: flagged users (streamrec.preprocess.bots.BOT_COLUMNS);
- `sessions`: one row per viewing session of non-bot users (streamrec.preprocess.sessions.session_summary);
- `interactions`: weighted (user, title) rows after bot removal and k-core (weights.INTERACTION_COLUMNS);
- `impressions_only`: shown-but-never-acted-on pairs of non-bot users (weights.IMPRESSION_ONLY_COLUMNS).
All four are replaced together or not at all: a failure rolls back and leaves the previous tables intact.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from streamrec.logs import get_logger
from streamrec.preprocess._sql import drop_temp, relation, require_columns
from streamrec.preprocess.bots import BOT_INPUT_COLUMNS, exclude_users, flag_bots
from streamrec.preprocess.kcore import KCoreResult, KCoreRound, kcore_filter
from streamrec.preprocess.sessions import session_summary, sessionize
from streamrec.preprocess.weights import WEIGHT_INPUT_COLUMNS, WeightResult, compute_interactions
from streamrec.settings import PreprocessConfig

log = get_logger(__name__)

BOTS_TABLE = "bots"
INTERACTIONS_TABLE = "interactions"
IMPRESSIONS_ONLY_TABLE = "impressions_only"
SESSIONS_TABLE = "sessions"
_SESSIONIZED = "_pp_sessionized"
_SESSION_SUMMARY = "_pp_session_summary"
_CLEAN_VIEW = "_pp_clean_events"
_ALL_INTERACTIONS = "_pp_interactions_all"


@dataclass(frozen=True)
class PreprocessReport:
    """Counts of one preprocessing run, for the printed summary and the run log."""

    source: str
    events_in: int
    users_in: int
    bot_users: int
    bot_events: int
    bot_reasons: dict[str, int]  # reason -> flagged users with it (a user may have several)
    sessions: int
    median_session_s: float
    events_per_session: float
    interactions_before_kcore: int
    nonpositive_pairs: int  # (user, title) pairs whose weight was <= 0 (dislikes), left out
    interactions_out: int
    impressions_only: int
    users_before_kcore: int
    users_after_kcore: int
    titles_before_kcore: int
    titles_after_kcore: int
    kcore_rounds: list[KCoreRound] = field(default_factory=list)
    rating_scale: float | None = None
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)
    tables: tuple[str, ...] = (BOTS_TABLE, SESSIONS_TABLE, INTERACTIONS_TABLE, IMPRESSIONS_ONLY_TABLE)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        """Human-readable lines for the CLI."""
        reasons = ", ".join(f"{k}: {v}" for k, v in self.bot_reasons.items()) or "none"
        return [
            f"events in: {self.events_in:,} from {self.users_in:,} users ({self.source})",
            f"bots removed: {self.bot_users:,} users, {self.bot_events:,} events ({reasons})",
            (
                f"interactions: {self.interactions_before_kcore:,} weighted pairs "
                f"({self.nonpositive_pairs:,} with weight <= 0 left out), "
                f"{self.impressions_only:,} impression-only pairs"
            ),
            (
                f"k-core: users {self.users_before_kcore:,} -> {self.users_after_kcore:,}, "
                f"titles {self.titles_before_kcore:,} -> {self.titles_after_kcore:,} in {len(self.kcore_rounds)} rounds"
            ),
            f"interactions out: {self.interactions_out:,} -> tables {', '.join(self.tables)} in {self.seconds:.2f}s",
        ]


def _begin(con: duckdb.DuckDBPyConnection) -> bool:
    """Start a transaction; False when the caller already holds one (then the caller commits or rolls back).

    A failed BEGIN would abort the caller's transaction, so it is detected instead: in auto-commit mode each
    statement runs in a transaction of its own, inside an open one both reads see the same id.
    """
    ids = [con.execute("SELECT current_transaction_id()").fetchone() for _ in range(2)]
    if ids[0] == ids[1]:
        return False
    con.begin()
    return True


def run_preprocess(con: duckdb.DuckDBPyConnection, cfg: PreprocessConfig, source: str = "events") -> PreprocessReport:
    """Filter bots, weight interactions and k-core them; write `bots`, `interactions` and `impressions_only`.

    Args:
        con: the event store's database; the tables are written into it.
        cfg: thresholds and weights.
        source: a table or view with canonical event columns.

    Returns:
        The counts of the run.

    Raises:
        NotFound: `source` does not exist.
        DataError: `source` lacks canonical columns.
    """
    src = relation(source)
    require_columns(con, src, tuple(dict.fromkeys((*BOT_INPUT_COLUMNS, *WEIGHT_INPUT_COLUMNS))))
    started = time.perf_counter()
    steps: dict[str, float] = {}
    owns_transaction = _begin(con)
    try:
        t0 = time.perf_counter()
        events_in, users_in = con.execute(input_counts_query(src)).fetchone()  # type: ignore[misc]
        flag_bots(con, src, cfg, output=BOTS_TABLE)
        bot_users, bot_events = con.execute(bot_counts_query(BOTS_TABLE)).fetchone()  # type: ignore[misc]
        reason_rows = con.execute(bot_reasons_query(BOTS_TABLE)).fetchall()
        clean = exclude_users(con, src, BOTS_TABLE, output=_CLEAN_VIEW)
        steps["bots"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        sessionized = sessionize(con, clean, cfg.session_gap_s, output=_SESSIONIZED)
        summary = session_summary(con, sessionized, output=_SESSION_SUMMARY)
        con.execute(f"CREATE OR REPLACE TABLE {SESSIONS_TABLE} AS SELECT * FROM {summary} ORDER BY user_id, session_seq")
        session_stats = con.execute(session_stats_query(SESSIONS_TABLE)).fetchone()
        drop_temp(con, _SESSION_SUMMARY)
        drop_temp(con, _SESSIONIZED)
        steps["sessions"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        weights = compute_interactions(
            con,
            clean,
            cfg,
            output=_ALL_INTERACTIONS,
            impressions_output=IMPRESSIONS_ONLY_TABLE,
            temporary=True,
            impressions_temporary=False,
        )
        steps["weights"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        core = kcore_filter(
            con, _ALL_INTERACTIONS, cfg.min_user_interactions, cfg.min_item_interactions, output=INTERACTIONS_TABLE
        )
        steps["kcore"] = time.perf_counter() - t0
        drop_temp(con, _ALL_INTERACTIONS)
        drop_temp(con, _CLEAN_VIEW)
        if owns_transaction:
            con.commit()
    except BaseException:
        if owns_transaction:
            con.rollback()
        raise
    report = make_report(source, (events_in, users_in, bot_users, bot_events), reason_rows, session_stats,
                         weights, core, time.perf_counter() - started, steps)
    log.debug("preprocess.done", **{k: v for k, v in report.as_dict().items() if isinstance(v, int | float)})
    return report


def input_counts_query(source: str) -> str:
    """Events and distinct users of `source` (the queries here are shared with the Spark engine, translated)."""
    return f"SELECT count(*), count(DISTINCT user_id) FROM {relation(source)}"


def bot_counts_query(bots: str) -> str:
    """Flagged users and the events excluding them removes."""
    return f"SELECT count(*), coalesce(sum(n_events), 0) FROM {relation(bots)}"


def bot_reasons_query(bots: str) -> str:
    """(reason, flagged users with it), one row per reason, ordered by reason."""
    return (f"SELECT r, count(*) FROM (SELECT unnest(string_split(reason, ',')) AS r FROM {relation(bots)}) "
            "GROUP BY r ORDER BY r")


def session_stats_query(sessions: str) -> str:
    """Sessions, the median session length (s) and events per session."""
    return f"SELECT count(*), coalesce(median(duration_s), 0), coalesce(avg(n_events), 0) FROM {relation(sessions)}"


def make_report(source: str, counts: Sequence[Any], reason_rows: Sequence[Sequence[Any]], session_stats: Any,
                weights: WeightResult, core: KCoreResult, seconds: float, steps: dict[str, float]) -> PreprocessReport:
    """The report of a run from its query results: counts = (events_in, users_in, bot_users, bot_events)."""
    events_in, users_in, bot_users, bot_events = counts
    n_sessions, median_session_s, events_per_session = session_stats
    return PreprocessReport(
        source=source,
        events_in=int(events_in),
        users_in=int(users_in),
        bot_users=int(bot_users),
        bot_events=int(bot_events),
        bot_reasons={str(r): int(n) for r, n in reason_rows},
        sessions=int(n_sessions),
        median_session_s=float(median_session_s),
        events_per_session=float(events_per_session),
        interactions_before_kcore=weights.n_interactions,
        nonpositive_pairs=weights.n_nonpositive,
        interactions_out=core.rows_after,
        impressions_only=weights.n_impressions_only,
        users_before_kcore=core.users_before,
        users_after_kcore=core.users_after,
        titles_before_kcore=core.items_before,
        titles_after_kcore=core.items_after,
        kcore_rounds=core.rounds,
        rating_scale=weights.rating_scale,
        seconds=seconds,
        step_seconds=steps,
    )
