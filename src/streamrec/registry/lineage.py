"""Lineage of a trained model: data snapshot ids, code version, and sha256 checksums of its saved files."""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamrec.errors import ChecksumError, DataError
from streamrec.integrity import sha256_file

if TYPE_CHECKING:
    import pyarrow as pa

    from streamrec.data.interactions import Interactions




def folder_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by its posix path relative to the folder (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(str(folder), "not a folder (expected a saved model: config.json, arrays.npz, checksums.json)")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise DataError(str(folder), "is empty (expected a saved model)")
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in files}


def verify_checksums(folder: Path, expected: Mapping[str, str]) -> None:
    """Check that `folder` holds exactly the files of `expected`, each with its sha256.

    Raises:
        ChecksumError: a file differs, is missing, or was not recorded (names the first such file).
    """
    actual = folder_checksums(folder) if any(Path(folder).iterdir()) else {}
    for name, sha in sorted(expected.items()):
        got = actual.get(name, "missing")
        if got != sha:
            raise ChecksumError(str(Path(folder) / name), sha, got)
    for name in sorted(set(actual) - set(expected)):
        raise ChecksumError(str(Path(folder) / name), "no such file in the registered model", actual[name])


def snapshot_of_interactions(data: Interactions) -> str:
    """Content id of a training matrix: sha256 over its id vocabularies and CSR arrays ("ix-" + 16 hex)."""
    digest = hashlib.sha256()
    matrix = data.matrix.tocsr()
    for ids in (data.user_ids, data.item_ids):
        digest.update("\x1f".join(map(str, ids.tolist())).encode())
        digest.update(b"\x1e")
    digest.update(np.asarray(matrix.shape, dtype=np.int64).tobytes())
    for array, dtype in ((matrix.indptr, np.int64), (matrix.indices, np.int64), (matrix.data, np.float32)):
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return "ix-" + digest.hexdigest()[:16]


def snapshot_of_batches(batches: pa.Table) -> str:
    """Content id of an event store: sha256 over the sorted file checksums of its batches manifest ("ev-" + 16 hex)."""
    if "sha256" not in batches.column_names:
        raise DataError("batches manifest", "has no 'sha256' column")
    files = sorted(str(s) for s in batches.column("sha256").to_pylist())
    return "ev-" + hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> str:
    """'git:<commit>' (+ '-dirty' with uncommitted changes) of the source tree, else 'streamrec==<version>'."""
    source = Path(__file__).resolve().parent
    try:
        commit = _git(source, "rev-parse", "HEAD")
        dirty = _git(source, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
        return f"git:{commit}" + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        try:
            return f"streamrec=={metadata.version('streamrec')}"
        except metadata.PackageNotFoundError:
            return "unknown"


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


_BAD_NAME = re.compile(r"[^\w.\- /]")


def metric_key(name: str) -> str:
    """An MLflow-safe metric or param name: 'NDCG@10' → 'NDCG_at_10' (MLflow allows only [\\w.\\- /])."""
    return _BAD_NAME.sub("_", name.replace("@", "_at_"))


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested hyperparameters as flat 'a.b' → string values (MLflow params are strings)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{metric_key(str(key))}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = "None" if value is None else str(value)
    return flat
