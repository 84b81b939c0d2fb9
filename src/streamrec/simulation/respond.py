"""How viewers answer a served list, by the world's ground truth: they see the titles (impressions), choose one or
nothing with the truth's slate choice model (sometimes a second one), and watch a fraction of it, or episodes of a
series one after another (progress for an episode left unfinished, complete for one finished).

Times: the titles are seen one tenth of a second apart from the session's start; a play starts 15-120 s after the
page (or after the previous play); each watched episode's event is stamped when the viewer stops or finishes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from streamrec.data.synthetic.taste import GroundTruth

IMPRESSION, PLAY, PROGRESS, COMPLETE = "impression", "play", "progress", "complete"
US = np.timedelta64(1, "us")
SECOND = np.timedelta64(1_000_000, "us")


@dataclass
class Reaction:
    """What a batch of sessions did, one row per event (impressions first, then each session's plays in order)."""

    session: np.ndarray  # [E] position of the session in the batch
    type: list[str]  # [E] impression, play, progress or complete
    item: list[str]  # [E] title id
    ts: np.ndarray  # [E] datetime64[us]
    position: np.ndarray  # [E] slot in the list (impressions), -1 otherwise
    fraction: np.ndarray  # [E] share of the runtime (an episode's) reached; nan for impressions and plays
    watched_s: np.ndarray  # [E] seconds watched in this event's stretch; nan for impressions and plays
    ends: np.ndarray  # [S] datetime64[us], when each session ended
    plays: np.ndarray  # [S] titles played from the list


def respond(truth: GroundTruth, users: np.ndarray, slates: Sequence[Sequence[str]], start: np.ndarray,
            rng: np.random.Generator, visible: int | None = None) -> Reaction:
    """Viewers `users` (indices into the truth) answer the lists `slates` served at `start` (datetime64[us]).

    Args:
        truth: the world's ground truth.
        users: [S] the viewers' truth indices.
        slates: [S] the served lists, best first; titles unknown to the world are seen but never played.
        start: [S] when each list was shown.
        rng: the random stream (the same stream and inputs give the same reaction).
        visible: slots a viewer looks at (None: the whole list).

    Returns:
        The events, each with its session, and each session's end and number of plays.
    """
    s = len(slates)
    start = np.asarray(start, dtype="datetime64[us]")
    width = max((min(len(x), visible or len(x)) for x in slates), default=0)
    items = np.full((s, width), -1, dtype=np.int64)
    names = np.full((s, width), "", dtype=object)
    for row, slate in enumerate(slates):
        shown = list(slate[:width])
        names[row, : len(shown)] = shown
        items[row, : len(shown)] = truth.item_index(shown, missing=-1) if shown else []
    shown_mask = names != ""
    imp_s, imp_slot = np.nonzero(shown_mask)
    rows = _Rows()
    rows.add(imp_s, IMPRESSION, names[imp_s, imp_slot].tolist(), start[imp_s] + imp_slot * 100_000 * US,
             position=imp_slot)

    p = truth.params
    day = (start - np.datetime64(truth.start, "us")) / np.timedelta64(86_400_000_000, "us")
    logits, util = truth.slate_logits(users, items, day if s else None)
    first = truth.choose(logits, rng)
    taken = first >= 0
    logits[np.flatnonzero(taken), first[taken]] = -np.inf
    second = np.where(taken & (rng.random(s) < p.second_play), truth.choose(logits, rng), -1)

    play_s = np.concatenate([np.flatnonzero(first >= 0), np.flatnonzero(second >= 0)])
    slot = np.concatenate([first[first >= 0], second[second >= 0]])
    order = np.argsort(play_s, kind="stable")  # per session: the first choice, then the second
    play_s, slot = play_s[order], slot[order]
    item = items[play_s, slot]
    play_util = util[play_s, slot]
    episodes = truth.episodes[item].astype(np.int64)
    n_ep = np.where(episodes > 0, truth.episodes_to_watch(play_util, episodes, rng), 1).astype(np.int64)
    last_fraction, last_completed = truth.watch(play_util, rng)
    delay = rng.integers(15, 120, len(play_s)) * SECOND
    runtime_s = truth.runtime_min[item].astype(np.float64) * 60.0

    ends = start + (width * 100_000 + 30_000_000) * US  # looking at the list and leaving
    clock = ends.copy()
    for j in range(len(play_s)):
        sess = play_s[j]
        name = names[sess, slot[j]]
        at = clock[sess] + delay[j]
        rows.add1(sess, PLAY, name, at)
        for e in range(n_ep[j]):
            last = e == n_ep[j] - 1
            fraction, completed = (float(last_fraction[j]), bool(last_completed[j])) if last else (1.0, True)
            watched = fraction * runtime_s[j]
            at = at + np.int64(round(watched * 1e6)) * US
            rows.add1(sess, COMPLETE if completed else PROGRESS, name, at, fraction=fraction, watched_s=watched)
            at = at + 15 * SECOND  # the next episode's countdown
        clock[sess] = at
    ends = np.maximum(ends, clock + 30 * SECOND)
    return rows.reaction(ends, np.bincount(play_s, minlength=s))


class _Rows:
    """Event columns gathered in chunks."""

    def __init__(self) -> None:
        self.session: list[np.ndarray] = []
        self.type: list[str] = []
        self.item: list[str] = []
        self.ts: list[np.ndarray] = []
        self.position: list[np.ndarray] = []
        self.fraction: list[np.ndarray] = []
        self.watched: list[np.ndarray] = []

    def add(self, session: np.ndarray, kind: str, items: list[str], ts: np.ndarray, position: np.ndarray) -> None:
        n = len(session)
        self.session.append(np.asarray(session, dtype=np.int64))
        self.type += [kind] * n
        self.item += items
        self.ts.append(np.asarray(ts, dtype="datetime64[us]"))
        self.position.append(np.asarray(position, dtype=np.int64))
        self.fraction.append(np.full(n, np.nan))
        self.watched.append(np.full(n, np.nan))

    def add1(self, session: int, kind: str, item: str, ts: np.datetime64, fraction: float = np.nan,
             watched_s: float = np.nan) -> None:
        self.session.append(np.array([session], dtype=np.int64))
        self.type.append(kind)
        self.item.append(item)
        self.ts.append(np.array([ts], dtype="datetime64[us]"))
        self.position.append(np.array([-1], dtype=np.int64))
        self.fraction.append(np.array([fraction]))
        self.watched.append(np.array([watched_s]))

    def reaction(self, ends: np.ndarray, plays: np.ndarray) -> Reaction:
        def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return Reaction(cat(self.session, np.int64), self.type, self.item, cat(self.ts, "datetime64[us]"),
                        cat(self.position, np.int64), cat(self.fraction, np.float64), cat(self.watched, np.float64),
                        ends, plays)
