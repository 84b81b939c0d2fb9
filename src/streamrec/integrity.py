"""Checksums of saved artifacts (models, pipeline bundles, vector indexes): written beside them, verified before
anything is loaded, so a corrupted or tampered file is refused instead of served."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from streamrec.errors import ChecksumError, NotFound


def sha256_file(path: Path) -> str:
    """The file's sha256 (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(folder: Path, expected: Mapping[str, str]) -> None:
    """Check each file (name relative to `folder`) against its sha256.

    Raises:
        NotFound: a listed file is missing. ChecksumError: a file's content changed.
    """
    for name, want in expected.items():
        path = folder / name
        if not path.is_file():
            raise NotFound("artifact file", str(path))
        actual = sha256_file(path)
        if actual != want:
            raise ChecksumError(str(path), want, actual)
