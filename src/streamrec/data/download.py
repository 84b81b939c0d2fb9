"""Download a MovieLens release from GroupLens, verified by checksum, for machines with internet access.

The zip is streamed to a temporary file beside its destination and renamed into place only once its checksum
matches: an explicit SHA-256 if given, else the MD5 that GroupLens publishes beside each zip (NAME.zip.md5).
A mismatch or a failed download leaves no file behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from streamrec.errors import BackendError, ChecksumError, DataError, NotFound

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"
_NAME = re.compile(r"^ml-[A-Za-z0-9._-]+$")
_CHUNK = 1 << 20


def _fetch_error(url: str, exc: Exception) -> Exception:
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()  # an HTTPError holds the open response
        if exc.code == 404:
            return NotFound("download", url, "the server has no such file (HTTP 404); check the name and --base-url")
        return BackendError(f"{url}: download failed: HTTP {exc.code} {exc.reason}")
    reason = getattr(exc, "reason", exc)
    return BackendError(f"{url}: download failed: {reason}")


def fetch_md5(url: str, timeout_s: float = 60.0) -> str:
    """The hex MD5 in a GroupLens .md5 file (any text holding one 32-hex-digit token)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read(64 * 1024).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise _fetch_error(url, exc) from None
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if match is None:
        raise DataError(url, "no MD5 checksum in this file")
    return match.group(0).lower()


def download_movielens(
    name: str,
    dest_dir: Path | str,
    base_url: str = GROUPLENS_URL,
    sha256: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download NAME.zip from `base_url` into `dest_dir` and verify it.

    Args:
        name: the release, e.g. "ml-latest-small" or "ml-25m".
        dest_dir: folder for the zip (created if missing).
        base_url: where the zips are; NAME.zip and NAME.zip.md5 are fetched from it.
        sha256: expected SHA-256 (hex) of the zip; when None, the published NAME.zip.md5 is checked instead.
        on_progress: called with (bytes done, total bytes; 0 when the server does not say).
        timeout_s: socket timeout of each request.
    Returns:
        The path of the verified zip (an existing file that already verifies is kept, not downloaded again).
    Raises:
        DataError for a malformed name or checksum; NotFound if the server has no such file (404);
        BackendError if the download fails; ChecksumError if the file does not match (nothing is kept).
    """
    if not _NAME.match(name):
        raise DataError(name, "not a MovieLens release name (expected e.g. ml-latest-small, ml-25m)")
    base = base_url if base_url.endswith("/") else base_url + "/"
    url = f"{base}{name}.zip"
    if sha256 is not None:
        expected = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", expected):
            raise DataError("--sha256", f"'{sha256}' is not a 64-digit hex SHA-256")
        algorithm = "sha256"
    else:
        expected = fetch_md5(f"{url}.md5", timeout_s)
        algorithm = "md5"

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{name}.zip"
    if target.is_file() and _digest(target, algorithm) == expected:
        return target

    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.zip.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    total = int(response.headers.get("Content-Length") or 0)
                    done = 0
                    if on_progress:
                        on_progress(0, total)
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if on_progress:
                            on_progress(done, total)
            except (urllib.error.URLError, OSError) as exc:
                raise _fetch_error(url, exc) from None
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(url, f"{algorithm} {expected}", f"{algorithm} {actual}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
