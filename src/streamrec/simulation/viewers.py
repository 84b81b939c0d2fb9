"""Who comes to the service on a simulated day, and when: the synthetic world's profiles with their true activity
levels, the world's weekday and evening seasonality, each session at a local hour of the viewer's region."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa

from streamrec.data.synthetic.config import HOUR_WEIGHTS, REGION_UTC_OFFSET_H, REGIONS, WEEKDAY_WEIGHTS
from streamrec.data.synthetic.taste import GroundTruth

SESSION_GAP = timedelta(minutes=5)  # least time between the end of one session and the start of the next


@dataclass(frozen=True)
class Viewers:
    """The simulated viewers, by position: ids, their index in the ground truth, expected sessions per day at a
    weekday factor of 1, the UTC offset of their region, and when they signed up."""

    user_ids: np.ndarray  # [V] str
    truth_index: np.ndarray  # [V] int64, rows of the truth's user arrays
    rate: np.ndarray  # [V] float64, expected sessions per day (before the weekday factor)
    utc_offset_h: np.ndarray  # [V] float64
    signup: np.ndarray  # [V] datetime64[us] (NaT: always there)

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass(frozen=True)
class DaySessions:
    """The sessions of one day, by round: round r holds every viewer's r-th session (a viewer at most once)."""

    viewer: np.ndarray  # [S] position in Viewers
    start: np.ndarray  # [S] datetime64[us], planned start
    round: np.ndarray  # [S] 0, 1, ... per viewer, in start order


def load_viewers(truth: GroundTruth, users: pa.Table, n: int | None = None, seed: int = 0,
                 activity: float | None = None, active_at: datetime | None = None) -> Viewers:
    """The viewers of a synthetic world.

    Args:
        truth: the world's ground truth (activity levels, the ids it knows).
        users: the world's users table (user_id, region, signup_ts).
        n: simulate this many viewers, drawn without replacement with `seed` (None: all of them).
        seed: the draw's seed.
        activity: sessions per user per day at activity 1 (None: the world's own scale from truth.json).
        active_at: only viewers signed up before this moment are drawn (None: all).

    Returns:
        The viewers, in the truth's user order.
    """
    ids = users.column("user_id").to_numpy(zero_copy_only=False).astype(str)
    region = users.column("region").to_pylist() if "region" in users.column_names else [None] * len(ids)
    offsets = np.array([REGION_UTC_OFFSET_H[REGIONS.index(r)] if r in REGIONS else 0.0 for r in region])
    signup = users.column("signup_ts").to_numpy(zero_copy_only=False).astype("datetime64[us]") \
        if "signup_ts" in users.column_names else np.full(len(ids), np.datetime64("NaT"), "datetime64[us]")
    known = np.isin(ids, truth.user_ids)
    if active_at is not None:
        known &= np.isnat(signup) | (signup < np.datetime64(active_at, "us"))
    pick = np.flatnonzero(known)
    if n is not None and n < len(pick):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x5EE])))
        pick = np.sort(rng.choice(pick, size=n, replace=False))
    index = truth.user_index(ids[pick])
    order = np.argsort(index, kind="stable")
    pick, index = pick[order], index[order]
    scale = float(truth.meta.get("activity_scale", 0.5)) if activity is None else activity
    return Viewers(ids[pick], index, scale * truth.user_activity[index], offsets[pick], signup[pick])


def draw_sessions(viewers: Viewers, day: date, rng: np.random.Generator, max_per_day: int = 4) -> DaySessions:
    """The sessions of `day` (UTC): a Poisson count per viewer (rate × weekday factor, capped), each at a local hour
    drawn from the world's evening-peaked hour weights; none before a viewer's signup."""
    weekday = np.asarray(WEEKDAY_WEIGHTS) / np.mean(WEEKDAY_WEIGHTS)
    counts = np.minimum(rng.poisson(viewers.rate * weekday[day.weekday()]), max_per_day)
    viewer = np.repeat(np.arange(len(viewers)), counts)
    hours = np.asarray(HOUR_WEIGHTS) / sum(HOUR_WEIGHTS)
    local_h = rng.choice(24, size=len(viewer), p=hours) + rng.random(len(viewer))
    utc_h = np.mod(local_h - viewers.utc_offset_h[viewer], 24.0)
    start = np.datetime64(day, "us") + (utc_h * 3_600e6).astype(np.int64).astype("timedelta64[us]")
    signup = viewers.signup[viewer]
    keep = np.isnat(signup) | (signup < start)
    viewer, start = viewer[keep], start[keep]
    order = np.lexsort((start, viewer))
    viewer, start = viewer[order], start[order]
    first = np.searchsorted(viewer, viewer, side="left")
    return DaySessions(viewer, start, np.arange(len(viewer)) - first)
