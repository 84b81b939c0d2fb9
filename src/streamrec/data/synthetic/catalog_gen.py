"""Titles of a synthetic world: kinds, genres, release dates, maturity, languages, latent factors, Zipf
popularity, and per-region availability windows (aligned to UTC midnights)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.data.synthetic.config import (
    DAY_US,
    GENRE_WEIGHTS,
    GENRES,
    LANGUAGE_WEIGHTS,
    LANGUAGES,
    REGION_AVAILABILITY,
    REGION_LANGUAGE,
    REGIONS,
    WorldConfig,
    rng_for,
)

NEVER = np.iinfo(np.int64).max  # window start of a title never available in a region
OPEN = np.iinfo(np.int64).max  # window end of an open-ended window

_ADJECTIVES = (
    "Silent", "Broken", "Hidden", "Last", "Golden", "Dark", "Lost", "Wild", "Crimson", "Endless", "Secret", "Frozen",
    "Burning", "Distant", "Hollow", "Electric", "Midnight", "Savage", "Quiet", "Iron", "Paper", "Glass", "Little",
)  # fmt: skip
_NOUNS = (
    "River", "Empire", "Garden", "Signal", "Kingdom", "Harbor", "Frontier", "Mirror", "Orchard", "Station", "Storm",
    "Legacy", "Circuit", "Horizon", "Voyage", "Archive", "Summit", "Canyon", "Lantern", "Tide", "Detective", "Island",
)  # fmt: skip

# Maturity probabilities (over MATURITY_LEVELS) by genre category: kids, family/animation, horror, other.
_MATURITY_BY_CATEGORY = np.array(
    [
        [0.60, 0.40, 0.00, 0.00, 0.00],
        [0.30, 0.40, 0.30, 0.00, 0.00],
        [0.00, 0.00, 0.00, 0.40, 0.60],
        [0.04, 0.08, 0.38, 0.30, 0.20],
    ]
)


@dataclass
class Catalog:
    """Titles by index (item i ↔ item_ids[i]); windows are [start, end) in microseconds, per region row."""

    item_ids: np.ndarray  # [I] str
    names: list[str]
    series: np.ndarray  # [I] bool
    genre_order: np.ndarray  # [I, G] genre indices, the title's own first
    genre_count: np.ndarray  # [I] 1..3
    genre_mask: np.ndarray  # [I, G] bool
    release_day: np.ndarray  # [I] int32, days since start
    runtime_min: np.ndarray  # [I] int32
    maturity: np.ndarray  # [I] int8 index into MATURITY_LEVELS
    language: np.ndarray  # [I] int8 index into LANGUAGES
    seasons: np.ndarray  # [I] int32, 0 for movies
    episodes: np.ndarray  # [I] int32, 0 for movies
    popularity: np.ndarray  # [I] float64, sums to 1
    factors: np.ndarray  # [I, d] float32 (unscaled)
    win_start: np.ndarray  # [R, I] int64 µs, NEVER when not licensed in the region
    win_end: np.ndarray  # [R, I] int64 µs, OPEN when open-ended
    start_us: int

    @property
    def n(self) -> int:
        return len(self.item_ids)

    @property
    def genre_weights(self) -> np.ndarray:
        """[I, G] float32: 1/k on each of a title's k genres."""
        return self.genre_mask.astype(np.float32) / self.genre_count[:, None].astype(np.float32)

    def titles_table(self) -> pa.Table:
        offsets = np.concatenate([[0], np.cumsum(self.genre_count)]).astype(np.int32)
        firsts = self.genre_order[:, :3][np.arange(3)[None, :] < self.genre_count[:, None]]
        genres = pa.ListArray.from_arrays(pa.array(offsets), pa.array(GENRES).take(pa.array(firsts)))
        start_days = int(self.start_us // DAY_US)
        is_series = pa.array(self.series)
        return pa.table(
            {
                "item_id": pa.array(self.item_ids.tolist(), pa.string()),
                "title": pa.array(self.names, pa.string()),
                "kind": pa.array(np.where(self.series, "series", "movie").tolist(), pa.string()),
                "genres": genres,
                "release_date": pa.array((self.release_day.astype(np.int32) + start_days), pa.int32()).cast(
                    pa.date32()
                ),
                "runtime_min": pa.array(self.runtime_min, pa.int32()),
                "maturity": pa.array(MATURITY_LEVELS).take(pa.array(self.maturity.astype(np.int32))),
                "language": pa.array(LANGUAGES).take(pa.array(self.language.astype(np.int32))),
                "seasons": pa.array(self.seasons, pa.int32(), mask=~np.asarray(is_series)),
                "episodes": pa.array(self.episodes, pa.int32(), mask=~np.asarray(is_series)),
            }
        )

    def availability_table(self) -> pa.Table:
        region, item = np.nonzero(self.win_start != NEVER)
        order = np.lexsort((region, item))  # by title, then region
        region, item = region[order], item[order]
        end = self.win_end[region, item]
        return pa.table(
            {
                "item_id": pa.array(self.item_ids[item].tolist(), pa.string()),
                "region": pa.array(REGIONS).take(pa.array(region.astype(np.int32))),
                "start_ts": pa.array(self.win_start[region, item], pa.timestamp("us")),
                "end_ts": pa.array(end, pa.timestamp("us"), mask=end == OPEN),
            }
        )


def genre_embeddings(config: WorldConfig) -> np.ndarray:
    """[G, d] latent directions of the genres: titles and users are built around them."""
    rng = rng_for(config.seed, "genres")
    return (rng.standard_normal((len(GENRES), config.factor_dim)) / np.sqrt(config.factor_dim)).astype(np.float32)


def generate_catalog(config: WorldConfig, embeddings: np.ndarray) -> Catalog:
    """Draw the titles and their availability windows."""
    rng = rng_for(config.seed, "catalog")
    n, d, days = config.titles, config.factor_dim, config.days
    width = max(6, len(str(n - 1)))
    item_ids = np.array([f"t{i:0{width}d}" for i in range(n)])

    # genres: 1-3 per title, weighted sampling without replacement (Gumbel top-k)
    keys = np.log(np.asarray(GENRE_WEIGHTS)) + rng.gumbel(size=(n, len(GENRES)))
    genre_order = np.argsort(-keys, axis=1, kind="stable").astype(np.int16)
    genre_count = rng.choice(np.array([1, 2, 3]), size=n, p=[0.45, 0.40, 0.15]).astype(np.int32)
    has = np.zeros((n, len(GENRES)), dtype=bool)
    for k in range(3):
        has[np.arange(n), genre_order[:, k]] |= genre_count > k

    g = {name: i for i, name in enumerate(GENRES)}
    category = np.full(n, 3)
    category[has[:, g["Horror"]]] = 2
    category[has[:, g["Animation"]] | has[:, g["Family"]]] = 1
    category[has[:, g["Kids"]]] = 0
    cum = np.cumsum(_MATURITY_BY_CATEGORY[category], axis=1)
    maturity = (rng.random(n)[:, None] > cum[:, :-1]).sum(axis=1).astype(np.int8)

    series = rng.random(n) < config.series_share
    kids_like = category <= 1
    movie_runtime = np.clip(rng.normal(np.where(kids_like, 88, 108), 18), 70, 200)
    episode_runtime = np.where(
        kids_like, rng.choice(np.array([11, 22, 24]), n), rng.choice(np.array([22, 30, 45, 50, 55, 60]), n)
    )
    runtime_min = np.where(series, episode_runtime, movie_runtime).round().astype(np.int32)
    seasons = np.where(series, np.minimum(rng.geometric(0.5, n), 8), 0).astype(np.int32)
    episodes = (seasons * rng.integers(6, 14, n)).astype(np.int32)

    language = rng.choice(len(LANGUAGES), size=n, p=np.asarray(LANGUAGE_WEIGHTS) / sum(LANGUAGE_WEIGHTS)).astype(
        np.int8
    )

    new = rng.random(n) < config.new_release_share
    back = -(1 + np.floor(rng.exponential(1200.0, n))).clip(max=365 * 50 - 1)
    release_day = np.where(new, rng.integers(0, days, n), back).astype(np.int32)

    rank = rng.permutation(n)
    popularity = (rank + 1.0) ** -config.zipf_exponent
    popularity /= popularity.sum()

    weights = has.astype(np.float32) / genre_count[:, None]
    factors = (weights @ embeddings) * 1.2 + rng.standard_normal((n, d)).astype(np.float32) * (0.7 / np.sqrt(d))

    words = rng.integers(0, [len(_ADJECTIVES), len(_NOUNS)], size=(n, 2))
    years = (np.datetime64(config.start, "D") + release_day).astype("datetime64[Y]").astype(int) + 1970
    names = [
        f"The {_ADJECTIVES[a]} {_NOUNS[b]} ({y})"
        for a, b, y in zip(words[:, 0].tolist(), words[:, 1].tolist(), years.tolist())
    ]

    win_start, win_end = _windows(config, rng, release_day, language, popularity)
    return Catalog(
        item_ids=item_ids,
        names=names,
        series=series,
        genre_order=genre_order,
        genre_count=genre_count,
        genre_mask=has,
        release_day=release_day,
        runtime_min=runtime_min,
        maturity=maturity,
        language=language,
        seasons=seasons,
        episodes=episodes,
        popularity=popularity,
        factors=factors.astype(np.float32),
        win_start=win_start,
        win_end=win_end,
        start_us=config.start_us,
    )


def _windows(
    config: WorldConfig, rng: np.random.Generator, release_day: np.ndarray, language: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per region: whether licensed, window start (>= release) and end (some end during the period)."""
    n, days, regions = len(release_day), config.days, len(REGIONS)
    pop_pct = np.argsort(np.argsort(popularity)) / max(n - 1, 1)
    local = np.array(
        [[LANGUAGES.index(REGION_LANGUAGE[r]) == lang for lang in range(len(LANGUAGES))] for r in range(regions)]
    )
    english = language == LANGUAGES.index("en")
    p = np.asarray(REGION_AVAILABILITY)[:, None] + 0.15 * (pop_pct[None, :] - 0.5)
    p = p + 0.25 * local[:, language] - 0.15 * (~local[:, language] & ~english[None, :])
    licensed = rng.random((regions, n)) < np.clip(p, 0.05, 0.98)
    nowhere = ~licensed.any(axis=0)
    licensed[np.argmax(p + rng.random((regions, n)) * 0.01, axis=0)[nowhere], np.nonzero(nowhere)[0]] = True

    new = release_day >= 0
    lag = np.where(rng.random((regions, n)) < 0.7, 0, rng.integers(1, 31, (regions, n)))
    back_start = np.maximum(release_day[None, :], -rng.integers(0, 3 * 365, (regions, n)))
    arrives = (rng.random((regions, n)) < 0.05) & (days > 1)
    back_start = np.where(arrives, rng.integers(0, max(days, 1), (regions, n)), back_start)
    start_day = np.where(new[None, :], release_day[None, :] + lag, back_start)

    ends = (rng.random((regions, n)) < 0.08) & (start_day < days - 1)
    low = np.maximum(start_day + 1, 1)
    end_day = rng.integers(low, np.maximum(np.maximum(days, start_day + 2), low + 1))
    start_us = config.start_us + start_day.astype(np.int64) * DAY_US
    end_us = config.start_us + end_day.astype(np.int64) * DAY_US
    return np.where(licensed, start_us, NEVER), np.where(licensed & ends, end_us, OPEN)
