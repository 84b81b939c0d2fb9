"""The closed loop: for N simulated days, the active viewers ask the service for a list, answer it by their true
taste, and post what they did (impressions, plays, progress, completes) to POST /v1/events, where the service's own
validation and worker take it into the online store, so later lists react. Everything is recorded as an
exposure/outcome log for the experiment analysis, with a summary per day.

A day runs in rounds, as the world generator does: round r is every viewer's r-th session of the day, at its time
(never before the viewer's previous session ended), so a second session sees what the first one changed. Each
round's events are posted before the next round asks for lists."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from streamrec.data.synthetic.config import rng_for
from streamrec.data.synthetic.taste import GroundTruth
from streamrec.errors import ConfigError
from streamrec.simulation.client import Posted, Served, Transport
from streamrec.simulation.respond import COMPLETE, IMPRESSION, PLAY, PROGRESS, respond
from streamrec.simulation.viewers import SESSION_GAP, Viewers, draw_sessions, load_viewers

EXPOSURE = "exposure"  # a served list (one per request), in the log only: the service logs its own exposures
LOG_SCHEMA = pa.schema([
    pa.field("ts", pa.timestamp("us"), nullable=False),
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("experiment", pa.string()),
    pa.field("variant", pa.string()),
    pa.field("type", pa.string(), nullable=False),  # exposure, impression, play, progress, complete
    pa.field("item_id", pa.string()),  # null for exposures
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("watched_s", pa.float64()),  # progress and complete: seconds watched in that stretch
])  # fmt: skip


class SimulationConfig(BaseModel, extra="forbid"):
    """One simulation run."""

    days: int = Field(7, ge=1, le=3650, description="simulated days")
    users: int | None = Field(None, ge=1, description="viewers drawn from the world's users (None: all)")
    seed: int = Field(0, ge=0, description="root of the run's random streams (viewer draw, sessions, choices)")
    k: int = Field(10, ge=1, le=1000, description="titles per requested list")
    visible: int | None = Field(None, ge=1, description="slots a viewer looks at (None: the whole list)")
    start: datetime | None = Field(None, description="the first day's midnight, UTC (None: the day after the "
                                                     "world's last day, where a 'data' clock starts)")
    activity: float | None = Field(None, gt=0, description="sessions per viewer-day at activity 1 (None: the "
                                                           "world's own, from truth.json)")
    max_sessions_per_day: int = Field(4, ge=1, le=24)
    row: str = Field("recommendations", min_length=1, max_length=64, description="the impressions' row")
    run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,40}$",
                               description="prefix of the request and event ids (default sim<seed>); a run posting "
                                           "to a server that saw another run's ids must use another")


@dataclass
class DaySummary:
    day: date
    viewers: int = 0  # distinct viewers with a session
    requests: int = 0
    impressions: int = 0
    plays: int = 0
    sessions_with_play: int = 0
    completes: int = 0
    watch_minutes: float = 0.0
    accepted: int = 0  # events the service accepted
    rejected: int = 0  # events the service rejected (each listed in SimulationResult.rejected)
    seconds: float = 0.0  # wall time of the day

    @property
    def play_rate(self) -> float:
        """Share of requests whose list led to at least one play."""
        return self.sessions_with_play / self.requests if self.requests else 0.0


@dataclass
class SimulationResult:
    log: pa.Table  # LOG_SCHEMA
    days: list[DaySummary]
    rejected: list[dict] = field(default_factory=list)  # the service's rejections, with the event

    @property
    def total(self) -> DaySummary:
        """All days together (day: the first)."""
        out = DaySummary(self.days[0].day if self.days else date.min)
        for d in self.days:
            for name in ("requests", "impressions", "plays", "sessions_with_play", "completes", "watch_minutes",
                         "accepted", "rejected", "seconds"):
                setattr(out, name, getattr(out, name) + getattr(d, name))
        out.viewers = len(set(self.log.filter(pc.equal(self.log["type"], EXPOSURE))["user_id"].to_pylist()))
        return out


def world_end(truth: GroundTruth) -> datetime:
    """Midnight after the world's last generated day (from truth.json)."""
    days = truth.meta.get("config", {}).get("days")
    if days is None:
        raise ConfigError("the ground truth does not say how many days the world has: give a start")
    return datetime(truth.start.year, truth.start.month, truth.start.day) + timedelta(days=int(days))


def simulate(truth: GroundTruth, users: pa.Table, transport: Transport, config: SimulationConfig,
             on_progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Run the closed loop.

    Args:
        truth: the world's ground truth (the viewers' tastes and response model).
        users: the world's users table (user_id, region, signup_ts).
        transport: the service (HttpTransport, InProcessTransport, or any Transport).
        config: days, viewers, seed, list size ...
        on_progress: called as (days done, days) after each day.

    Returns:
        The exposure/outcome log (LOG_SCHEMA) and a summary per day. Same seed, world and service state (in
        process) → the same log.
    """
    start = config.start or world_end(truth)
    run = config.run_id or f"sim{config.seed}"
    viewers = load_viewers(truth, users, config.users, config.seed, config.activity, start)
    log = _Log()
    days: list[DaySummary] = []
    rejected: list[dict] = []
    busy = np.full(len(viewers), np.datetime64(start, "us") - np.timedelta64(1, "D"))
    counter = [0, 0]  # requests, events
    for d in range(config.days):
        began = time.perf_counter()
        day = (start + timedelta(days=d)).date()
        summary = DaySummary(day)
        sessions = draw_sessions(viewers, day, rng_for(config.seed, "sessions", d), config.max_sessions_per_day)
        day_end = np.datetime64(day + timedelta(days=1), "us")
        seen: set[int] = set()
        for r in range(int(sessions.round.max()) + 1 if len(sessions.round) else 0):
            mine = sessions.round == r
            v = sessions.viewer[mine]
            at = np.maximum(sessions.start[mine], busy[v] + np.timedelta64(SESSION_GAP))
            keep = at < day_end
            v, at = v[keep], at[keep]
            order = np.argsort(at, kind="stable")
            v, at = v[order], at[order]
            if not len(v):
                continue
            served = []
            for viewer, when in zip(v.tolist(), at.tolist()):
                transport.set_time(when)
                served.append(transport.recommend(str(viewers.user_ids[viewer]), config.k,
                                                  f"{run}-r{counter[0]:08d}"))
                counter[0] += 1
            reaction = respond(truth, viewers.truth_index[v], [s.items for s in served], at,
                               rng_for(config.seed, "respond", d, r), config.visible)
            busy[v] = reaction.ends
            events = _events(reaction, viewers, v, served, run, counter, config.row)
            posted = transport.post_events(events)
            rejected += [{**x, "event": events[x["index"]] if x["index"] < len(events) else None}
                         for x in posted.rejected]
            log.add(viewers, v, at, served, reaction)
            _count(summary, reaction, served, posted)
            seen.update(v.tolist())
        summary.viewers = len(seen)
        summary.seconds = time.perf_counter() - began
        days.append(summary)
        if on_progress is not None:
            on_progress(d + 1, config.days)
    return SimulationResult(log.table(), days, rejected)


def _events(reaction, viewers: Viewers, v: np.ndarray, served: list[Served], run: str, counter: list[int],
            row: str) -> list[dict]:
    """The reaction as canonical events for POST /v1/events (ids from the run's counter)."""
    out = []
    for j, sess in enumerate(reaction.session.tolist()):
        kind = reaction.type[j]
        event = {"event_id": f"{run}-e{counter[1]:09d}", "user_id": str(viewers.user_ids[v[sess]]),
                 "item_id": reaction.item[j], "type": kind, "ts": f"{reaction.ts[j]}Z",
                 "request_id": served[sess].request_id}
        counter[1] += 1
        if kind == IMPRESSION:
            event.update(position=int(reaction.position[j]), row=row)
        elif kind in (PROGRESS, COMPLETE):
            event.update(fraction=round(float(reaction.fraction[j]), 6),
                         watched_s=round(float(reaction.watched_s[j]), 3))
        out.append(event)
    return out


def _count(summary: DaySummary, reaction, served: list[Served], posted: Posted) -> None:
    kinds = np.asarray(reaction.type, dtype=object)
    summary.requests += len(served)
    summary.impressions += int((kinds == IMPRESSION).sum())
    summary.plays += int((kinds == PLAY).sum())
    summary.completes += int((kinds == COMPLETE).sum())
    summary.sessions_with_play += int((reaction.plays > 0).sum())
    summary.watch_minutes += float(np.nansum(reaction.watched_s)) / 60.0
    summary.accepted += posted.accepted
    summary.rejected += len(posted.rejected)


class _Log:
    """The exposure/outcome log's columns, gathered round by round."""

    def __init__(self) -> None:
        self.cols: dict[str, list] = {f.name: [] for f in LOG_SCHEMA}

    def add(self, viewers: Viewers, v: np.ndarray, at: np.ndarray, served: list[Served], reaction) -> None:
        for viewer, when, s in zip(v.tolist(), at.tolist(), served):
            self._row(when, str(viewers.user_ids[viewer]), s, EXPOSURE, None, None)
        for j, sess in enumerate(reaction.session.tolist()):
            w = float(reaction.watched_s[j])
            self._row(reaction.ts[j].item(), str(viewers.user_ids[v[sess]]), served[sess], reaction.type[j],
                      reaction.item[j], None if np.isnan(w) else w)

    def _row(self, ts: datetime, user: str, s: Served, kind: str, item: str | None, watched: float | None) -> None:
        c = self.cols
        c["ts"].append(ts)
        c["user_id"].append(user)
        c["experiment"].append(s.experiment)
        c["variant"].append(s.variant)
        c["type"].append(kind)
        c["item_id"].append(item)
        c["request_id"].append(s.request_id)
        c["watched_s"].append(watched)

    def table(self) -> pa.Table:
        """The log in time order (ties: in the order recorded)."""
        table = pa.table({f.name: pa.array(self.cols[f.name], f.type) for f in LOG_SCHEMA}, schema=LOG_SCHEMA)
        return table.take(pc.sort_indices(table, [("ts", "ascending")]))


def write_log(table: pa.Table, path: Path | str) -> Path:
    """Write the log as Parquet (the folder is made; an existing file is replaced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path
