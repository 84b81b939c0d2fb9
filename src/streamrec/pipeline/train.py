"""`streamrec pipeline`: evaluate the ranked pipeline stage by stage, write its report, fit the bundle for serving on
all data, and log and register it in MLflow like any model (promoted by the same policy as `train`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from streamrec.features.definitions import BUILTIN, Definition
from streamrec.logs import get_logger
from streamrec.pipeline.bundle import fit_bundle
from streamrec.pipeline.report import write_pipeline_report
from streamrec.pipeline.stages import PipelineReport, evaluate_pipeline
from streamrec.settings import Settings

log = get_logger(__name__)
METRIC = "ndcg@10"


@dataclass
class PipelineTrainResult:
    report: PipelineReport
    html: Path
    bundle_dir: Path | None = None
    version: int | None = None
    promoted: bool = False
    promote_reason: str = ""


def train_pipeline(con: duckdb.DuckDBPyConnection, table: pa.Table, settings: Settings, events: str = "events",
                   diversity: float | None = None, register: bool = True,
                   definitions: Sequence[Definition] = BUILTIN) -> PipelineTrainResult:
    """Evaluate (temporal split of `settings.train.split`), report, then with `register` fit the bundle on all of
    `table`, save it under data_dir/models and register it."""
    config = settings.pipeline
    report = evaluate_pipeline(con, table, settings.train.split, quotas=config.quotas, ranker=config.ranker,
                               diversity=config.diversity if diversity is None else diversity, events=events,
                               policy=config.filters, definitions=definitions, vector_index=config.vector_index,
                               impressions=config.impression_negatives)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    html = write_pipeline_report(report, settings.data_dir / "reports" / "pipeline.html")
    out = PipelineTrainResult(report, html)
    if not register:
        return out
    bundle = fit_bundle(con, table, events, config, settings.train.split, definitions)
    out.bundle_dir = bundle.save(settings.data_dir / "models" / f"pipeline-{stamp}")
    (out.bundle_dir.parent / f"pipeline-{stamp}.importance.json").write_text(
        json.dumps(bundle.ranker.importance(), indent=1))
    _register(out, settings, table)
    _reference(out, bundle, settings, con, table)
    log.info("pipeline.registered", version=out.version, promoted=out.promoted, ndcg=report.ndcg["ranked pipeline"])
    return out


def _reference(out: PipelineTrainResult, bundle, settings: Settings, con: duckdb.DuckDBPyConnection,
               table: pa.Table) -> None:
    """The monitoring reference of the bundle: the scores serving answers with for a sample of users, and the feature
    snapshot (see streamrec.monitoring.reference); offline, its ranker's top-10 on the evaluation's test candidates."""
    from streamrec.errors import DataError
    from streamrec.monitoring.reference import ranker_scores, save_training_reference

    report = out.report

    def scores() -> pa.Table:
        if report.test_features is None or report.ranker is None or report.ranker.names_ != bundle.ranker.names_:
            raise DataError("pipeline evaluation", "no test candidates with the bundle's ranker features")
        return ranker_scores(bundle.ranker, report.test_features, report.test_rows, report.user_ids,
                             seed=settings.seed)

    users = pa.compute.unique(table.column("user_id")).to_numpy(zero_copy_only=False)
    save_training_reference(settings, out.bundle_dir, "pipeline", out.version, users, scores, con)


def _register(out: PipelineTrainResult, settings: Settings, table: pa.Table) -> None:
    from streamrec.data.interactions import Interactions
    from streamrec.registry import open_registry, snapshot_of_interactions
    from streamrec.training.train import should_promote

    report = out.report
    best, best_value = report.best_single
    metrics = {METRIC: report.ndcg["ranked pipeline"], f"{METRIC}_best_single": best_value,
               "candidate_recall": report.recall.get("all", 0.0)}
    metrics.update({f"{METRIC}_{name.replace(' ', '_').replace('+', 'plus')}": v for name, v in report.ndcg.items()})
    data = Interactions.from_table(table)
    registry = open_registry(settings)
    snapshot = snapshot_of_interactions(data)
    logged = registry.log_training_run(
        out.bundle_dir, data_snapshot=snapshot, metrics=metrics,
        counts={"users": data.n_users, "items": data.n_items, "interactions": data.nnz, **report.counts},
        params={"quotas": settings.pipeline.quotas, "diversity": settings.pipeline.diversity,
                "ranker": settings.pipeline.ranker.model_dump(), "best_single": best},
        tags={"streamrec.metric": METRIC, "streamrec.split": "temporal"})
    out.version = registry.register(logged.run_id, description=f"ranked pipeline, {METRIC}="
                                    f"{metrics[METRIC]:.4f} (best single source {best} {best_value:.4f})")
    out.promoted, out.promote_reason = should_promote(registry, settings.train.promote, METRIC, metrics, snapshot)
    if out.promoted:
        registry.promote(out.version)
