"""Offline evaluation: splits, full-catalog top-k metrics with bootstrap intervals, the runner and reports."""

from streamrec.evaluation.bootstrap import Estimate, bootstrap_ci, bootstrap_means
from streamrec.evaluation.metrics import (
    ACCURACY_METRICS,
    average_popularity,
    catalog_coverage,
    genre_matrix,
    hit_rate_at_k,
    hits,
    intra_list_diversity,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    popularity_percentile,
    precision_at_k,
    recall_at_k,
)
from streamrec.evaluation.report import markdown_table, write_report
from streamrec.evaluation.runner import EvalData, EvaluationResult, ModelResult, evaluate, prepare
from streamrec.evaluation.segments import Segments
from streamrec.evaluation.splits import (
    Split,
    leave_last_n_split,
    stratified_split,
    strong_generalization_split,
    temporal_split,
)

__all__ = [
    "ACCURACY_METRICS", "Estimate", "EvalData", "EvaluationResult", "ModelResult", "Segments", "Split",
    "average_popularity", "bootstrap_ci", "bootstrap_means", "catalog_coverage", "evaluate", "genre_matrix",
    "hit_rate_at_k", "hits", "intra_list_diversity", "leave_last_n_split", "map_at_k", "markdown_table",
    "mrr_at_k", "ndcg_at_k", "novelty", "popularity_percentile", "precision_at_k", "prepare", "recall_at_k",
    "stratified_split", "strong_generalization_split", "temporal_split", "write_report",
]
