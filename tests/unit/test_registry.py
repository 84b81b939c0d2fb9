"""The MLflow registry against a real sqlite tracking store: tracking, versions, aliases, verified downloads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Self

import numpy as np
import pyarrow as pa
import pytest
from pydantic import BaseModel
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.errors import BackendError, ChecksumError, ConfigError, DataError, NotFound
from streamrec.models.base import Recommender
from streamrec.registry import Registry, code_version, snapshot_of_batches, snapshot_of_interactions
from streamrec.registry.lineage import flatten_params, folder_checksums, metric_key
from streamrec.settings import RegistryConfig, load_settings


class TinyConfig(BaseModel, extra="forbid"):
    shift: float = 0.5


class Tiny(Recommender):
    """Scores are a fixed per-item vector: enough to save, register, download and load."""

    name = "tiny"
    config_type = TinyConfig
    learned = ("weights_",)

    def fit(self, data: Interactions) -> Self:
        self.weights_ = np.asarray(data.matrix.sum(axis=0)).ravel().astype(np.float32) + self.config.shift
        self.item_ids_ = data.item_ids
        return self

    def score(self, history: sparse.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        return np.tile(self.weights_, (history.shape[0], 1))


def interactions(weight: float = 1.0) -> Interactions:
    matrix = sparse.csr_matrix(np.array([[weight, 0, 2], [0, 1, 0]], dtype=np.float32))
    return Interactions(matrix, np.array(["u1", "u2"], dtype=object), np.array(["a", "b", "c"], dtype=object))


def saved_model(folder: Path, shift: float) -> Path:
    return Tiny(shift=shift).fit(interactions()).save(folder)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One migrated sqlite store for the module (MLflow's migrations take seconds)."""
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="module")
def logged(data_dir: Path, tmp_path_factory):
    """Two training runs of the same model family, logged once for the module."""
    registry = Registry(RegistryConfig(), data_dir)
    models = tmp_path_factory.mktemp("models")
    runs = []
    for i, shift in enumerate((0.5, 1.5)):
        runs.append(registry.log_training_run(
            saved_model(models / f"m{i}", shift), data_snapshot=snapshot_of_interactions(interactions()),
            metrics={"NDCG@10": 0.1 * (i + 1), "recall@20": 0.5}, counts={"users": 2, "items": 3, "interactions": 3},
        ))
    return runs


@pytest.fixture
def registry(data_dir: Path, logged, request) -> Registry:
    """A fresh registered model name per test on the shared store, with the two runs registered as v1, v2."""
    registry = Registry(RegistryConfig(model_name=f"rec-{request.node.name}"), data_dir)
    for run in logged:
        registry.register(run.run_id)
    return registry


# --- tracking ----------------------------------------------------------------------------------------
def test_log_training_run_records_params_metrics_lineage_and_artifacts(data_dir, logged, registry):
    run = registry.client.get_run(logged[1].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"model": "tiny", "shift": "1.5", "data.users": "2", "data.items": "3",
                               "data.interactions": "3"}
    assert run.data.metrics == {"NDCG_at_10": pytest.approx(0.2), "recall_at_20": 0.5}
    tags = run.data.tags
    assert tags["streamrec.data_snapshot"] == snapshot_of_interactions(interactions())
    assert tags["streamrec.code_version"] == code_version()
    assert json.loads(tags["streamrec.checksums"]) == logged[1].checksums
    assert set(logged[1].checksums) == {"arrays.npz", "config.json", "checksums.json"}
    artifacts = {f.path for f in registry.client.list_artifacts(run.info.run_id)}
    assert artifacts == {"model", "lineage.json"}
    # the artifacts live on disk under the data dir, the runs in the sqlite file there
    assert run.info.artifact_uri.startswith((data_dir / "mlartifacts").resolve().as_uri())
    root = Path(run.info.artifact_uri.removeprefix("file://"))
    assert folder_checksums(root / "model") == logged[1].checksums
    lineage = json.loads((root / "lineage.json").read_text())
    assert lineage["checksums"] == logged[1].checksums and lineage["params"] == {"shift": 1.5}
    assert (data_dir / "mlflow.db").is_file()


def test_code_version_is_a_git_commit_or_the_package_version():
    assert re.fullmatch(r"git:[0-9a-f]{40}(-dirty)?|streamrec==.+", code_version())


def test_log_training_run_rejects_a_folder_that_is_not_a_saved_model(registry, tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(DataError, match="config.json"):
        registry.log_training_run(tmp_path, data_snapshot="ix-0")
    with pytest.raises(DataError, match="not a folder"):
        registry.log_training_run(tmp_path / "missing", data_snapshot="ix-0")


# --- versions and aliases ----------------------------------------------------------------------------
def test_register_makes_numbered_versions_listed_newest_first(registry, logged):
    versions = registry.list_versions()
    assert [v.version for v in versions] == [2, 1]
    assert [v.run_id for v in versions] == [logged[1].run_id, logged[0].run_id]
    assert all(v.aliases == () and v.model == "tiny" for v in versions)
    assert registry.register(logged[0].run_id) == 3


def test_promote_moves_champion_and_keeps_the_previous_one_as_challenger(registry):
    first = registry.promote("1")
    assert (first.champion, first.challenger, first.previous_champion, first.changed) == (1, None, None, True)
    second = registry.promote("v2")
    assert (second.champion, second.challenger, second.previous_champion) == (2, 1, 1)
    assert {v.version: v.aliases for v in registry.list_versions()} == {2: ("champion",), 1: ("challenger",)}
    again = registry.promote("champion")
    assert not again.changed and (again.champion, again.challenger) == (2, 1)


def test_promoting_the_challenger_swaps_the_two(registry):
    registry.promote(1)
    registry.promote(2)
    change = registry.promote("challenger")
    assert (change.champion, change.challenger) == (1, 2)
    assert (registry.resolve("champion"), registry.resolve("challenger")) == (1, 2)


def test_rollback_restores_the_previous_champion_and_can_be_undone(registry):
    registry.promote(1)
    registry.promote(2)
    back = registry.rollback()
    assert (back.champion, back.challenger) == (1, 2)
    assert (registry.resolve("champion"), registry.resolve("challenger")) == (1, 2)
    forward = registry.rollback()
    assert (forward.champion, forward.challenger) == (2, 1)


def test_rollback_without_a_challenger_says_why(registry):
    with pytest.raises(NotFound, match="promote a version first"):
        registry.rollback()
    registry.promote(2)
    with pytest.raises(NotFound, match="nothing to roll back to: v2"):
        registry.rollback()


def test_show_by_alias_gives_params_metrics_and_lineage(registry, logged):
    registry.promote(2)
    info = registry.show("champion")
    assert (info.version, info.aliases, info.model) == (2, ("champion",), "tiny")
    assert info.run_id == logged[1].run_id
    assert info.data_snapshot == logged[1].data_snapshot and info.code_version == code_version()
    assert info.checksums == logged[1].checksums
    assert info.params["shift"] == "1.5" and info.metrics["NDCG_at_10"] == pytest.approx(0.2)
    assert info.created.tzinfo is not None and info.source.endswith("/artifacts/model")


def test_unknown_alias_version_or_model_is_not_found_with_what_exists(registry, data_dir):
    registry.promote(1)
    with pytest.raises(NotFound, match=r"@staging' not found: aliases set: champion \(v1\)"):
        registry.show("staging")
    with pytest.raises(NotFound, match="versions: 1, 2"):
        registry.download(7, data_dir / "never")
    with pytest.raises(NotFound, match="challenger"):
        registry.promote("challenger")
    with pytest.raises(NotFound, match="MLflow run 'no-such-run'"):
        registry.register("no-such-run")
    empty = Registry(RegistryConfig(model_name="never-registered"), data_dir)
    assert empty.list_versions() == []
    with pytest.raises(NotFound, match="registered model 'never-registered' not found"):
        empty.show("champion")


# --- downloads ---------------------------------------------------------------------------------------
def test_download_verifies_checksums_and_gives_a_loadable_model(registry, tmp_path):
    registry.promote(2)
    folder = registry.download("champion", tmp_path / "serving" / "champion")
    assert folder == tmp_path / "serving" / "champion"
    model = Tiny.load(folder)
    assert model.config.shift == 1.5
    np.testing.assert_allclose(model.weights_, [2.5, 2.5, 3.5])
    with pytest.raises(ConfigError, match="not an empty folder"):
        registry.download("champion", folder)


def test_download_of_a_tampered_artifact_raises_and_leaves_nothing(data_dir, tmp_path_factory, tmp_path):
    registry = Registry(RegistryConfig(model_name="tamper"), data_dir)
    run = registry.log_training_run(saved_model(tmp_path_factory.mktemp("t") / "m", 0.25), data_snapshot="ix-t")
    version = registry.register(run.run_id)
    stored = Path(run.artifact_uri.removeprefix("file://")) / "model"
    arrays = stored / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match="arrays.npz: checksum mismatch") as caught:
        registry.download(version, tmp_path / "out")
    assert caught.value.expected == run.checksums["arrays.npz"]
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    (stored / "extra.bin").write_bytes(b"x")
    arrays.write_bytes(arrays.read_bytes()[:-1])  # restored; an added file is still refused
    with pytest.raises(ChecksumError, match="extra.bin: checksum mismatch"):
        registry.download(version, tmp_path / "out")


# --- backends and configuration ----------------------------------------------------------------------
def test_unreachable_tracking_server_is_a_backend_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # restored after the test (connect sets it)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    config = RegistryConfig(tracking_uri="http://127.0.0.1:9", http_max_retries=0, http_timeout_s=5)
    registry = Registry(config, tmp_path)
    assert registry.endpoints.artifact_location is None  # the server's own artifact root
    with pytest.raises(BackendError, match="MLflow at http://127.0.0.1:9: cannot list model versions"):
        registry.list_versions()


def test_messages_never_show_a_password():
    from streamrec.registry.backend import safe_uri

    assert safe_uri("https://ml:s3cret@mlflow.example:5000/x") == "https://ml:***@mlflow.example:5000/x"
    assert safe_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"


def test_unopenable_sqlite_store_is_a_backend_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(BackendError, match="MLflow at sqlite:///"):
        Registry(RegistryConfig(tracking_uri=f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"), tmp_path)


def test_settings_default_to_a_sqlite_store_under_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./streamrec.toml
    monkeypatch.setenv("STREAMREC_REGISTRY__MODEL_NAME", "recs")
    settings = load_settings(data_dir=tmp_path)
    assert settings.registry.model_name == "recs" and settings.registry.tracking_uri is None
    from streamrec.registry.backend import resolve_endpoints

    endpoints = resolve_endpoints(settings.registry, settings.data_dir)
    assert endpoints.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert endpoints.registry_uri == endpoints.tracking_uri
    assert endpoints.artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_importing_the_registry_and_the_cli_does_not_import_mlflow():
    code = "import sys, streamrec.registry, streamrec.cli.app; assert 'mlflow' not in sys.modules, 'mlflow imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- lineage helpers ---------------------------------------------------------------------------------
def test_interaction_snapshot_ids_follow_the_content():
    assert snapshot_of_interactions(interactions()) == snapshot_of_interactions(interactions())
    assert snapshot_of_interactions(interactions(1.0)) != snapshot_of_interactions(interactions(2.0))
    assert snapshot_of_interactions(interactions()).startswith("ix-")


def test_batch_snapshot_ids_ignore_order_but_not_content():
    one = pa.table({"batch_id": [1, 2], "sha256": ["aa", "bb"]})
    swapped = pa.table({"batch_id": [2, 1], "sha256": ["bb", "aa"]})
    more = pa.table({"batch_id": [1, 2, 3], "sha256": ["aa", "bb", "cc"]})
    assert snapshot_of_batches(one) == snapshot_of_batches(swapped) != snapshot_of_batches(more)
    with pytest.raises(DataError, match="sha256"):
        snapshot_of_batches(pa.table({"batch_id": [1]}))


def test_metric_and_param_names_are_made_valid_for_mlflow():
    assert metric_key("NDCG@10") == "NDCG_at_10" and metric_key("hit rate/k=5") == "hit rate/k_5"
    assert flatten_params({"a": {"b": 1, "c": None}, "d": [1, 2]}) == {"a.b": "1", "a.c": "None", "d": "[1, 2]"}
