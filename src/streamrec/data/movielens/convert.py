"""Raw MovieLens tables → canonical streamrec tables (catalog, users, tags, events), in DuckDB SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import duckdb
import numpy as np
import pyarrow as pa

from streamrec.data.catalog import UNKNOWN, conform
from streamrec.data.dataset import conform_events
from streamrec.data.movielens.readers import RawTables

ProgressCallback = Callable[[int, int], None]

# "Toy Story (1995)" → name "Toy Story", year "1995"; series-style ranges "(1994-1998)" keep the first year.
_TITLE_YEAR = r"^(.*?)\s*\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$"
_NO_GENRES = ("", "(no genres listed)")


class Converter:
    """Holds one DuckDB connection with the raw tables registered; each method returns one canonical table."""

    def __init__(self, raw: RawTables):
        self.raw = raw
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        ratings = raw.ratings
        # One int64 sort key: time, then file order (MovieLens files are sorted by user, then movie), so the
        # event order is deterministic and the sort is on a single number (much faster than a 3-key sort).
        ts = ratings.column("ts").to_numpy()
        span = int(ts.max() - ts.min()) if len(ts) else 0
        if span < 2**31 and len(ts) < 2**32:
            key = ((ts - (ts.min() if len(ts) else 0)) << 32) | np.arange(len(ts), dtype=np.int64)
            self._order = "k"
        else:  # not seen in MovieLens; fall back to the plain multi-key sort
            key = np.arange(len(ts), dtype=np.int64)
            self._order = "ts, k"
        self.con.register("ratings", ratings.append_column("k", pa.array(key)))
        self.con.register("movies", raw.movies)
        empty_ids = pa.table({"user": pa.array([], pa.int64())})
        self.con.register("users_file", raw.users if raw.users is not None else empty_ids)
        empty_tags = pa.table(
            {
                "user": pa.array([], pa.int64()),
                "item": pa.array([], pa.int64()),
                "tag": pa.array([], pa.string()),
                "ts": pa.array([], pa.int64()),
            }
        )
        self.con.register("tags_raw", raw.tags if raw.tags is not None else empty_tags)

    def close(self) -> None:
        self.con.close()

    def titles(self) -> tuple[pa.Table, int]:
        """The catalog, plus the number of titles rated or tagged but absent from the movie list (added
        with a null title so every event's title is in the catalog)."""
        no_genres = ", ".join(f"'{g}'" for g in _NO_GENRES)
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE unlisted AS SELECT DISTINCT item FROM "
            "(SELECT item FROM ratings UNION ALL SELECT item FROM tags_raw) WHERE item NOT IN (SELECT item FROM movies)"
        )
        sql = f"""
        WITH parsed AS (
            SELECT item, title, genres, release,
                   regexp_extract(title, '{_TITLE_YEAR}', ['name', 'year']) AS p
            FROM movies
        ), listed AS (
            SELECT item,
                   CASE WHEN p.year <> '' THEN p.name ELSE trim(title) END AS title,
                   list_filter(coalesce(genres, []::VARCHAR[]), lambda g: g NOT IN ({no_genres})) AS genres,
                   coalesce(CAST(try_strptime(release, '%d-%b-%Y') AS DATE),
                            CASE WHEN p.year <> '' THEN make_date(CAST(p.year AS INTEGER), 1, 1) END) AS release_date
            FROM parsed
        )
        SELECT CAST(item AS VARCHAR) AS item_id, title, 'movie' AS kind, genres, release_date FROM (
            SELECT * FROM listed
            UNION ALL
            SELECT item, NULL, []::VARCHAR[], NULL FROM unlisted
        ) ORDER BY item
        """
        table = self.con.sql(sql).to_arrow_table()
        (unlisted,) = self.con.sql("SELECT count(*) FROM unlisted").fetchall()[0]
        return conform(table, "titles", source="movielens titles"), int(unlisted)

    def users(self) -> pa.Table:
        """Users from the users file where there is one, plus every user who rated; signup = first rating."""
        sql = f"""
        WITH first AS (SELECT user, min(ts) AS first_ts FROM ratings GROUP BY user),
             ids AS (SELECT user FROM users_file UNION SELECT user FROM first)
        SELECT CAST(ids.user AS VARCHAR) AS user_id, '{UNKNOWN}' AS region,
               make_timestamp(first.first_ts * 1000000) AS signup_ts
        FROM ids LEFT JOIN first USING (user) ORDER BY ids.user
        """
        return conform(self.con.sql(sql).to_arrow_table(), "users", source="movielens users")

    def tags(self) -> pa.Table:
        sql = """
        SELECT CAST(user AS VARCHAR) AS user_id, CAST(item AS VARCHAR) AS item_id, tag,
               make_timestamp(ts * 1000000) AS ts
        FROM tags_raw ORDER BY ts, user, item, tag
        """
        return conform(self.con.sql(sql).to_arrow_table(), "tags", source="movielens tags")

    def events(self, batch_rows: int = 1_000_000) -> Iterator[pa.Table]:
        """Rating events in time order, as canonical event batches."""
        sql = f"""
        SELECT concat('ml:', user, ':', item, ':', ts) AS event_id,
               CAST(user AS VARCHAR) AS user_id, CAST(item AS VARCHAR) AS item_id,
               'rating' AS type, make_timestamp(ts * 1000000) AS ts, rating
        FROM (SELECT * FROM ratings ORDER BY {self._order})
        """
        reader = self.con.sql(sql).to_arrow_reader(batch_rows)
        for batch in reader:
            yield conform_events(pa.Table.from_batches([batch]), source="movielens ratings")

    @property
    def n_events(self) -> int:
        return self.raw.ratings.num_rows


def events_with_progress(
    batches: Iterator[pa.Table], total: int, on_progress: ProgressCallback | None
) -> Iterator[pa.Table]:
    """Pass batches through, reporting (rows done, total) after each."""
    done = 0
    if on_progress:
        on_progress(0, total)
    for batch in batches:
        done += batch.num_rows
        yield batch
        if on_progress:
            on_progress(done, total)
