"""Profiles of a synthetic world: region, signup time, maturity limit, latent taste, genre affinity,
heavy-tailed (lognormal) activity and preferred device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.data.synthetic.config import (
    DAY_US,
    DEVICE_WEIGHTS,
    GENRE_WEIGHTS,
    GENRES,
    KIDS_GENRES,
    LANGUAGES,
    REGION_LANGUAGE,
    REGION_WEIGHTS,
    REGIONS,
    WorldConfig,
    rng_for,
)


@dataclass
class Users:
    """Profiles by index (user u ↔ user_ids[u])."""

    user_ids: np.ndarray  # [U] str
    region: np.ndarray  # [U] int8 index into REGIONS
    language: np.ndarray  # [U] int8 index into LANGUAGES (the region's language)
    signup_us: np.ndarray  # [U] int64 µs since the epoch, UTC
    maturity: np.ndarray  # [U] int8 index into MATURITY_LEVELS (the limit)
    factors: np.ndarray  # [U, d] float32 (unscaled)
    affinity: np.ndarray  # [U, G] float32 (unscaled, centered)
    activity: np.ndarray  # [U] float64, lognormal with mean 1
    device: np.ndarray  # [U] int8 index into DEVICES

    @property
    def n(self) -> int:
        return len(self.user_ids)

    def table(self) -> pa.Table:
        return pa.table(
            {
                "user_id": pa.array(self.user_ids.tolist(), pa.string()),
                "region": pa.array(REGIONS).take(pa.array(self.region.astype(np.int32))),
                "signup_ts": pa.array(self.signup_us, pa.timestamp("us")),
                "maturity_limit": pa.array(MATURITY_LEVELS).take(pa.array(self.maturity.astype(np.int32))),
            }
        )


def generate_users(config: WorldConfig, embeddings: np.ndarray) -> Users:
    """Draw the profiles; tastes are built around the same genre directions as the titles."""
    rng = rng_for(config.seed, "users")
    n, d, genres = config.users, config.factor_dim, len(GENRES)
    width = max(6, len(str(n - 1)))
    user_ids = np.array([f"u{i:0{width}d}" for i in range(n)])

    region = rng.choice(len(REGIONS), size=n, p=np.asarray(REGION_WEIGHTS) / sum(REGION_WEIGHTS)).astype(np.int8)
    language = np.array([LANGUAGES.index(REGION_LANGUAGE[r]) for r in range(len(REGIONS))], dtype=np.int8)[region]

    k = config.kids_share
    adult = max(0.0, 1.0 - k - 0.15)
    levels = np.array([0.4 * k, 0.6 * k, 0.07, 0.08, adult])
    maturity = rng.choice(len(MATURITY_LEVELS), size=n, p=levels / levels.sum()).astype(np.int8)
    kids = maturity <= MATURITY_LEVELS.index("7+")

    # favourite genres: kids pick among kids' genres, everyone else by genre weight
    weights = np.tile(np.log(np.asarray(GENRE_WEIGHTS)), (n, 1))
    kids_cols = [GENRES.index(g) for g in KIDS_GENRES]
    weights[kids] = -np.inf
    weights[np.ix_(kids, kids_cols)] = 0.0
    keys = weights + rng.gumbel(size=(n, genres))
    order = np.argsort(-keys, axis=1, kind="stable")
    count = rng.choice(np.array([1, 2, 3]), size=n, p=[0.35, 0.45, 0.20])
    favourite = np.zeros((n, genres), dtype=np.float32)
    for j in range(3):
        favourite[np.arange(n), order[:, j]] += (count > j).astype(np.float32)
    favourite /= count[:, None]

    factors = favourite @ embeddings * 1.5 + rng.standard_normal((n, d)).astype(np.float32) * (0.8 / np.sqrt(d))
    affinity = (factors @ embeddings.T) * 2.0 + favourite * 1.5 + rng.normal(0, 0.3, (n, genres)).astype(np.float32)
    affinity[kids, GENRES.index("Horror")] -= 2.0
    affinity -= affinity.mean()

    sigma = config.activity_sigma
    activity = rng.lognormal(-0.5 * sigma**2, sigma, n)
    activity /= activity.mean()

    new = rng.random(n) < config.new_user_share
    tenure_days = np.minimum(rng.exponential(600.0, n), 10 * 365.0)
    before = config.start_us - (tenure_days * DAY_US).astype(np.int64) - rng.integers(1, DAY_US, n)
    during = config.start_us + rng.integers(0, config.days * DAY_US, n)
    signup_us = np.where(new, during, before).astype(np.int64)

    device = rng.choice(len(DEVICE_WEIGHTS), size=n, p=np.asarray(DEVICE_WEIGHTS)).astype(np.int8)
    return Users(
        user_ids=user_ids,
        region=region,
        language=language,
        signup_us=signup_us,
        maturity=maturity,
        factors=factors.astype(np.float32),
        affinity=affinity.astype(np.float32),
        activity=activity,
        device=device,
    )
