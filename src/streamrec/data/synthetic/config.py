"""The knobs of a synthetic world: the fixed vocabularies, the size presets, and the seeded random streams.

Event volume follows from the flags as

    events ≈ sessions × ~14 (a session: ~12 impressions, and often a play with its progress/complete events)
    sessions ≈ Σ_users Σ_days_after_signup activity × activity_u × weekday_factor(day)

where activity_u is the user's lognormal activity level (mean 1). `events` (a target total) overrides
`activity`: the generator solves the formula above for it and re-steers it after every simulated day from the
events actually produced, so the total lands within a few percent of the target.
"""

from __future__ import annotations

import zlib
from datetime import date
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from streamrec.data.synthetic.taste import ResponseParams

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Family", "Fantasy",
    "History", "Horror", "Kids", "Music", "Mystery", "Romance", "Sci-Fi", "Thriller", "Reality",
)  # fmt: skip
GENRE_WEIGHTS: tuple[float, ...] = (
    0.09, 0.05, 0.04, 0.12, 0.06, 0.06, 0.14, 0.04, 0.04, 0.02, 0.05, 0.04, 0.02, 0.04, 0.06, 0.05, 0.08, 0.03,
)  # fmt: skip
KIDS_GENRES: tuple[str, ...] = ("Kids", "Animation", "Family")

REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "BR", "IN")
REGION_WEIGHTS: tuple[float, ...] = (0.34, 0.12, 0.10, 0.09, 0.15, 0.20)
REGION_UTC_OFFSET_H: tuple[float, ...] = (-5.0, 0.0, 1.0, 1.0, -3.0, 5.5)
REGION_LANGUAGE: tuple[str, ...] = ("en", "en", "de", "fr", "pt", "hi")
REGION_AVAILABILITY: tuple[float, ...] = (0.85, 0.7, 0.6, 0.6, 0.55, 0.5)  # share of the catalog licensed there

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "pt", "hi", "es", "ja", "ko")
LANGUAGE_WEIGHTS: tuple[float, ...] = (0.55, 0.06, 0.07, 0.05, 0.08, 0.08, 0.06, 0.05)

DEVICES: tuple[str, ...] = ("tv", "mobile", "web", "tablet")
DEVICE_WEIGHTS: tuple[float, ...] = (0.45, 0.30, 0.15, 0.10)

# Homepage rows, in page order, and how many slots of each a viewer sees.
ROWS: tuple[str, ...] = ("Continue Watching", "Top Picks", "Trending Now", "New Releases")
ROW_VISIBLE: tuple[int, ...] = (4, 8, 8, 6)
SEARCH_ROW = "Search"  # organic plays: not a row, no request_id; named only in summaries

# Local-time share of sessions by hour (evening peak) and by weekday (Monday first; weekend boost).
HOUR_WEIGHTS: tuple[float, ...] = (
    2.0, 1.0, 0.5, 0.3, 0.2, 0.3, 0.8, 1.5, 1.8, 1.8, 1.8, 2.0,
    2.6, 2.6, 2.4, 2.5, 3.0, 3.8, 5.2, 7.5, 9.0, 8.6, 6.4, 3.8,
)  # fmt: skip
WEEKDAY_WEIGHTS: tuple[float, ...] = (0.90, 0.88, 0.90, 0.95, 1.10, 1.30, 1.22)

EVENTS_PER_SESSION = 14.0  # measured on the default response model; only the first guess (see WorldSimulator._steer)

Size = Literal["tiny", "small", "medium", "ml20m"]
SIZE_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"users": 200, "titles": 300, "days": 14, "events": 20_000},
    "small": {"users": 2_000, "titles": 2_000, "days": 30, "events": 200_000},
    "medium": {"users": 20_000, "titles": 8_000, "days": 60, "events": 2_000_000},
    "ml20m": {"users": 140_000, "titles": 27_000, "days": 90, "events": 20_000_000},
}


class WorldConfig(BaseModel, extra="forbid"):
    """Everything that decides a synthetic world: same config (and seed) → byte-identical data set."""

    seed: int = Field(0, ge=0, description="root of every random stream")
    users: int = Field(200, ge=1, description="number of profiles")
    titles: int = Field(300, ge=10, description="number of titles (movies and series)")
    days: int = Field(14, ge=1, le=3650, description="length of the simulated period in days")
    start: date = Field(date(2024, 1, 1), description="first simulated day (UTC midnight)")
    events: int | None = Field(None, ge=0, description="approximate total events; when set, overrides `activity`")
    activity: float = Field(0.5, gt=0, description="mean sessions per user per day (before weekday factors)")
    factor_dim: int = Field(16, ge=2, le=256, description="dimension of the latent taste vectors")
    series_share: float = Field(0.2, ge=0, le=1, description="share of titles that are series")
    new_release_share: float = Field(0.1, ge=0, le=1, description="share of titles released during the period")
    new_user_share: float = Field(0.1, ge=0, le=1, description="share of users who sign up during the period")
    kids_share: float = Field(0.12, ge=0, le=1, description="share of profiles with a kids' maturity limit")
    zipf_exponent: float = Field(1.0, ge=0, description="exponent of the titles' Zipf base popularity")
    activity_sigma: float = Field(1.0, ge=0, description="sigma of the users' lognormal activity levels")
    max_sessions_per_day: int = Field(6, ge=1, le=24, description="cap on one user's sessions in one day")
    segments: int = Field(0, ge=0, description="taste segments of the incumbent (0: one per 400 users, 40..400)")
    incumbent_noise: float = Field(0.6, ge=0, description="noise of the incumbent's view of a user's taste")
    response: ResponseParams = Field(default_factory=ResponseParams, description="the viewers' response model")

    @classmethod
    def preset(cls, size: str, **overrides: object) -> WorldConfig:
        """A preset size with explicit overrides winning.

        When `users` or `days` is overridden and `events` is not, the preset's event target scales with
        users × days, so the activity per user stays that of the preset. An explicit `activity` (without
        `events`) replaces the preset's event target. None values count as not given.
        """
        if size not in SIZE_PRESETS:
            raise ValueError(f"unknown size '{size}', expected one of {', '.join(SIZE_PRESETS)}")
        base: dict[str, object] = dict(SIZE_PRESETS[size])
        given = {k: v for k, v in overrides.items() if v is not None}
        if "activity" in given and "events" not in given:
            base["events"] = None
        elif "events" not in given:
            preset = SIZE_PRESETS[size]
            ratio = given.get("users", preset["users"]) * given.get("days", preset["days"])  # type: ignore[operator]
            base["events"] = round(preset["events"] * ratio / (preset["users"] * preset["days"]))
        return cls(**{**base, **given})

    @property
    def start_us(self) -> int:
        """The first day's midnight, UTC, in microseconds since the epoch."""
        return int(np.datetime64(self.start, "us").astype(np.int64))

    @property
    def end_us(self) -> int:
        return self.start_us + self.days * DAY_US


DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600 * 1_000_000
SECOND_US = 1_000_000


def rng_for(seed: int, *keys: int | str) -> np.random.Generator:
    """An independent PCG64 stream for (seed, *keys): e.g. rng_for(seed, "events", day)."""
    words = [seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def index_of(names: tuple[str, ...], values: tuple[str, ...]) -> np.ndarray:
    """Positions of `values` in `names` (int8)."""
    return np.array([names.index(v) for v in values], dtype=np.int8)
