"""Preprocessing of stored events in DuckDB SQL: sessions, bot filtering, implicit weights, k-core, quality."""

from __future__ import annotations

from streamrec.preprocess.bots import BOT_COLUMNS, BOT_REASONS, exclude_users, flag_bots
from streamrec.preprocess.kcore import KCoreResult, KCoreRound, kcore_filter
from streamrec.preprocess.pipeline import PreprocessReport, run_preprocess
from streamrec.preprocess.quality import QualitySummary, RatingSummary, batch_quality
from streamrec.preprocess.sessions import session_summary, sessionize
from streamrec.preprocess.weights import (
    IMPRESSION_ONLY_COLUMNS,
    INTERACTION_COLUMNS,
    WeightResult,
    compute_interactions,
)

__all__ = [
    "BOT_COLUMNS",
    "BOT_REASONS",
    "IMPRESSION_ONLY_COLUMNS",
    "INTERACTION_COLUMNS",
    "KCoreResult",
    "KCoreRound",
    "PreprocessReport",
    "QualitySummary",
    "RatingSummary",
    "WeightResult",
    "batch_quality",
    "compute_interactions",
    "exclude_users",
    "flag_bots",
    "kcore_filter",
    "run_preprocess",
    "session_summary",
    "sessionize",
]
