"""Where MovieLens files come from (a folder or a .zip) and which MovieLens release they are."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Self

from streamrec.errors import DataError, NotFound

VARIANTS: tuple[str, ...] = (
    "ml-100k",
    "ml-1m",
    "ml-10m",
    "ml-20m",
    "ml-25m",
    "ml-32m",
    "ml-latest",
    "ml-latest-small",
)
# The file format of each release: ml-20m and later all share the CSV layout.
FORMAT_OF: dict[str, str] = {"ml-100k": "100k", "ml-1m": "1m", "ml-10m": "10m"} | {
    v: "csv" for v in ("ml-20m", "ml-25m", "ml-32m", "ml-latest", "ml-latest-small")
}
# Files each format must have (ratings and the movie list), and the file whose presence marks it.
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "100k": ("u.data", "u.item"),
    "1m": ("ratings.dat", "movies.dat"),
    "10m": ("ratings.dat", "movies.dat"),
    "csv": ("ratings.csv", "movies.csv"),
}
_MARKERS = ("u.data", "ratings.dat", "ratings.csv")
_ALIASES = {"ml-10m100k": "ml-10m"}  # the ml-10m zip's top folder is ml-10M100K
_README_NAME = re.compile(r"\((ml-[a-z0-9-]+)\)", re.IGNORECASE)


def _variant_name(text: str) -> str | None:
    name = text.strip().lower()
    name = _ALIASES.get(name, name)
    return name if name in VARIANTS else None


class MovieLensSource:
    """The files of one MovieLens release, read from a folder or straight from its .zip (no extraction).

    The folder may be the release folder itself or its parent; a zip may hold the files at any depth
    (GroupLens zips hold one top folder, e.g. ml-latest-small/ratings.csv).
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.exists():
            raise NotFound("MovieLens data", str(self.path), "give a MovieLens folder or .zip")
        self._zip: zipfile.ZipFile | None = None
        self.files: dict[str, str] = {}  # base name -> member name (zip) or file path (folder)
        if self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as exc:
                raise DataError(str(self.path), f"not a readable .zip file ({exc})") from None
            self.folder_name = self._index_zip()
        else:
            self.folder_name = self._index_folder()

    def _index_zip(self) -> str:
        assert self._zip is not None
        members = [n for n in self._zip.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")]
        dirs = sorted(
            {str(PurePosixPath(n).parent) for n in members if PurePosixPath(n).name in _MARKERS},
            key=lambda d: (d.count("/"), d),
        )
        top = dirs[0] if dirs else ""
        for name in members:
            member = PurePosixPath(name)
            if str(member.parent) == (top or "."):
                self.files[member.name] = name
        return PurePosixPath(top).name if top not in ("", ".") else self.path.stem

    def _index_folder(self) -> str:
        candidates = [self.path] + sorted(p for p in self.path.iterdir() if p.is_dir())
        folder = next((c for c in candidates if any((c / m).is_file() for m in _MARKERS)), self.path)
        self.files = {p.name: str(p) for p in folder.iterdir() if p.is_file()}
        return folder.name

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, name: str) -> bool:
        return name in self.files

    def label(self, name: str) -> str:
        """Where a file is, for error messages: the folder path, or 'archive.zip:member'."""
        if name not in self.files:
            return str(self.path / name) if self._zip is None else f"{self.path}:{name}"
        return f"{self.path}:{self.files[name]}" if self._zip is not None else self.files[name]

    def open(self, name: str) -> IO[bytes]:
        """A binary stream of one file (the caller closes it)."""
        if name not in self.files:
            raise DataError(self.label(name), f"file missing; files found: {sorted(self.files)}")
        if self._zip is not None:
            return self._zip.open(self.files[name])
        return open(self.files[name], "rb")

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def size(self, name: str) -> int:
        if self._zip is not None:
            return self._zip.getinfo(self.files[name]).file_size
        return Path(self.files[name]).stat().st_size

    def format(self) -> str:
        """The file format present: '100k', '1m', '10m' or 'csv'."""
        if self.has("u.data"):
            return "100k"
        if self.has("ratings.dat"):
            return "1m" if self.has("users.dat") else "10m"
        if self.has("ratings.csv"):
            return "csv"
        raise DataError(
            str(self.path),
            "no MovieLens ratings file (u.data, ratings.dat or ratings.csv) found; "
            f"files found: {sorted(self.files) or 'none'}",
        )

    def variant(self) -> str:
        """The release, from the files present; CSV releases are named by folder, zip name or README."""
        fmt = self.format()
        if fmt != "csv":
            return {"100k": "ml-100k", "1m": "ml-1m", "10m": "ml-10m"}[fmt]
        hints = [self.folder_name, self.path.stem if self._zip is not None else self.path.name]
        for readme in ("README.txt", "README"):
            if self.has(readme):
                head = self.read_bytes(readme)[:4096].decode("utf-8", errors="replace")
                hints.extend(_README_NAME.findall(head))
        for hint in hints:
            name = _variant_name(hint)
            if name is not None and FORMAT_OF[name] == "csv":
                return name
        return "ml-latest"  # every CSV release has the same layout; the name is only a label

    def check(self, variant: str) -> str:
        """Validate an explicit variant against the files present; returns its format."""
        if variant not in VARIANTS:
            raise DataError(str(self.path), f"unknown MovieLens variant '{variant}'; known: {', '.join(VARIANTS)}")
        fmt = FORMAT_OF[variant]
        present = self.format()
        if {fmt, present} == {"1m", "10m"}:  # same file names; ml-1m has users.dat, ml-10m tags.dat
            present = fmt
        if present != fmt:
            raise DataError(
                str(self.path),
                f"variant '{variant}' needs {', '.join(REQUIRED_FILES[fmt])}; files found: {sorted(self.files)}",
            )
        missing = [f for f in REQUIRED_FILES[fmt] if not self.has(f)]
        if missing:
            raise DataError(str(self.path), f"{variant}: missing file(s) {missing}; files found: {sorted(self.files)}")
        return fmt
