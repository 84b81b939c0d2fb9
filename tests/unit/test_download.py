"""MovieLens download: served from a local http.server thread on 127.0.0.1, never the internet."""

from __future__ import annotations

import functools
import hashlib
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.data.download import download_movielens
from streamrec.data.movielens import read_movielens
from streamrec.errors import BackendError, ChecksumError, DataError, NotFound


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder) holding ml-tiny.zip, its published .md5, and ml-bad.zip with a wrong .md5."""
    root = tmp_path / "site"
    root.mkdir()
    with zipfile.ZipFile(root / "ml-tiny.zip", "w") as zf:
        zf.writestr("ml-tiny/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
        zf.writestr("ml-tiny/movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    digest = hashlib.md5((root / "ml-tiny.zip").read_bytes()).hexdigest()
    (root / "ml-tiny.zip.md5").write_text(f"MD5 (ml-tiny.zip) = {digest}\n")
    (root / "ml-bad.zip").write_bytes((root / "ml-tiny.zip").read_bytes() + b"tampered")
    (root / "ml-bad.zip.md5").write_text(f"{digest}  ml-bad.zip\n")
    (root / "ml-nosum.zip").write_bytes(b"zip without a checksum file")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_good_md5_downloads_and_loads(site: tuple[str, Path], tmp_path: Path) -> None:
    base, root = site
    progress: list[tuple[int, int]] = []
    path = download_movielens(
        "ml-tiny", tmp_path / "dl", base_url=base, on_progress=lambda d, t: progress.append((d, t))
    )
    assert path == tmp_path / "dl" / "ml-tiny.zip"
    assert path.read_bytes() == (root / "ml-tiny.zip").read_bytes()
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["ml-tiny.zip"]  # no temp file left
    size = path.stat().st_size
    assert progress[-1] == (size, size)
    assert read_movielens(path).events.num_rows == 1


def test_bad_md5_raises_and_leaves_nothing(site: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = site
    with pytest.raises(ChecksumError, match=r"ml-bad\.zip: checksum mismatch \(expected md5 "):
        download_movielens("ml-bad", tmp_path / "dl", base_url=base)
    assert list((tmp_path / "dl").iterdir()) == []


def test_explicit_sha256(site: tuple[str, Path], tmp_path: Path) -> None:
    base, root = site
    good = hashlib.sha256((root / "ml-nosum.zip").read_bytes()).hexdigest()
    path = download_movielens("ml-nosum", tmp_path / "dl", base_url=base, sha256=good.upper())
    assert path.read_bytes() == b"zip without a checksum file"
    with pytest.raises(ChecksumError, match="expected sha256 " + "0" * 64):
        download_movielens("ml-nosum", tmp_path / "other", base_url=base, sha256="0" * 64)
    assert list((tmp_path / "other").iterdir()) == []
    with pytest.raises(DataError, match="not a 64-digit hex SHA-256"):
        download_movielens("ml-nosum", tmp_path / "dl", base_url=base, sha256="abc")


def test_missing_file_is_a_clear_not_found(site: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = site
    with pytest.raises(NotFound, match=r"ml-nothere\.zip\.md5' not found: .*HTTP 404"):
        download_movielens("ml-nothere", tmp_path / "dl", base_url=base)
    with pytest.raises(NotFound, match=r"ml-nothere\.zip' not found"):
        download_movielens("ml-nothere", tmp_path / "dl", base_url=base, sha256="0" * 64)
    assert list((tmp_path / "dl").iterdir()) == []
    with pytest.raises(NotFound, match=r"ml-nosum\.zip\.md5"):  # zip there, published checksum not
        download_movielens("ml-nosum", tmp_path / "dl", base_url=base)


def test_verified_file_is_not_downloaded_again(site: tuple[str, Path], tmp_path: Path) -> None:
    base, root = site
    first = download_movielens("ml-tiny", tmp_path / "dl", base_url=base)
    (root / "ml-tiny.zip").write_bytes(b"changed on the server")  # a second download would now fail the md5
    assert download_movielens("ml-tiny", tmp_path / "dl", base_url=base) == first


def test_bad_names_and_unreachable_servers(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a MovieLens release name"):
        download_movielens("../etc/passwd", tmp_path)
    with pytest.raises(BackendError, match="download failed"):
        download_movielens("ml-tiny", tmp_path, base_url="http://127.0.0.1:9/", timeout_s=5)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CliRunner in an empty folder. The root callback configures structlog to print to the runner's stderr,
    which is closed after each invoke, so the previous logging set-up is restored afterwards."""
    monkeypatch.chdir(tmp_path)
    saved = structlog.get_config()
    yield CliRunner()
    structlog.configure(**saved)


def test_cli_download(site: tuple[str, Path], tmp_path: Path, runner: CliRunner) -> None:
    base, _ = site
    args = ["data", "download", "ml-tiny", "--dest", str(tmp_path / "dl"), "--base-url", base]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Downloaded ml-tiny" in result.output and (tmp_path / "dl" / "ml-tiny.zip").is_file()
    bad = runner.invoke(app, ["data", "download", "ml-bad", "--dest", str(tmp_path / "dl"), "--base-url", base])
    assert isinstance(bad.exception, ChecksumError)
