"""The event stream of a synthetic world, simulated one day at a time in vectorized rounds of sessions.

Each round takes every user's next session of the day: the homepage is built (impressions), the viewer
chooses by true utility (plays, maybe a second one), sometimes searches (organic plays without a request),
watches (progress / complete events; series binge episode after episode), rates or adds to the list.
State (Continue Watching, finished titles, trending counts) is updated between rounds, so a second session
the same evening continues where the first stopped. A day's events are emitted sorted by time; the few that
run past midnight wait for the next day's batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.data.synthetic.catalog_gen import Catalog
from streamrec.data.synthetic.config import DAY_US, DEVICES, ROWS, SECOND_US, WorldConfig, rng_for
from streamrec.data.synthetic.incumbent import DayOffer, Incumbent
from streamrec.data.synthetic.sessions import activity_scale, build_pages, daily_exposure, draw_sessions
from streamrec.data.synthetic.state import WorldState
from streamrec.data.synthetic.taste import GroundTruth, sigmoid
from streamrec.data.synthetic.users_gen import Users
from streamrec.events.schema import EVENT_ARROW_SCHEMA, EVENT_TYPES

IMPRESSION, PLAY, PROGRESS, COMPLETE, RATING, ADD_TO_LIST = range(6)  # positions in EVENT_TYPES
SEARCH_CANDIDATES = 48  # titles a search turns up; the viewer plays the one they like best
MIN_GAP_US = 5 * 60 * SECOND_US  # between one user's sessions

_FIELDS: dict[str, tuple[type, float]] = {
    "ts": (np.int64, 0), "user": (np.int64, -1), "item": (np.int64, -1), "type": (np.int8, -1),
    "request": (np.int64, -1), "position": (np.int64, -1), "row": (np.int64, -1), "device": (np.int64, -1),
    "watched_s": (np.float64, np.nan), "fraction": (np.float64, np.nan), "rating": (np.float64, np.nan),
}  # fmt: skip


class EventBuffer:
    """Column chunks of events, concatenated once per day; columns a chunk does not give take their default."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray | int]] = {name: [] for name in _FIELDS}

    def add(self, n: int, **cols: np.ndarray | float) -> None:
        for name, (dtype, _) in _FIELDS.items():
            value = cols.get(name)
            chunk = n if value is None else np.broadcast_to(np.asarray(value).astype(dtype, copy=False), (n,))
            self.parts[name].append(chunk)

    def columns(self) -> dict[str, np.ndarray]:
        out = {}
        for name, chunks in self.parts.items():
            dtype, default = _FIELDS[name]
            arrays = [np.full(c, default, dtype=dtype) if isinstance(c, int) else c for c in chunks]
            out[name] = np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)
        return out


class WorldSimulator:
    """Simulates the event stream; iterate `batches()` for time-ordered Arrow tables (one per day)."""

    def __init__(self, config: WorldConfig, catalog: Catalog, users: Users, truth: GroundTruth, incumbent: Incumbent):
        self.config, self.catalog, self.users, self.truth, self.incumbent = config, catalog, users, truth, incumbent
        self.state = WorldState(users.n, catalog.n)
        self.scale = activity_scale(config, users)
        self._exposure = daily_exposure(config, users)
        self._spent = 0.0  # Σ scale × exposure over simulated days
        self._generated = 0  # events simulated so far (some still waiting past midnight)
        self._offer: DayOffer | None = None
        self.sessions = 0
        self.events = 0
        self.by_type = np.zeros(len(EVENT_TYPES), dtype=np.int64)
        self._user_ids = pa.array(users.user_ids.tolist(), pa.string())
        self._item_ids = pa.array(catalog.item_ids.tolist(), pa.string())

    def batches(self, on_progress: Callable[[int, int], None] | None = None) -> Iterator[pa.Table]:
        carry: dict[str, np.ndarray] | None = None
        for day in range(self.config.days):
            cols = self.simulate_day(day)
            self._steer(day, len(cols["ts"]))
            if carry is not None:
                cols = {k: np.concatenate([carry[k], cols[k]]) for k in cols}
            order = np.argsort(cols["ts"], kind="stable")
            cols = {k: v[order] for k, v in cols.items()}
            cut = int(np.searchsorted(cols["ts"], self.config.start_us + (day + 1) * DAY_US))
            carry = {k: v[cut:] for k, v in cols.items()}  # past midnight; at the world's end: dropped
            if cut:
                yield self.to_table({k: v[:cut] for k, v in cols.items()})
            if on_progress is not None:
                on_progress(day + 1, self.config.days)

    def _steer(self, day: int, generated: int) -> None:
        """With an `events` target, re-solve the activity scale for the remaining days from the events each
        unit of exposure actually produced so far (a deterministic feedback loop)."""
        self._spent += self.scale * self._exposure[day]
        self._generated += generated
        rest = float(self._exposure[day + 1 :].sum())
        if self.config.events is None or rest <= 0 or self._generated == 0:
            return
        per_unit = self._generated / self._spent
        wanted = (self.config.events - self._generated) / (per_unit * rest)
        first = activity_scale(self.config, self.users)
        self.scale = float(np.clip(wanted, 0.25 * first, 4.0 * first))

    def simulate_day(self, day: int) -> dict[str, np.ndarray]:
        rng = rng_for(self.config.seed, "events", day)
        self.state.start_day(day)
        offer = self.incumbent.offer(day, self.state.recent_plays(), self._offer)
        self._offer = offer
        buf = EventBuffer()
        user, planned, rounds = draw_sessions(self.config, self.users, day, self.scale, rng)
        day_end = offer.day_start_us + DAY_US
        for r in range(int(rounds.max()) + 1 if len(rounds) else 0):
            mine = rounds == r
            u = user[mine]
            start = np.maximum.reduce(
                [planned[mine], self.state.busy_until[u] + MIN_GAP_US, self.users.signup_us[u] + 30 * SECOND_US]
            )
            ok = start < day_end
            if ok.any():
                self.state.busy_until[u[ok]] = self._round(day, offer, u[ok], start[ok], rng, buf)
        return buf.columns()

    def _round(
        self, day: int, offer: DayOffer, u: np.ndarray, start: np.ndarray, rng: np.random.Generator, buf: EventBuffer
    ) -> np.ndarray:
        """Simulate one session for each user in `u`; returns when each session ended (µs)."""
        truth, p, users = self.truth, self.truth.params, self.users
        s = len(u)
        sid = self.sessions + np.arange(s)
        self.sessions += s
        device = np.where(rng.random(s) < 0.8, users.device[u], rng.integers(0, len(DEVICES), s))
        day_f = (start - self.config.start_us) / DAY_US

        page = build_pages(offer, self.incumbent, self.state, users, u, rng)
        imp_s, imp_slot = np.nonzero(page.items >= 0)
        imp_item = page.items[imp_s, imp_slot]
        imp_ts = (
            start[imp_s] + page.row_rank[imp_s, imp_slot] * 2 * SECOND_US + page.position[imp_s, imp_slot] * 100_000
        )
        buf.add(len(imp_s), ts=imp_ts, user=u[imp_s], item=imp_item, type=IMPRESSION, request=sid[imp_s],
                position=page.position[imp_s, imp_slot], row=page.row[imp_s, imp_slot], device=device[imp_s])  # fmt: skip

        bonus = np.where(page.row == 0, p.continue_bonus, 0.0)
        logits, util = truth.slate_logits(
            u, page.items, day_f, bonus=bonus, positions=page.position + 2 * page.row_rank
        )
        first = truth.choose(logits, rng)
        rows = np.arange(s)
        logits[rows[first >= 0], first[first >= 0]] = -np.inf
        second = np.where((first >= 0) & (rng.random(s) < p.second_play), truth.choose(logits, rng), -1)

        imp_util = util[imp_s, imp_slot]
        chosen = (imp_slot == first[imp_s]) | (imp_slot == second[imp_s])
        listed = ~chosen & (rng.random(len(imp_s)) < p.add_to_list * 2 * sigmoid(2.0 * (imp_util - 1.0)))
        buf.add(int(listed.sum()), ts=imp_ts[listed] + 5 * SECOND_US, user=u[imp_s[listed]], item=imp_item[listed],
                type=ADD_TO_LIST, request=sid[imp_s[listed]], device=device[imp_s[listed]])  # fmt: skip

        region, maturity = users.region[u].astype(np.int64), users.maturity[u].astype(np.int64)
        can_search = offer.search_ok[region * len(MATURITY_LEVELS) + maturity]
        wants = np.where(first >= 0, rng.random(s) < p.search_extra, rng.random(s) < p.search_if_none)
        ss = np.nonzero(can_search & wants)[0]
        found = offer.search(region[ss], maturity[ss], SEARCH_CANDIDATES, rng)
        s_logits, s_util = truth.slate_logits(u[ss], found, day_f[ss])
        pick = np.argmax(s_logits + rng.gumbel(size=s_logits.shape), axis=1) if len(ss) else np.zeros(0, dtype=np.int64)

        s1, s2 = np.nonzero(first >= 0)[0], np.nonzero(second >= 0)[0]
        play_s = np.concatenate([s1, s2, ss])
        play_item = np.concatenate(
            [page.items[s1, first[s1]], page.items[s2, second[s2]], found[np.arange(len(ss)), pick]]
        )
        play_util = np.concatenate([util[s1, first[s1]], util[s2, second[s2]], s_util[np.arange(len(ss)), pick]])
        play_rec = np.concatenate([np.ones(len(s1) + len(s2), dtype=bool), np.zeros(len(ss), dtype=bool)])
        order = np.lexsort((np.repeat([0, 1, 2], [len(s1), len(s2), len(ss)]), play_s))
        play_s, play_item, play_util, play_rec = play_s[order], play_item[order], play_util[order], play_rec[order]

        ends = start + rng.integers(30, 180, s) * SECOND_US
        if len(play_s):
            self._watch(day, u, start, sid, device, play_s, play_item, play_util, play_rec, ends, rng, buf)
        return ends

    def _watch(self, day: int, u: np.ndarray, start: np.ndarray, sid: np.ndarray, device: np.ndarray,
               play_s: np.ndarray, item: np.ndarray, util: np.ndarray, rec: np.ndarray, ends: np.ndarray,
               rng: np.random.Generator, buf: EventBuffer) -> None:  # fmt: skip
        """Plays (sorted by session) → play / progress / complete / rating events; updates state and `ends`."""
        truth, p, cat = self.truth, self.truth.params, self.catalog
        n = len(play_s)
        pu = u[play_s]
        code = pu * cat.n + item
        known, progress = self.state.progress(code)
        series = cat.series[item]
        total = cat.episodes[item].astype(np.int64)
        done = np.where(series & known, np.floor(progress), 0).astype(np.int64)
        done = np.where(done >= total, 0, done)
        n_ep = np.where(series, truth.episodes_to_watch(util, total - done, rng), 1).astype(np.int64)
        start_f = np.where(~series & known, progress, 0.0)
        frac_last, comp_last = truth.watch(util, rng, start_f)

        ep_play = np.repeat(np.arange(n), n_ep)
        first_ep = np.cumsum(n_ep) - n_ep
        last = np.arange(len(ep_play)) - first_ep[ep_play] == n_ep[ep_play] - 1
        ep_frac = np.where(last, frac_last[ep_play], 1.0)
        ep_comp = np.where(last, comp_last[ep_play], True)
        ep_f0 = np.where(last, start_f[ep_play], 0.0)
        runtime_s = cat.runtime_min[item][ep_play] * 60.0
        ep_dur = ((ep_frac - ep_f0) * runtime_s * SECOND_US).astype(np.int64)
        ep_cost = ep_dur + 15 * SECOND_US
        chunk = np.bincount(ep_play, weights=ep_cost, minlength=n).astype(np.int64)

        delay = np.where(rec, rng.integers(15, 120, n), rng.integers(60, 240, n)) * SECOND_US
        total_cost = delay + chunk
        before = np.cumsum(total_cost) - total_cost
        session_first = np.searchsorted(play_s, play_s, side="left")
        play_start = start[play_s] + before - before[session_first] + delay
        ep_before = np.cumsum(ep_cost) - ep_cost
        ep_start = play_start[ep_play] + ep_before - ep_before[first_ep[ep_play]]

        e_user, e_item, e_dev = pu[ep_play], item[ep_play], device[play_s][ep_play]
        request = np.where(rec, sid[play_s], -1)[ep_play]
        m = len(ep_play)
        buf.add(m, ts=ep_start, user=e_user, item=e_item, type=PLAY, request=request, device=e_dev)
        prog_f = np.where(ep_comp, (ep_f0 + 1.0) / 2.0, ep_frac)
        prog_ts = ep_start + np.maximum(np.where(ep_comp, ep_dur // 2, ep_dur), SECOND_US)
        buf.add(m, ts=prog_ts, user=e_user, item=e_item, type=PROGRESS, device=e_dev,
                fraction=prog_f, watched_s=prog_f * runtime_s)  # fmt: skip
        c = ep_comp
        buf.add(int(c.sum()), ts=np.maximum(ep_start + ep_dur, prog_ts + SECOND_US)[c], user=e_user[c], item=e_item[c],
                type=COMPLETE, device=e_dev[c], fraction=1.0, watched_s=runtime_s[c])  # fmt: skip

        chunk_end = play_start + chunk
        rated = rng.random(n) < np.where(comp_last, p.rate_complete, p.rate_abandon)
        buf.add(int(rated.sum()), ts=chunk_end[rated] + 20 * SECOND_US, user=pu[rated], item=item[rated], type=RATING,
                device=device[play_s][rated], rating=truth.rating(util[rated], rng))  # fmt: skip
        np.maximum.at(ends, play_s, chunk_end + 30 * SECOND_US)

        new_done = done + n_ep - 1 + comp_last
        finished = np.where(series, new_done >= total, comp_last)
        self.state.record(day, code, np.where(series, new_done, frac_last).astype(np.float64), finished)

    def to_table(self, cols: dict[str, np.ndarray]) -> pa.Table:
        """Numpy event columns → a table in the canonical event schema, with deterministic ids."""
        n = len(cols["ts"])
        seed = self.config.seed
        counter = pa.array(np.arange(self.events, self.events + n, dtype=np.int64))
        self.events += n
        self.by_type += np.bincount(cols["type"], minlength=len(EVENT_TYPES))
        request = cols["request"]
        req = pa.array(request, mask=request < 0)
        position, row = cols["position"], cols["row"]
        arrays = {
            "event_id": _prefixed(f"s{seed}-e", counter, 10),
            "user_id": self._user_ids.take(pa.array(cols["user"])),
            "item_id": self._item_ids.take(pa.array(cols["item"])),
            "type": pa.array(EVENT_TYPES).take(pa.array(cols["type"].astype(np.int32))),
            "ts": pa.array(cols["ts"], pa.timestamp("us")),
            "request_id": _prefixed(f"s{seed}-r", req, 9),
            "position": pa.array(position.astype(np.int32), pa.int32(), mask=position < 0),
            "row": pa.array(ROWS).take(pa.array(row.astype(np.int32), mask=row < 0)),
            "device": pa.array(DEVICES).take(pa.array(cols["device"].astype(np.int32))),
            "watched_s": pa.array(cols["watched_s"], pa.float64(), mask=np.isnan(cols["watched_s"])),
            "fraction": pa.array(cols["fraction"], pa.float64(), mask=np.isnan(cols["fraction"])),
            "rating": pa.array(cols["rating"], pa.float64(), mask=np.isnan(cols["rating"])),
        }
        return pa.Table.from_arrays([arrays[f.name] for f in EVENT_ARROW_SCHEMA], schema=EVENT_ARROW_SCHEMA)


def _prefixed(prefix: str, numbers: pa.Array, width: int) -> pa.Array:
    """prefix + zero-padded number, null where the number is null."""
    digits = pc.utf8_lpad(pc.cast(numbers, pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")
