"""The service's incumbent recommender in a synthetic world: what each homepage row offers on a given day.

It sees the titles' content exactly but users only through a noisy copy of their taste. Top Picks: a weekly
pool per taste segment (per maturity tier) and region, re-ranked per session by the user's noisy taste,
popularity and a little exploration noise. Trending Now follows last week's plays, New Releases the last 60
days; both per region and maturity tier. Search samples titles by damped popularity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.data.synthetic.catalog_gen import Catalog
from streamrec.data.synthetic.config import DAY_US, WorldConfig, rng_for
from streamrec.data.synthetic.taste import GroundTruth
from streamrec.data.synthetic.users_gen import Users

TOP_PICKS_K = 150  # pool size; a session shows the best few after its personal re-ranking
RETRAIN_DAYS = 7  # the incumbent refreshes its Top Picks lists weekly; availability is re-checked daily
TRENDING_K = 24
NEW_RELEASES_K = 16
NEW_RELEASE_WINDOW_DAYS = 60
EXPLORATION = 0.3  # std of the noise the incumbent adds to its Top Picks scores
POPULARITY_WEIGHT = 0.25  # weight of standardized log popularity in the incumbent's Top Picks score
SEARCH_POP_POWER = 0.5  # search results follow popularity ** this


@dataclass
class DayOffer:
    """What the service can show on one day; lists are title indices, best first, -1 padded."""

    day: int
    day_start_us: int
    avail: np.ndarray  # [R, I] bool: licensed in the region for the whole day and the next
    novelty: np.ndarray  # [I] float32 the incumbent's new-release boost
    top_picks: np.ndarray  # [C, R, K]
    trending: np.ndarray  # [R, M, K]
    new_releases: np.ndarray  # [R, M, K]
    search_cdf: np.ndarray  # [R*M*I] per-group popularity CDFs, group g shifted by +g
    search_ok: np.ndarray  # [R*M] bool: the group has anything to find

    def search(self, region: np.ndarray, maturity: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """[S, size] titles drawn by popularity among those a (region, maturity) viewer may play."""
        n_items = self.avail.shape[1]
        group = region.astype(np.int64) * len(MATURITY_LEVELS) + maturity
        x = group[:, None] + rng.random((len(group), size)) * (1.0 - 1e-9)
        idx = np.searchsorted(self.search_cdf, x, side="right") - group[:, None] * n_items
        return np.clip(idx, 0, n_items - 1)


@dataclass
class Incumbent:
    """Static part of the incumbent: user segments and segment-title scores."""

    segment: np.ndarray  # [U] segment of each user
    segment_tier: np.ndarray  # [C] maturity tier of each segment
    segment_scores: np.ndarray  # [C, I] float32 taste part of the Top Picks score
    noisy_users: np.ndarray  # [U, D] float32 the incumbent's view of each user's taste
    title_vectors: np.ndarray  # [I, D] float32 content vectors (known exactly)
    pop_z: np.ndarray  # [I]
    title_maturity: np.ndarray  # [I]
    release_day: np.ndarray  # [I]
    popularity: np.ndarray  # [I]
    win_start: np.ndarray  # [R, I]
    win_end: np.ndarray  # [R, I]
    start_us: int

    def offer(self, day: int, recent_plays: np.ndarray, previous: DayOffer | None = None) -> DayOffer:
        """The rows' candidate lists for `day`, given per-title plays over the last week.

        Top Picks are recomputed every RETRAIN_DAYS days (else taken from `previous`, minus titles that
        are no longer available), the other rows daily.
        """
        day_start = self.start_us + day * DAY_US
        avail = (self.win_start <= day_start) & (self.win_end >= day_start + 2 * DAY_US)
        age = day - self.release_day
        novelty = np.where(age >= 0, 0.6 * np.exp(-np.maximum(age, 0) / 21.0), 0.0).astype(np.float32)
        tiers = np.arange(len(MATURITY_LEVELS))
        tier_ok = self.title_maturity[None, :] <= tiers[:, None]  # [M, I]

        if previous is None or day % RETRAIN_DAYS == 0:
            scores = self.segment_scores + novelty  # [C, I]
            segment_ok = tier_ok[self.segment_tier]
            top_picks = np.stack(  # one region at a time keeps the peak at [C, I]
                [_top_k(np.where(segment_ok & avail[r], scores, -np.inf), TOP_PICKS_K) for r in range(len(avail))],
                axis=1,
            )
        else:
            top_picks = previous.top_picks
            regions = np.arange(avail.shape[0])[None, :, None]
            top_picks = np.where((top_picks >= 0) & avail[regions, np.maximum(top_picks, 0)], top_picks, -1)

        allowed = avail[:, None, :] & tier_ok[None, :, :]  # [R, M, I]
        trend = (np.log1p(recent_plays) + 0.3 * self.pop_z).astype(np.float32)
        trending = _top_k(np.where(allowed, trend[None, None, :], -np.inf), TRENDING_K)
        recent = (age >= 0) & (age < NEW_RELEASE_WINDOW_DAYS)
        fresh = (0.5 * self.pop_z - age / 30.0).astype(np.float32)
        new_releases = _top_k(np.where(allowed & recent[None, None, :], fresh[None, None, :], -np.inf), NEW_RELEASES_K)

        weights = np.where(allowed, self.popularity[None, None, :] ** SEARCH_POP_POWER, 0.0).reshape(-1, avail.shape[1])
        totals = weights.sum(axis=1)
        cdf = np.cumsum(weights, axis=1) / np.where(totals > 0, totals, 1.0)[:, None]
        cdf[totals <= 0] = 1.0
        cdf[:, -1] = 1.0
        cdf += np.arange(len(cdf))[:, None]
        return DayOffer(day, day_start, avail, novelty, top_picks, trending, new_releases, cdf.ravel(), totals > 0)

    def rerank(
        self, users: np.ndarray, pool: np.ndarray, novelty: np.ndarray, rng: np.random.Generator, chunk: int = 2048
    ) -> np.ndarray:
        """Order each session's pool [S, K] (-1 padded) by the incumbent's personal score, best first."""
        out = np.empty_like(pool)
        for lo in range(0, len(users), chunk):
            part = pool[lo : lo + chunk]
            safe = np.maximum(part, 0)
            score = np.matmul(self.title_vectors[safe], self.noisy_users[users[lo : lo + chunk], :, None])[..., 0]
            score += POPULARITY_WEIGHT * self.pop_z[safe] + novelty[safe] + rng.normal(0.0, EXPLORATION, part.shape)
            score = np.where(part >= 0, score, -np.inf)
            out[lo : lo + chunk] = np.take_along_axis(part, np.argsort(-score, axis=1, kind="stable"), axis=1)
        return out


def build_incumbent(config: WorldConfig, catalog: Catalog, users: Users, truth: GroundTruth) -> Incumbent:
    """Segment users by a noisy copy of their taste (per maturity tier) and score titles per segment."""
    rng = rng_for(config.seed, "incumbent")
    user_vec, title_vec = truth.user_vectors, truth.title_vectors
    noisy = user_vec + rng.standard_normal(user_vec.shape).astype(np.float32) * (
        config.incumbent_noise * user_vec.std(axis=0, keepdims=True)
    )
    tiers = len(MATURITY_LEVELS)
    counts = np.bincount(users.maturity, minlength=tiers)
    share = counts / max(counts.sum(), 1)
    segments = config.segments or int(np.clip(users.n // 400, 40, 400))
    per_tier = np.where(counts > 0, np.maximum(2, np.round(share * segments)).astype(int), 0)
    per_tier = np.minimum(per_tier, counts)

    centroids, segment_tier = [], []
    segment = np.zeros(users.n, dtype=np.int64)
    for tier in range(tiers):
        members = np.nonzero(users.maturity == tier)[0]
        if per_tier[tier] == 0:
            continue
        vecs = noisy[members]
        cent = vecs[rng.choice(len(members), per_tier[tier], replace=False)]
        for _ in range(3):  # a few Lloyd steps on cosine similarity
            assign = _nearest(vecs, cent)
            sums = np.zeros_like(cent)
            np.add.at(sums, assign, vecs)
            sizes = np.bincount(assign, minlength=len(cent))
            cent = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], cent)
        segment[members] = _nearest(vecs, cent) + len(segment_tier)
        centroids.append(cent)
        segment_tier.extend([tier] * len(cent))
    cent = np.vstack(centroids)
    scores = cent @ title_vec.T + POPULARITY_WEIGHT * truth.pop_z[None, :]
    return Incumbent(
        segment=segment,
        segment_tier=np.asarray(segment_tier),
        segment_scores=scores.astype(np.float32),
        noisy_users=noisy.astype(np.float32),
        title_vectors=title_vec,
        pop_z=truth.pop_z,
        title_maturity=catalog.maturity,
        release_day=catalog.release_day,
        popularity=catalog.popularity,
        win_start=catalog.win_start,
        win_end=catalog.win_end,
        start_us=config.start_us,
    )


def _nearest(vecs: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(centroids, axis=1)
    return np.argmax(vecs @ (centroids / np.where(norms > 0, norms, 1.0)[:, None]).T, axis=1)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best along the last axis, best first, -1 where the score is -inf."""
    k = min(k, scores.shape[-1])
    part = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
    vals = np.take_along_axis(scores, part, axis=-1)
    order = np.argsort(-vals, axis=-1, kind="stable")
    idx = np.take_along_axis(part, order, axis=-1)
    vals = np.take_along_axis(vals, order, axis=-1)
    return np.where(np.isfinite(vals), idx, -1).astype(np.int32)
