"""What serving knows besides the model, read once at start: the catalog and its filter, the online store (filled
from the event store), popularity overall and per region (trending and cold start, plus the live counts the worker
records), the request clock, and the events path (validator + bus) that keeps the online store fresh.

On the in-process bus the worker runs beside the API: its applier is a subscriber of the bus, so an accepted event is
in the online store before POST /v1/events answers. On Redis Streams, `streamrec worker` processes apply them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.errors import BackendError, ConfigError
from streamrec.events.bus import EventBus, InProcessEventBus
from streamrec.events.bus.outbox import Outbox
from streamrec.events.validate import BatchValidator
from streamrec.logs import get_logger
from streamrec.pipeline.filters import CatalogFilter, UserContext
from streamrec.pipeline.serving import ENGAGED, ServingCatalog
from streamrec.realtime.apply import EventApplier
from streamrec.realtime.landing import EventLanding
from streamrec.settings import Settings
from streamrec.storage.online import OnlineStore

log = get_logger(__name__)

LIVE_REFRESH_S = 10.0  # how often live trending counts are read from the online store


class Clock:
    """Request time (naive UTC). 'data': starts just after the newest stored event and moves on with the wall clock."""

    def __init__(self, start: datetime | None = None):
        self._start = start
        self._began = time.monotonic()

    def __call__(self) -> datetime:
        if self._start is None:
            return datetime.now(UTC).replace(tzinfo=None)
        return self._start + timedelta(seconds=time.monotonic() - self._began)

    @property
    def settable(self) -> bool:
        return self._start is not None

    def set(self, at: datetime) -> None:
        """Move a data clock to `at` (it goes on with the wall clock from there): a simulation over HTTP drives the
        service's day this way.

        Raises:
            ConfigError: a wall clock ('now') cannot be moved.
        """
        if self._start is None:
            raise ConfigError("the request clock is the wall clock (serving.clock = 'now'); only a 'data' clock can "
                              "be set")
        self._start, self._began = (at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at), time.monotonic()


@dataclass
class Popularity:
    """Engagement counts per catalog title (the filter's order): in the last days, and over all time per region."""

    recent: np.ndarray
    by_region: dict[str, np.ndarray] = field(default_factory=dict)
    live: np.ndarray | None = None  # engagements recorded live since start (the worker's title counts)

    def ranked(self, region: str | None = None) -> np.ndarray:
        """Catalog columns, most popular first (a known region's own popularity; else overall)."""
        overall = self.recent if self.live is None else self.recent + self.live
        score = self.by_region.get(region) if region is not None else None
        score = overall if score is None else score + 1e-6 * overall
        return np.argsort(-score, kind="stable")


@dataclass
class ServingWorld:
    catalog: ServingCatalog
    store: OnlineStore
    filter: CatalogFilter
    popularity: Popularity
    clock: Clock
    validator: BatchValidator
    bus: EventBus
    default_region: str | None = None
    profiles: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # user → (region, maturity limit)
    apply_live: bool = True  # the worker beside the API: apply published events in this process
    landing: EventLanding | None = None  # where accepted events are written for the event store (in-process bus)
    outbox: Outbox | None = None  # where accepted events wait while a server-backed bus is down
    trending_days: float = 7.0

    def __post_init__(self) -> None:
        titles = self.catalog.titles
        ids = titles.column("item_id").to_pylist()
        self.names: dict[str, str] = dict(zip(ids, titles.column("title").to_pylist())) \
            if "title" in titles.column_names else {}
        self.release = np.full(len(self.filter.item_ids), np.datetime64("NaT"), dtype="datetime64[D]")
        if "release_date" in titles.column_names:  # release day per catalog column (New Releases)
            for item, day in zip(ids, titles.column("release_date").to_pylist()):
                if day is not None and item in self.filter.index:
                    self.release[self.filter.index[item]] = np.datetime64(day, "D")
        users = self.catalog.users
        self.signups: dict[str, datetime] = dict(zip(users.column("user_id").to_pylist(),
                                                     users.column("signup_ts").to_pylist())) \
            if users is not None and "signup_ts" in users.column_names else {}
        self.applier = EventApplier(self.store)
        if self.apply_live:
            self.bus.subscribe(self.applier)
        self.store_problem: tuple[float, str] | None = None  # (monotonic time, what failed) of the last store error
        self._live_read = -np.inf

    # --- requests ------------------------------------------------------------------------------------------------
    def is_known(self, user_id: str) -> bool:
        """A user with a profile or any history; others are cold-start users."""
        return user_id in self.profiles or bool(self.store.history(user_id))

    def region_of(self, user_id: str, region: str | None) -> str | None:
        return region or self.profiles.get(user_id, (None, ""))[0] or self.default_region

    def context(self, user_id: str, region: str | None, exclude: Sequence[str] = (),
                watched: bool = True, use_store: bool = True) -> UserContext:
        """The filter's view of a request's user (`watched=False`: titles already watched stay allowed;
        `use_store=False`: the online store is down, so nothing is known of watched or hidden titles)."""
        limit = self.profiles.get(user_id, (None, MATURITY_LEVELS[-1]))[1]
        seen: dict[str, datetime] = {}
        if not use_store:
            return UserContext(region=self.region_of(user_id, region), maturity_limit=limit, watched=seen,
                               hidden=frozenset(exclude))
        if watched:
            for e in self.store.history(user_id):
                if e.type in ENGAGED:
                    seen[e.item_id] = max(seen.get(e.item_id, e.ts), e.ts)
        return UserContext(region=self.region_of(user_id, region), maturity_limit=limit, watched=seen,
                           hidden=self.store.hidden(user_id) | frozenset(exclude))

    def popular(self, ctx: UserContext, at: datetime, k: int, skip: set[str] = frozenset()) -> list[str]:
        """The k most popular titles this user may see (by their region when it has its own counts)."""
        self.refresh_live(at)
        allowed, _ = self.filter.allowed(ctx, at)
        out = []
        for col in self.popularity.ranked(ctx.region):
            if allowed[col]:
                item = self.filter.item_ids[col]
                if item not in skip:
                    out.append(item)
                    if len(out) == k:
                        break
        return out

    # --- the online store's health and live counts ---------------------------------------------------------------
    def store_failed(self, exc: BackendError) -> None:
        """Remember a failed online store read (/readyz reports it for a while; requests fall back meanwhile)."""
        self.store_problem = (time.monotonic(), str(exc)[:300])
        log.warning("online_store.unavailable", error=str(exc)[:300])

    def store_degraded(self, within_s: float = 10.0) -> str | None:
        """Why the online store counts as degraded: a read failed in the last `within_s` seconds, or a ping fails."""
        problem = self.store_problem
        if problem is not None and time.monotonic() - problem[0] < within_s:
            return f"online store unavailable: {problem[1]}"
        try:
            self.store.hidden("__readyz__")
        except BackendError as exc:
            self.store_failed(exc)
            return f"online store unavailable: {str(exc)[:300]}"
        return None

    def refresh_live(self, at: datetime) -> None:
        """Fold the live title counts of the trending window into popularity (at most every LIVE_REFRESH_S)."""
        now = time.monotonic()
        if now - self._live_read < LIVE_REFRESH_S:
            return
        self._live_read = now
        days = [(at - timedelta(days=d)).date() for d in range(int(np.ceil(self.trending_days)) + 1)]
        try:
            counts = self.store.title_counts(days)
        except BackendError as exc:
            self.store_failed(exc)
            return
        live = np.zeros(len(self.filter.item_ids), np.float64)
        for item, n in counts.items():
            col = self.filter.index.get(item)
            if col is not None:
                live[col] = n
        self.popularity.live = live


def popularity_from_store(con, events: str, at: datetime, days: float, item_ids: np.ndarray) -> Popularity:
    """Engagements per title in the last `days` before `at`, and per user region over all time."""
    index = {item: i for i, item in enumerate(item_ids.tolist())}
    types = ", ".join(f"'{t}'" for t in ENGAGED)
    recent = np.zeros(len(item_ids), np.float64)
    rows = con.execute(
        f"SELECT item_id, count(*) FILTER (WHERE ts >= ?) AS recent, count(*) AS total FROM {events} "
        f"WHERE ts < ? AND type IN ({types}) GROUP BY 1", [at - timedelta(days=days), at]).fetchall()
    for item, n_recent, total in rows:
        if item in index:
            recent[index[item]] = n_recent + 1e-3 * total
    by_region: dict[str, np.ndarray] = {}
    from streamrec.features.offline import has_table

    if has_table(con, "users"):
        rows = con.execute(
            f"SELECT u.region, e.item_id, count(*) FROM {events} e JOIN users u USING (user_id) "
            f"WHERE e.ts < ? AND e.type IN ({types}) AND u.region IS NOT NULL GROUP BY 1, 2", [at]).fetchall()
        for region, item, n in rows:
            if item in index:
                by_region.setdefault(region, np.zeros(len(item_ids), np.float64))[index[item]] = n
    return Popularity(recent, by_region)


def most_common_region(profiles: Mapping[str, tuple[str | None, str]]) -> str | None:
    counts = Counter(r for r, _ in profiles.values() if r)
    return counts.most_common(1)[0][0] if counts else None


def build_world(con, settings: Settings, store: OnlineStore | None = None,
                bus: EventBus | None = None) -> ServingWorld:
    """A ServingWorld from an open event store connection (the store's features are materialized separately,
    once the model's feature definitions are known: see streamrec.serving.state)."""
    from streamrec.features import events_relation
    from streamrec.pipeline.serving import OnlinePipeline

    events = events_relation(con)
    catalog = ServingCatalog.from_store(con)
    newest = con.execute(f"SELECT max(ts) FROM {events}").fetchone()[0]
    start = (newest + timedelta(seconds=1)) if settings.serving.clock == "data" and newest is not None else None
    clock = Clock(start)
    flt = CatalogFilter(catalog.titles, catalog.availability, settings.pipeline.filters)
    popularity = popularity_from_store(con, events, clock(), settings.serving.trending_days, flt.item_ids)
    profiles = OnlinePipeline._profiles(catalog.users)
    validator = BatchValidator(settings.ingest, catalog.titles, catalog.users)
    if store is None:
        from streamrec.storage.online import open_online_store

        store = open_online_store(settings.online_store)
    if bus is None:
        from streamrec.events.bus import open_event_bus

        bus = open_event_bus(settings.event_bus)
    embedded = isinstance(bus, InProcessEventBus)  # else `streamrec worker` processes apply and land the events
    landing = EventLanding(settings.data_dir / "incoming" / "live") if settings.serving.land_events and embedded \
        else None
    outbox = Outbox(bus, settings.data_dir / "outbox" / "events", settings.event_bus.maxlen) \
        if settings.serving.hold_events and not embedded else None
    return ServingWorld(catalog, store, flt, popularity, clock, validator, bus,
                        settings.serving.default_region or most_common_region(profiles), profiles,
                        apply_live=embedded, trending_days=settings.serving.trending_days, landing=landing,
                        outbox=outbox)
