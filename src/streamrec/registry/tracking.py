"""Tracking: one MLflow run per training, with hyperparameters, metrics, lineage and the checksummed model folder."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamrec.errors import ConfigError, DataError
from streamrec.registry.lineage import code_version, flatten_params, folder_checksums, metric_key

if TYPE_CHECKING:
    from mlflow import MlflowClient

MODEL_ARTIFACT = "model"  # the saved model folder, under the run's artifact root
LINEAGE_ARTIFACT = "lineage.json"
TAG_MODEL = "streamrec.model"
TAG_SNAPSHOT = "streamrec.data_snapshot"
TAG_CODE = "streamrec.code_version"
TAG_CHECKSUMS = "streamrec.checksums"
LINEAGE_TAGS = (TAG_MODEL, TAG_SNAPSHOT, TAG_CODE, TAG_CHECKSUMS)
_BATCH = 100  # MLflow accepts at most 100 params and 100 tags per log_batch call
_MAX_RUN_TAG = 8000  # MLflow truncates longer run tag values; a truncated checksum list would be useless


@dataclass(frozen=True)
class LoggedRun:
    """What log_training_run recorded."""

    run_id: str
    experiment_id: str
    artifact_uri: str
    model: str
    data_snapshot: str
    code_version: str
    checksums: dict[str, str]


def read_saved_model(folder: Path) -> tuple[str, dict[str, Any]]:
    """Model family and hyperparameters from a saved model's config.json."""
    path = Path(folder) / "config.json"
    try:
        meta = json.loads(path.read_text())
        return str(meta["model"]), dict(meta.get("config") or {})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(str(path), f"not a saved model's config ({exc})") from exc


def log_run(
    client: MlflowClient,
    experiment_id: str,
    model_folder: Path,
    *,
    data_snapshot: str,
    metrics: Mapping[str, float] | None = None,
    counts: Mapping[str, int] | None = None,
    model: str | None = None,
    params: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> LoggedRun:
    """Record one training run (see Registry.log_training_run); the run ends FINISHED, or FAILED on an error."""
    from mlflow.entities import Metric, Param, RunTag

    model_folder = Path(model_folder)
    checksums = folder_checksums(model_folder)
    saved_model, saved_params = read_saved_model(model_folder)
    model = model or saved_model
    params = saved_params if params is None else params
    checksums_json = json.dumps(checksums, sort_keys=True)
    if len(checksums_json) > _MAX_RUN_TAG:
        raise DataError(str(model_folder), f"too many files ({len(checksums)}) to record their checksums as a tag")
    version = code_version()
    all_params = {"model": model, **flatten_params(params)}
    all_params.update({f"data.{metric_key(k)}": str(int(v)) for k, v in (counts or {}).items()})
    run_tags = {TAG_MODEL: model, TAG_SNAPSHOT: data_snapshot, TAG_CODE: version, TAG_CHECKSUMS: checksums_json,
                **dict(tags or {})}
    if version.startswith("git:"):
        run_tags["mlflow.source.git.commit"] = version[4:].removesuffix("-dirty")
    now = int(time.time() * 1000)
    metric_rows = [Metric(metric_key(k), float(v), now, 0) for k, v in (metrics or {}).items()]
    lineage = {"model": model, "params": params, "metrics": dict(metrics or {}), "counts": dict(counts or {}),
               "data_snapshot": data_snapshot, "code_version": version, "checksums": checksums}

    run = client.create_run(experiment_id, run_name=run_name or f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_id = run.info.run_id
    try:
        param_rows = [Param(k, v) for k, v in all_params.items()]
        tag_rows = [RunTag(k, str(v)) for k, v in run_tags.items()]
        for start in range(0, max(len(metric_rows), len(param_rows), len(tag_rows)), _BATCH):  # MLflow's limits
            client.log_batch(run_id, metrics=metric_rows[start:start + _BATCH],
                             params=param_rows[start:start + _BATCH], tags=tag_rows[start:start + _BATCH])
        client.log_artifacts(run_id, str(model_folder), MODEL_ARTIFACT)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / LINEAGE_ARTIFACT
            path.write_text(json.dumps(lineage, indent=2, sort_keys=True, default=str))
            client.log_artifact(run_id, str(path))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return LoggedRun(run_id, experiment_id, run.info.artifact_uri, model, data_snapshot, version, checksums)


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """Id of the experiment `name`, created (with its artifact root) if missing."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as exc:  # created meanwhile by another process
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage != "active":
        raise ConfigError(f"MLflow experiment '{name}' is deleted: restore it or set registry.experiment")
    return experiment.experiment_id
