"""Readers for each MovieLens file format, producing raw Arrow tables with one layout for every release.

Raw layouts (ids are the integers MovieLens uses; conversion to canonical tables is in `convert`):
    ratings  user int64, item int64, rating float64, ts int64 (unix seconds)
    movies   item int64, title string (with its "(1995)" suffix), genres list<string>, release string
             (ml-100k's "01-Jan-1995" release date; null elsewhere)
    users    user int64 (only where a users file exists)
    tags     user int64, item int64, tag string, ts int64
    links    item int64, imdb_id string, tmdb_id string

Every reader is vectorized (pyarrow.csv or a regular expression over whole columns), never a Python loop per row.
Files with `::` separators are read either with ':' as the delimiter (numeric files, where the empty fields in
between are ignored) or as whole lines split by one regular expression (files whose text may contain ':').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from streamrec.data.movielens.source import MovieLensSource
from streamrec.errors import DataError

# ml-100k's genre flag columns, in file order (u.genre lists the same; it is read when present).
ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_BLOCK = 16 << 20  # CSV block size: large blocks parse faster in parallel

RATINGS_TYPES = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float64(), "ts": pa.int64()}


@dataclass
class RawTables:
    ratings: pa.Table
    movies: pa.Table
    users: pa.Table | None = None
    tags: pa.Table | None = None
    links: pa.Table | None = None


def read_raw(source: MovieLensSource, fmt: str) -> RawTables:
    """Read every file of one release in the given format ('100k', '1m', '10m' or 'csv')."""
    if fmt == "100k":
        return RawTables(
            ratings=_read_delimited(source, "u.data", "\t", ["user", "item", "rating", "ts"], RATINGS_TYPES),
            movies=_read_100k_items(source),
            users=_read_delimited(source, "u.user", "|", ["user", "", "", "", ""], {"user": pa.int64()}, text=True)
            if source.has("u.user")
            else None,
        )
    if fmt in ("1m", "10m"):
        return RawTables(
            ratings=_read_delimited(
                source, "ratings.dat", ":", ["user", "", "item", "", "rating", "", "ts"], RATINGS_TYPES
            ),
            movies=_read_dat_movies(source),
            users=_cast(_match_lines(source, "users.dat", r"^(?P<user>\d+)::"), {"user": pa.int64()})
            if source.has("users.dat")
            else None,
            tags=_cast(
                _match_lines(source, "tags.dat", r"^(?P<user>\d+)::(?P<item>\d+)::(?P<tag>.*)::(?P<ts>\d+)$"),
                {"user": pa.int64(), "item": pa.int64(), "tag": pa.string(), "ts": pa.int64()},
            )
            if source.has("tags.dat")
            else None,
        )
    if fmt == "csv":
        return RawTables(
            ratings=_read_csv(
                source,
                "ratings.csv",
                {"userId": "user", "movieId": "item", "rating": "rating", "timestamp": "ts"},
                RATINGS_TYPES,
                text=False,
            ),
            movies=_movies_from_text(
                _read_csv(
                    source,
                    "movies.csv",
                    {"movieId": "item", "title": "title", "genres": "genres"},
                    {"item": pa.int64(), "title": pa.string(), "genres": pa.string()},
                )
            ),
            tags=_read_csv(
                source,
                "tags.csv",
                {"userId": "user", "movieId": "item", "tag": "tag", "timestamp": "ts"},
                {"user": pa.int64(), "item": pa.int64(), "tag": pa.string(), "ts": pa.int64()},
            )
            if source.has("tags.csv")
            else None,
            links=_read_csv(
                source,
                "links.csv",
                {"movieId": "item", "imdbId": "imdb_id", "tmdbId": "tmdb_id"},
                {"item": pa.int64(), "imdb_id": pa.string(), "tmdb_id": pa.string()},
            )
            if source.has("links.csv")
            else None,
        )
    raise ValueError(f"unknown MovieLens format {fmt!r}")


def _utf8(data: bytes) -> bytes:
    """The bytes as UTF-8: older releases are latin-1 (a file that is not valid UTF-8 is read as latin-1)."""
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("latin-1").encode("utf-8")


def _input(source: MovieLensSource, name: str, text: bool):
    # Text files are small: read whole and re-encoded. Big numeric files are streamed (from the zip, too).
    return pa.BufferReader(_utf8(source.read_bytes(name))) if text else source.open(name)


def _read_delimited(
    source: MovieLensSource,
    name: str,
    delimiter: str,
    names: list[str],
    types: dict[str, pa.DataType],
    text: bool = False,
) -> pa.Table:
    """A header-less delimited file; columns named '' are read (for their count) and dropped."""
    column_names = [n or f"_skip{i}" for i, n in enumerate(names)]
    wanted = [n for n in names if n]
    stream = _input(source, name, text)
    try:
        table = pacsv.read_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=column_names, block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=wanted),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(source.label(name), f"cannot be read: {exc}") from None
    finally:
        stream.close()
    return table


def _read_csv(
    source: MovieLensSource,
    name: str,
    rename: dict[str, str],
    types: dict[str, pa.DataType],
    text: bool = True,
) -> pa.Table:
    """A CSV file with a header; `rename` maps its column names to the raw names (and lists the needed ones)."""
    stream = _input(source, name, text)
    try:
        table = pacsv.read_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(newlines_in_values=text),
            convert_options=pacsv.ConvertOptions(
                column_types={src: types[dst] for src, dst in rename.items()}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(source.label(name), f"cannot be read: {exc}") from None
    finally:
        stream.close()
    missing = [c for c in rename if c not in table.column_names]
    if missing:
        raise DataError(source.label(name), f"missing column(s) {missing}; columns found: {table.column_names}")
    return pa.table({dst: table.column(src) for src, dst in rename.items()})


def _read_lines(source: MovieLensSource, name: str) -> pa.Array:
    """Every non-empty line of a text file as one string array."""
    try:
        table = pacsv.read_csv(
            pa.BufferReader(_utf8(source.read_bytes(name))),
            read_options=pacsv.ReadOptions(column_names=["line"], block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(
                delimiter="\x1f", quote_char=False, double_quote=False, escape_char=False, ignore_empty_lines=True
            ),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(source.label(name), f"cannot be read: {exc}") from None
    return table.column("line").combine_chunks()


def _match_lines(source: MovieLensSource, name: str, pattern: str) -> pa.Table:
    """Split every line with one regular expression (named groups become columns); a line that does not
    match is a DataError naming its line number."""
    lines = _read_lines(source, name)
    parts = pc.extract_regex(lines, pattern=pattern)
    if parts.null_count:
        bad = pc.index(pc.is_null(parts), True).as_py()
        raise DataError(source.label(name), f"line {bad + 1}: not in the expected format: {lines[bad].as_py()!r}")
    return pa.Table.from_struct_array(parts)


def _cast(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({name: table.column(name).cast(t) for name, t in types.items()})


def _movies_from_text(table: pa.Table) -> pa.Table:
    """item, title, genres as one '|'-joined string → the raw movies layout."""
    return pa.table(
        {
            "item": table.column("item"),
            "title": table.column("title"),
            "genres": pc.split_pattern(table.column("genres"), pattern="|"),
            "release": pa.nulls(table.num_rows, pa.string()),
        }
    )


def _read_dat_movies(source: MovieLensSource) -> pa.Table:
    table = _match_lines(source, "movies.dat", r"^(?P<item>\d+)::(?P<title>.*)::(?P<genres>[^:]*)$")
    return _movies_from_text(_cast(table, {"item": pa.int64(), "title": pa.string(), "genres": pa.string()}))


def _read_100k_items(source: MovieLensSource) -> pa.Table:
    genres = _100k_genre_names(source)
    flags = [f"g{i}" for i in range(len(genres))]
    names = ["item", "title", "release", "", "", *flags]
    types = {"item": pa.int64(), "title": pa.string(), "release": pa.string()} | {f: pa.int8() for f in flags}
    table = _read_delimited(source, "u.item", "|", names, types, text=True)
    matrix = np.column_stack([table.column(f).fill_null(0).to_numpy() for f in flags]) == 1
    matrix[:, [i for i, g in enumerate(genres) if g == "unknown"]] = False  # "unknown" means no genre
    rows, cols = np.nonzero(matrix)  # row-major: genres of row 0, then row 1 ...
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=table.num_rows))]).astype(np.int32)
    genre_lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(genres, pa.string()).take(pa.array(cols)))
    return pa.table(
        {
            "item": table.column("item"),
            "title": table.column("title"),
            "genres": genre_lists,
            "release": table.column("release"),
        }
    )


def _100k_genre_names(source: MovieLensSource) -> list[str]:
    if not source.has("u.genre"):
        return list(ML100K_GENRES)
    types = {"genre": pa.string(), "index": pa.int64()}
    table = _read_delimited(source, "u.genre", "|", ["genre", "index"], types, text=True)
    order = pc.sort_indices(table.column("index"))
    return table.column("genre").take(order).to_pylist()
