"""MovieLens loaders: every GroupLens release, from its folder or its .zip, into canonical streamrec tables.

Releases and their files (auto-detected from the files present, or named explicitly):
    ml-100k                 u.data (tab: user item rating ts), u.item (pipe, latin-1: release date, 19 genre
                            flags), u.user, u.genre
    ml-1m                   ratings.dat, movies.dat, users.dat (`::` separators, latin-1)
    ml-10m                  ratings.dat, movies.dat, tags.dat (`::`); its zip's folder is ml-10M100K
    ml-20m, ml-25m, ml-32m, ml-latest, ml-latest-small
                            ratings.csv, movies.csv, tags.csv, links.csv (one shared CSV layout; the name comes
                            from the folder, the zip or README.txt, and is `ml-latest` when none says)

Mapping to streamrec:
- Ratings become events of type "rating" (value kept), event_id "ml:{user}:{item}:{unix seconds}" (unique: a
  MovieLens user rates a movie once), ts from the unix seconds (UTC), ids as strings, in time order.
- Titles: the title without its "(1995)" suffix; release_date from ml-100k's release date, else January 1 of the
  year in the title (null without a year); genres as a list ("(no genres listed)" and ml-100k's "unknown" → []);
  kind "movie"; maturity, runtime and language null (MovieLens has none). Titles that are rated or tagged but
  missing from the movie list are added with a null title (counted in the data set's params).
- Users: from users.dat / u.user where it exists, plus every user who rated; region "unknown", maturity limit
  null (no limit), signup_ts = the user's first rating (null for a listed user who never rated).
- Tags are kept as the tags table. links.csv is read (MovieLensTables.links) but not written to the data set.
- Availability: MovieLens has none, so the availability table is empty, and a title with no availability rows is
  available everywhere, at all times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from streamrec.data.catalog import AVAILABILITY_SCHEMA
from streamrec.data.dataset import DatasetInfo, DatasetWriter
from streamrec.data.movielens.convert import Converter, events_with_progress
from streamrec.data.movielens.readers import RawTables, read_raw
from streamrec.data.movielens.source import FORMAT_OF, VARIANTS, MovieLensSource
from streamrec.events.schema import EVENT_ARROW_SCHEMA

__all__ = [
    "VARIANTS",
    "MovieLensTables",
    "detect_variant",
    "movielens_to_dataset",
    "read_movielens",
]


@dataclass
class MovieLensTables:
    """One release as canonical Arrow tables (schemas of streamrec.data.catalog and streamrec.events.schema)."""

    variant: str
    titles: pa.Table
    users: pa.Table
    tags: pa.Table
    events: pa.Table
    links: pa.Table | None = None  # item, imdb_id, tmdb_id (CSV releases only)
    unlisted_titles: int = 0  # titles rated/tagged but missing from the movie list


def detect_variant(path: Path | str) -> str:
    """Which MovieLens release a folder or .zip holds, from the files present.

    Args:
        path: a release folder (or its parent), or a GroupLens .zip.
    Returns:
        One of VARIANTS.
    Raises:
        NotFound if the path does not exist; DataError if no MovieLens ratings file is there.
    """
    with MovieLensSource(path) as source:
        return source.variant()


def _open(path: Path | str, variant: str | None) -> tuple[RawTables, str]:
    with MovieLensSource(path) as source:
        variant = variant or source.variant()
        fmt = source.check(variant)
        return read_raw(source, fmt), variant


def read_movielens(path: Path | str, variant: str | None = None) -> MovieLensTables:
    """Read a MovieLens release into memory as canonical tables.

    Args:
        path: a release folder (or its parent), or a GroupLens .zip (read without extracting).
        variant: one of VARIANTS; detected from the files when None.
    Returns:
        MovieLensTables with titles, users, tags and rating events.
    Raises:
        DataError naming the file (and line) that is missing or unreadable; NotFound if path does not exist.
    """
    raw, variant = _open(path, variant)
    conv = Converter(raw)
    try:
        titles, unlisted = conv.titles()
        batches = list(conv.events())
        events = pa.concat_tables(batches) if batches else EVENT_ARROW_SCHEMA.empty_table()
        return MovieLensTables(variant, titles, conv.users(), conv.tags(), events, raw.links, unlisted)
    finally:
        conv.close()


def movielens_to_dataset(
    path: Path | str,
    out: Path | str,
    variant: str | None = None,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> DatasetInfo:
    """Load a MovieLens release into a data set folder (streamrec.data.dataset layout), atomically.

    Args:
        path: a release folder (or its parent), or a GroupLens .zip.
        out: the data set folder to write.
        variant: one of VARIANTS; detected from the files when None.
        overwrite: replace `out` if it exists (otherwise that is a DataError).
        on_progress: called with (events written, total events) as events are written.
    Returns:
        The DatasetInfo written to out/dataset.json (source "movielens:<variant>").
    """
    start = time.perf_counter()
    raw, variant = _open(path, variant)
    read_s = time.perf_counter() - start
    conv = Converter(raw)
    try:
        with DatasetWriter(out, overwrite=overwrite) as writer:
            titles, unlisted = conv.titles()
            writer.put_table("titles", titles)
            writer.put_table("availability", AVAILABILITY_SCHEMA.empty_table())
            writer.put_table("users", conv.users())
            writer.put_table("tags", conv.tags())
            writer.put_events(events_with_progress(conv.events(), conv.n_events, on_progress))
            info = DatasetInfo(
                name=variant,
                source=f"movielens:{variant}",
                params={
                    "path": str(Path(path).resolve()),
                    "variant": variant,
                    "format": FORMAT_OF[variant],
                    "unlisted_titles": unlisted,
                    "read_s": round(read_s, 3),
                    "seconds": round(time.perf_counter() - start, 3),
                },
            )
            writer.commit(info)
    finally:
        conv.close()
    return info
