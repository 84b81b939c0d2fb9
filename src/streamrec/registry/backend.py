"""The MLflow connection: resolved URIs, the client (imported lazily), and MLflow failures as domain errors."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from streamrec.errors import BackendError
from streamrec.settings import RegistryConfig

if TYPE_CHECKING:
    from mlflow import MlflowClient

_LOCAL_SCHEMES = {"sqlite", "file", ""}


@dataclass(frozen=True)
class Endpoints:
    """Where the tracking store, the model registry and new experiments' artifacts live."""

    tracking_uri: str
    registry_uri: str
    artifact_location: str | None

    @property
    def is_local(self) -> bool:
        return urlparse(self.tracking_uri).scheme in _LOCAL_SCHEMES


def resolve_endpoints(config: RegistryConfig, data_dir: Path) -> Endpoints:
    """The configured URIs, with the defaults under `data_dir` filled in (absolute paths)."""
    data_dir = Path(data_dir).resolve()
    tracking = config.tracking_uri or f"sqlite:///{data_dir / 'mlflow.db'}"
    registry = config.registry_uri or tracking
    artifacts = config.artifact_location
    if artifacts is None and urlparse(tracking).scheme in _LOCAL_SCHEMES:
        artifacts = (data_dir / "mlartifacts").as_uri()
    return Endpoints(tracking, registry, artifacts)


def connect(config: RegistryConfig, data_dir: Path) -> tuple[MlflowClient, Endpoints]:
    """An MlflowClient on the configured store (a local sqlite file is created and migrated on first use).

    Raises:
        BackendError: the store cannot be opened or reached.
    """
    endpoints = resolve_endpoints(config, data_dir)
    if not endpoints.is_local:
        # MLflow reads these at request time; its defaults (7 retries, exponential backoff, 120 s)
        # would make an unreachable server look like a hang.
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(config.http_max_retries)
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(config.http_timeout_s)
    with quiet_sqlalchemy_import(), mlflow_errors(endpoints.tracking_uri, "open the MLflow store"):
        for uri in {endpoints.tracking_uri, endpoints.registry_uri}:
            if uri.startswith("sqlite:///") and ":memory:" not in uri:
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=endpoints.tracking_uri, registry_uri=endpoints.registry_uri)
    return client, endpoints


@contextmanager
def quiet_sqlalchemy_import() -> Iterator[None]:
    """Silence the one known deprecation warning of MLflow's SQL stores, only while they are imported.

    mlflow/store/tracking/sqlalchemy_store.py calls `sqlalchemy.orm.configure_mappers()` at import; with
    SQLAlchemy >= 2.1 that emits SADeprecationWarning "The ``noload`` loader strategy is deprecated" for
    MLflow's own relationship definitions. It is MLflow's to fix; nothing in streamrec uses noload.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")
        import sqlalchemy.orm

        try:
            import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        except ImportError:  # pragma: no cover - a server-only install; the client reports it on use
            pass
        else:
            sqlalchemy.orm.configure_mappers()
        yield


@contextmanager
def mlflow_errors(where: str, action: str) -> Iterator[None]:
    """Turn failures of MLflow, its database or its HTTP transport into BackendError naming `where`."""
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException  # also wraps HTTP failures (connection refused, timeouts)

    try:
        yield
    except (MlflowException, sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        password = urlparse(where).password
        if password:
            message = message.replace(password, "***")
        raise BackendError(f"MLflow at {safe_uri(where)}: cannot {action}: {message.splitlines()[0][:500]}") from exc


def safe_uri(uri: str) -> str:
    """`uri` without a password, for messages ('http://user:secret@host' → 'http://user:***@host')."""
    parts = urlparse(uri)
    if parts.password is None:
        return uri
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code of an exception (e.g. RESOURCE_DOES_NOT_EXIST), None for other errors."""
    return getattr(exc, "error_code", None)
