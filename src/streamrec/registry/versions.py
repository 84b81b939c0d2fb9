"""The model registry: versions of one registered model, aliases champion / challenger, verified downloads."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamrec.errors import BackendError, ConfigError, NotFound
from streamrec.registry.backend import Endpoints, connect, error_code, mlflow_errors, safe_uri
from streamrec.registry.lineage import verify_checksums
from streamrec.registry.tracking import (
    LINEAGE_TAGS, MODEL_ARTIFACT, TAG_CHECKSUMS, TAG_CODE, TAG_MODEL, TAG_SNAPSHOT, LoggedRun, ensure_experiment,
    log_run,
)
from streamrec.settings import RegistryConfig

if TYPE_CHECKING:
    from streamrec.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
_VERSION_REF = re.compile(r"^v?(\d+)$")


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version with its lineage; `params` and `metrics` are filled by `show`."""

    name: str
    version: int
    aliases: tuple[str, ...]
    model: str
    run_id: str
    data_snapshot: str
    code_version: str
    created: datetime
    source: str
    checksums: dict[str, str]
    description: str = ""
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AliasChange:
    """Where the aliases point after promote / rollback, and whether anything moved."""

    champion: int
    challenger: int | None
    previous_champion: int | None
    changed: bool


class Registry:
    """MLflow tracking and model registry for streamrec models. Build one with `open_registry(settings)`."""

    def __init__(self, config: RegistryConfig, data_dir: Path | str):
        self.config = config
        self.client, self.endpoints = connect(config, Path(data_dir))

    @property
    def name(self) -> str:
        """The registered model name."""
        return self.config.model_name

    @property
    def where(self) -> str:
        """The registry URI, safe to print (no password)."""
        return safe_uri(self.endpoints.registry_uri)

    # --- tracking ------------------------------------------------------------------------------------
    def log_training_run(
        self,
        model_folder: Path | str,
        *,
        data_snapshot: str,
        metrics: Mapping[str, float] | None = None,
        counts: Mapping[str, int] | None = None,
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> LoggedRun:
        """Record a training run: params, metrics, lineage and the saved model folder with its checksums.

        Args:
            model_folder: a folder written by `Recommender.save` (config.json, arrays.npz, checksums.json).
            data_snapshot: id of the training data (`snapshot_of_interactions` / `snapshot_of_batches`).
            metrics: evaluation results, e.g. {"NDCG@10": 0.31} ('@' is stored as '_at_': NDCG_at_10).
            counts: sizes of the training data, e.g. {"users": 610, "items": 9724, "interactions": 100836}.
            model: model family; default: the "model" of the folder's config.json.
            params: hyperparameters; default: the "config" of the folder's config.json.
            run_name: MLflow run name; default "<model>-<time>".
            tags: extra run tags.

        Returns:
            The run id and what was recorded (the code version is the git commit, else the package version).

        Raises:
            DataError: the folder is not a saved model. BackendError: MLflow failed.
        """
        with mlflow_errors(self.endpoints.tracking_uri, "log the training run"):
            experiment_id = ensure_experiment(self.client, self.config.experiment, self.endpoints.artifact_location)
            return log_run(self.client, experiment_id, Path(model_folder), data_snapshot=data_snapshot,
                           metrics=metrics, counts=counts, model=model, params=params, run_name=run_name, tags=tags)

    # --- registry ------------------------------------------------------------------------------------
    def register(self, run_id: str, *, description: str | None = None) -> int:
        """Register the model logged by run `run_id` as a new version (the registered model is created if new).

        Returns:
            The new version number. Raises NotFound for an unknown run id.
        """
        from mlflow.exceptions import MlflowException

        with mlflow_errors(self.where, f"register run {run_id}"):
            try:
                run = self.client.get_run(run_id)
            except MlflowException as exc:
                if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                    raise NotFound("MLflow run", run_id, f"no such run at {safe_uri(self.endpoints.tracking_uri)}") from exc
                raise
            if TAG_CHECKSUMS not in run.data.tags:
                raise ConfigError(f"run {run_id} was not logged by streamrec (no '{TAG_CHECKSUMS}' tag)")
            try:
                self.client.create_registered_model(
                    self.name, description="streamrec recommenders; aliases champion (serving) and challenger")
            except MlflowException as exc:
                if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
            tags = {k: run.data.tags[k] for k in LINEAGE_TAGS if k in run.data.tags}
            version = self.client.create_model_version(
                self.name, f"{run.info.artifact_uri}/{MODEL_ARTIFACT}", run_id=run_id, tags=tags,
                description=description)
        return int(version.version)

    def list_versions(self) -> list[VersionInfo]:
        """All versions, newest first (empty when nothing was registered yet)."""
        with mlflow_errors(self.where, "list model versions"):
            found = self.client.search_model_versions(f"name = '{self.name}'")
            aliases = self._aliases() if found else {}
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        infos = [self._info(mv, tuple(sorted(by_version.get(int(mv.version), [])))) for mv in found]
        return sorted(infos, key=lambda info: info.version, reverse=True)

    def resolve(self, ref: str | int) -> int:
        """Version number of `ref`: a number ('3', 'v3', 3) or an alias ('champion', 'challenger', ...).

        Raises:
            NotFound: no such version or alias (the message lists what exists).
        """
        aliases = self._aliases()
        match = _VERSION_REF.match(str(ref).strip())
        if match is None:
            if str(ref) not in aliases:
                have = ", ".join(f"{a} (v{v})" for a, v in sorted(aliases.items())) or "none"
                raise NotFound("model alias", f"{self.name}@{ref}", f"aliases set: {have}")
            return aliases[str(ref)]
        version = int(match.group(1))
        self._version(version)
        return version

    def show(self, ref: str | int) -> VersionInfo:
        """A version (by number or alias) with its params, metrics and lineage."""
        version = self.resolve(ref)
        with mlflow_errors(self.where, f"read version {version}"):
            mv = self._version(version)
            aliases = tuple(sorted(a for a, v in self._aliases().items() if v == version))
            info = self._info(mv, aliases)
            params: dict[str, str] = {}
            metrics: dict[str, float] = {}
            if info.run_id:
                run = self.client.get_run(info.run_id)
                params, metrics = dict(run.data.params), dict(run.data.metrics)
        return replace(info, params=params, metrics=metrics)

    def promote(self, ref: str | int) -> AliasChange:
        """Make `ref` the champion; the previous champion becomes challenger (the rollback target)."""
        version = self.resolve(ref)
        aliases = self._aliases()
        current = aliases.get(CHAMPION)
        if current == version:
            return AliasChange(version, aliases.get(CHALLENGER), current, changed=False)
        with mlflow_errors(self.where, f"promote version {version}"):
            # challenger first: if the second call fails, serving still has its champion and nothing is lost
            if current is not None:
                self.client.set_registered_model_alias(self.name, CHALLENGER, str(current))
            elif aliases.get(CHALLENGER) == version:
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
            self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
        challenger = current if current is not None else (
            None if aliases.get(CHALLENGER) == version else aliases.get(CHALLENGER))
        return AliasChange(version, challenger, current, changed=True)

    def rollback(self) -> AliasChange:
        """Swap the aliases: the challenger (the previous champion) is champion again, the demoted one challenger."""
        aliases = self._aliases()
        champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
        if champion is None:
            raise NotFound("model alias", f"{self.name}@{CHAMPION}", "nothing to roll back: promote a version first")
        if challenger is None:
            raise NotFound("model alias", f"{self.name}@{CHALLENGER}",
                           f"nothing to roll back to: v{champion} is the only version ever promoted")
        with mlflow_errors(self.where, "roll back"):
            self.client.set_registered_model_alias(self.name, CHAMPION, str(challenger))
            self.client.set_registered_model_alias(self.name, CHALLENGER, str(champion))
        return AliasChange(challenger, champion, champion, changed=True)

    def download(self, ref: str | int, dest: Path | str) -> Path:
        """Fetch a version's model folder into `dest` (absent or empty) and verify its checksums first.

        Returns:
            `dest`, holding config.json, arrays.npz, checksums.json (ready for `Recommender.load`).

        Raises:
            NotFound: unknown version or alias. ChecksumError: a file differs from the registered checksum
            (nothing is left at `dest`). ConfigError: `dest` is a non-empty folder.
        """
        import mlflow.artifacts

        version = self.resolve(ref)
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise ConfigError(f"{dest}: download target exists and is not an empty folder")
        with mlflow_errors(self.where, f"read version {version}"):
            mv = self._version(version)
            tags, source = dict(mv.tags or {}), self.client.get_model_version_download_uri(self.name, str(version))
        if TAG_CHECKSUMS not in tags:
            raise BackendError(f"{self.name} v{version}: no recorded checksums ('{TAG_CHECKSUMS}' tag); "
                               "register models through streamrec")
        expected = json.loads(tags[TAG_CHECKSUMS])
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-download-") as tmp:
            with mlflow_errors(self.where, f"download version {version}"), _no_progress_bar():
                # the version's own source, not a models:/ URI (MLflow would resolve that with its global registry URI)
                local = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=tmp, tracking_uri=self.endpoints.tracking_uri))
            verify_checksums(local, expected)
            if dest.exists():
                dest.rmdir()
            os.replace(local, dest)
        return dest

    # --- helpers -------------------------------------------------------------------------------------
    def _aliases(self) -> dict[str, int]:
        from mlflow.exceptions import MlflowException

        with mlflow_errors(self.where, "read the registered model"):
            try:
                registered = self.client.get_registered_model(self.name)
            except MlflowException as exc:
                if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                    raise NotFound("registered model", self.name,
                                   f"nothing registered at {self.where} yet (train and register a model first)"
                                   ) from exc
                raise
        return {alias: int(version) for alias, version in (registered.aliases or {}).items()}

    def _version(self, version: int) -> Any:
        from mlflow.exceptions import MlflowException

        with mlflow_errors(self.where, f"read version {version}"):
            try:
                return self.client.get_model_version(self.name, str(version))
            except MlflowException as exc:
                if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                    have = sorted(int(mv.version) for mv in
                                  self.client.search_model_versions(f"name = '{self.name}'"))
                    raise NotFound("model version", f"{self.name} v{version}",
                                   f"versions: {', '.join(map(str, have)) or 'none'}") from exc
                raise

    def _info(self, mv: Any, aliases: tuple[str, ...]) -> VersionInfo:
        tags = dict(mv.tags or {})
        return VersionInfo(
            name=mv.name, version=int(mv.version), aliases=aliases, model=tags.get(TAG_MODEL, "?"),
            run_id=mv.run_id or "", data_snapshot=tags.get(TAG_SNAPSHOT, "?"), code_version=tags.get(TAG_CODE, "?"),
            created=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC), source=mv.source or "",
            checksums=json.loads(tags.get(TAG_CHECKSUMS, "{}")), description=mv.description or "")


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a tqdm bar on stderr while downloading; the CLI prints its own summary instead."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def open_registry(settings: Settings) -> Registry:
    """The registry configured by `settings.registry` (default: sqlite under settings.data_dir).

    MLflow's own INFO lines ("Creating initial MLflow database tables...") are hidden unless the log level is
    debug; MLflow sets its loggers up when imported, so this happens after the import.
    """
    import logging

    import mlflow  # noqa: F401

    if settings.logging.level != "debug":
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    return Registry(settings.registry, settings.data_dir)


__all__ = ["CHALLENGER", "CHAMPION", "AliasChange", "Endpoints", "Registry", "VersionInfo", "alias_of",
           "open_registry"]


def alias_of(ref: str) -> str | None:
    """The registry alias `ref` names ('champion', 'challenger', ...), or None for a version number or a saved model
    folder: what `model_folder` would resolve through an alias, so what can move when a version is promoted."""
    if Path(ref).is_dir() or _VERSION_REF.match(ref.strip()):
        return None
    return ref


def model_folder(settings: Settings, ref: str, tmp: Path | str) -> tuple[Path, str]:
    """Where the model `ref` is: a saved model folder as it is (version: its name), or a registry alias or version
    downloaded under `tmp` with its checksums verified (version: the number). Returns (folder, version)."""
    folder = Path(ref)
    if folder.is_dir():
        return folder, folder.name
    registry = open_registry(settings)
    number = registry.resolve(ref)
    return registry.download(number, Path(tmp) / "model"), str(number)
