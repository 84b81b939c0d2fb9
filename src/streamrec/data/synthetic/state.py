"""What a synthetic world remembers between sessions: titles in progress (Continue Watching), titles
finished, recent plays per title (for Trending Now), and when each user's last session ended.

Keys are codes user * n_items + item, kept in sorted int64 arrays so lookups are one searchsorted."""

from __future__ import annotations

import numpy as np

TRENDING_DAYS = 7
CONTINUE_DAYS = 28  # titles untouched this long drop out of Continue Watching


class WorldState:
    """Mutable per-world memory, updated after every round of sessions."""

    def __init__(self, n_users: int, n_items: int):
        self.n_items = n_items
        self.cw_code = np.zeros(0, dtype=np.int64)  # sorted
        self.cw_progress = np.zeros(0, dtype=np.float64)  # movie: fraction; series: episodes finished
        self.cw_day = np.zeros(0, dtype=np.int32)
        self.finished = np.zeros(0, dtype=np.int64)  # sorted codes
        self.plays = np.zeros((TRENDING_DAYS, n_items), dtype=np.int64)  # ring buffer of daily plays
        self.busy_until = np.zeros(n_users, dtype=np.int64)
        self._by_user: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ reads
    def is_finished(self, codes: np.ndarray) -> np.ndarray:
        return _member(self.finished, codes)

    def progress(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, progress) for codes; progress 0 where not found."""
        if len(self.cw_code) == 0:
            return np.zeros(codes.shape, dtype=bool), np.zeros(codes.shape)
        pos = np.minimum(np.searchsorted(self.cw_code, codes), len(self.cw_code) - 1)
        found = self.cw_code[pos] == codes
        return found, np.where(found, self.cw_progress[pos], 0.0)

    def continue_items(self, users: np.ndarray, k: int) -> np.ndarray:
        """[S, k] titles in progress per user, most recently touched first, -1 padded."""
        out = np.full((len(users), k), -1, dtype=np.int64)
        if len(self.cw_code) == 0 or len(users) == 0:
            return out
        if self._by_user is None:
            owner = self.cw_code // self.n_items
            order = np.lexsort((-self.cw_day, owner))
            self._by_user = (owner[order], self.cw_code[order] % self.n_items)
        owner, item = self._by_user
        lo = np.searchsorted(owner, users, side="left")
        hi = np.searchsorted(owner, users, side="right")
        idx = lo[:, None] + np.arange(k)[None, :]
        ok = idx < hi[:, None]
        out[ok] = item[np.minimum(idx, len(item) - 1)][ok]
        return out

    def recent_plays(self) -> np.ndarray:
        return self.plays.sum(axis=0)

    # ------------------------------------------------------------------ writes
    def start_day(self, day: int) -> None:
        """Roll the trending window and drop stale Continue Watching entries."""
        self.plays[day % TRENDING_DAYS] = 0
        fresh = self.cw_day > day - CONTINUE_DAYS
        if not fresh.all():
            self.cw_code, self.cw_progress, self.cw_day = (
                self.cw_code[fresh],
                self.cw_progress[fresh],
                self.cw_day[fresh],
            )
            self._by_user = None

    def record(self, day: int, codes: np.ndarray, progress: np.ndarray, finished: np.ndarray) -> None:
        """After plays: codes finished leave Continue Watching for the finished set; others get `progress`."""
        if len(codes) == 0:
            return
        # the last play of a (user, title) in this batch wins
        rev = slice(None, None, -1)
        uniq, first = np.unique(codes[rev], return_index=True)
        progress, finished = progress[rev][first], finished[rev][first]
        np.add.at(self.plays[day % TRENDING_DAYS], np.asarray(codes) % self.n_items, 1)

        keep = ~_member(uniq, self.cw_code)
        going = uniq[~finished]
        self.cw_code = np.concatenate([self.cw_code[keep], going])
        self.cw_progress = np.concatenate([self.cw_progress[keep], progress[~finished]])
        self.cw_day = np.concatenate([self.cw_day[keep], np.full(len(going), day, dtype=np.int32)])
        order = np.argsort(self.cw_code, kind="stable")
        self.cw_code, self.cw_progress, self.cw_day = self.cw_code[order], self.cw_progress[order], self.cw_day[order]

        done = uniq[finished]
        done = done[~_member(self.finished, done)]
        self.finished = np.insert(self.finished, np.searchsorted(self.finished, done), done)
        self._by_user = None


def _member(sorted_keys: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Whether each code is in the sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(np.shape(codes), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, codes), len(sorted_keys) - 1)
    return sorted_keys[pos] == codes
