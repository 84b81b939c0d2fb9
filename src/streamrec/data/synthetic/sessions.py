"""Sessions of a synthetic world: who comes when (daily and weekly seasonality, heavy-tailed activity), and the
homepage each session is shown (rows of the incumbent's lists, deduplicated, watched titles filtered)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from streamrec.data.synthetic.config import (
    DAY_US,
    EVENTS_PER_SESSION,
    HOUR_US,
    HOUR_WEIGHTS,
    REGION_UTC_OFFSET_H,
    ROW_VISIBLE,
    WEEKDAY_WEIGHTS,
    WorldConfig,
)
from streamrec.data.synthetic.users_gen import Users

if TYPE_CHECKING:
    from streamrec.data.synthetic.incumbent import DayOffer, Incumbent
    from streamrec.data.synthetic.state import WorldState

CW_SLOTS = ROW_VISIBLE[0]
ROWS_SEEN_P = (0.30, 0.35, 0.22, 0.13)  # how many rows down the page a viewer looks


def day_weights(config: WorldConfig) -> np.ndarray:
    """[days] weekday factor of each simulated day (mean 1 over a week)."""
    weekday = np.asarray(WEEKDAY_WEIGHTS) / np.mean(WEEKDAY_WEIGHTS)
    first = config.start.weekday()
    return weekday[(first + np.arange(config.days)) % 7]


def daily_exposure(config: WorldConfig, users: Users) -> np.ndarray:
    """[days] expected sessions per day at activity scale 1: weekday factor × activity of users signed up."""
    first_day = np.clip((users.signup_us - config.start_us) // DAY_US, 0, config.days)
    joined = np.cumsum(np.bincount(first_day, weights=users.activity, minlength=config.days + 1))[: config.days]
    return day_weights(config) * joined


def activity_scale(config: WorldConfig, users: Users) -> float:
    """Sessions per user-day multiplier: `activity`, or solved from the `events` target (see config's doc)."""
    if config.events is None:
        return config.activity
    return (config.events / EVENTS_PER_SESSION) / max(float(daily_exposure(config, users).sum()), 1e-9)


def draw_sessions(
    config: WorldConfig, users: Users, day: int, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, planned start µs, round) of the day's sessions, sorted by user then start; round = 0, 1, ... per user."""
    day_start = config.start_us + day * DAY_US
    lam = scale * users.activity * day_weights(config)[day]
    counts = np.minimum(rng.poisson(lam), config.max_sessions_per_day)
    counts[users.signup_us >= day_start + DAY_US] = 0
    user = np.repeat(np.arange(users.n), counts)
    hours = np.asarray(HOUR_WEIGHTS) / sum(HOUR_WEIGHTS)
    local_h = rng.choice(24, size=len(user), p=hours) + rng.random(len(user))
    utc_h = np.mod(local_h - np.asarray(REGION_UTC_OFFSET_H)[users.region[user]], 24.0)
    start = day_start + (utc_h * HOUR_US).astype(np.int64)
    order = np.lexsort((start, user))
    user, start = user[order], start[order]
    first = np.searchsorted(user, user, side="left")
    return user, start, np.arange(len(user)) - first


@dataclass
class Page:
    """The impressions of a batch of sessions, compacted per session (slot j; -1 = empty)."""

    items: np.ndarray  # [S, W] title index
    row: np.ndarray  # [S, W] row index into ROWS
    position: np.ndarray  # [S, W] slot within its row
    row_rank: np.ndarray  # [S, W] which row down the page (0 = first seen)


def build_pages(
    offer: DayOffer,
    incumbent: Incumbent,
    state: WorldState,
    users: Users,
    sess_user: np.ndarray,
    rng: np.random.Generator,
) -> Page:
    """The homepage of each session: Continue Watching, Top Picks, Trending Now, New Releases (as present),
    titles deduplicated across rows, finished titles left out, and only the rows and slots the viewer saw."""
    n_items = offer.avail.shape[1]
    s = len(sess_user)
    region = users.region[sess_user].astype(np.int64)
    maturity = users.maturity[sess_user].astype(np.int64)

    cw = state.continue_items(sess_user, CW_SLOTS)
    cw = np.where((cw >= 0) & offer.avail[region[:, None], np.maximum(cw, 0)], cw, -1)
    picks = incumbent.rerank(sess_user, offer.top_picks[incumbent.segment[sess_user], region], offer.novelty, rng)
    blocks = [cw, picks, offer.trending[region, maturity], offer.new_releases[region, maturity]]
    cand = np.hstack(blocks).astype(np.int64)
    block = np.concatenate([np.full(b.shape[1], i) for i, b in enumerate(blocks)])
    bounds = np.concatenate([[0], np.cumsum([b.shape[1] for b in blocks])])

    valid = cand >= 0
    codes = sess_user[:, None].astype(np.int64) * n_items + np.maximum(cand, 0)
    valid[:, CW_SLOTS:] &= ~state.is_finished(codes[:, CW_SLOTS:])
    # dedupe across rows: the first occurrence (higher row) wins
    keyed = np.where(valid, cand, n_items + np.arange(cand.shape[1])[None, :])
    order = np.argsort(keyed, axis=1, kind="stable")
    ranked = np.take_along_axis(keyed, order, axis=1)
    dup_sorted = np.zeros_like(valid)
    dup_sorted[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
    dup = np.zeros_like(valid)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    valid &= ~dup

    csum = np.cumsum(valid, axis=1)
    before = np.hstack([np.zeros((s, 1), dtype=csum.dtype), csum[:, bounds[1:-1] - 1]])  # [S, blocks]
    rank = csum - 1 - before[:, block]
    keep = valid & (rank < np.asarray(ROW_VISIBLE)[block][None, :])
    present = np.add.reduceat(keep, bounds[:-1], axis=1) > 0 if s else np.zeros((0, len(blocks)), dtype=bool)
    ordinal = np.cumsum(present, axis=1) - 1
    seen = rng.choice(len(ROWS_SEEN_P), size=s, p=ROWS_SEEN_P) + 1
    keep &= ordinal[:, block] < seen[:, None]

    rows_i, cols = np.nonzero(keep)
    counts = np.bincount(rows_i, minlength=s)
    width = int(counts.max()) if s else 0
    slot = np.arange(len(rows_i)) - (np.cumsum(counts) - counts)[rows_i]
    page = Page(*(np.full((s, width), -1, dtype=np.int64) for _ in range(4)))
    page.items[rows_i, slot] = cand[rows_i, cols]
    page.row[rows_i, slot] = block[cols]
    page.position[rows_i, slot] = rank[rows_i, cols]
    page.row_rank[rows_i, slot] = ordinal[rows_i, block[cols]]
    return page
