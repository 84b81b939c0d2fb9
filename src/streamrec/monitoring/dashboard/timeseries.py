"""The overview's time series: a background thread snapshots serving's Prometheus counters and histograms every few
seconds into a bounded ring buffer; rates and latency quantiles per interval are computed from consecutive snapshots
when the dashboard asks (nothing on the request path)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from streamrec.logs import get_logger

log = get_logger(__name__)

# routes of the dashboard itself: left out of the traffic it shows (its own polling would otherwise be most of it)
OWN_ROUTES = ("/dashboard",)


@dataclass
class Snapshot:
    """Cumulative values of serving's metrics at one time (wall clock, seconds since the epoch)."""

    at: float
    requests: dict[tuple[str, str], float] = field(default_factory=dict)  # (route, status) → count
    buckets: dict[tuple[str, str], dict[float, float]] = field(default_factory=dict)  # (route, variant) → le → count
    fallbacks: dict[str, float] = field(default_factory=dict)
    coverage: float | None = None


def snapshot(registry: CollectorRegistry, at: float) -> Snapshot:
    """Read one registry (a process's own, or a multi-process collector's) into a Snapshot."""
    snap = Snapshot(at)
    for family in registry.collect():
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            if name == "streamrec_http_requests_total":
                key = (labels.get("route", ""), labels.get("status", ""))
                snap.requests[key] = snap.requests.get(key, 0.0) + value
            elif name == "streamrec_http_request_seconds_bucket":
                le = float(labels.get("le", "inf"))
                per = snap.buckets.setdefault((labels.get("route", ""), labels.get("variant", "")), {})
                per[le] = per.get(le, 0.0) + value
            elif name == "streamrec_fallbacks_total":
                kind = labels.get("fallback", "")
                snap.fallbacks[kind] = snap.fallbacks.get(kind, 0.0) + value
            elif name == "streamrec_recommendation_coverage":
                snap.coverage = value if snap.coverage is None else max(snap.coverage, value)
    return snap


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of a histogram's cumulative bucket counts (upper bound → count), interpolated linearly inside
    the bucket as Prometheus' histogram_quantile does; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):  # in the open top bucket: the highest finite bound is all we know
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = upper, count
    return lower


def _minus(new: Mapping[Any, float], old: Mapping[Any, float]) -> dict[Any, float]:
    # counters only grow; a smaller value means a restarted process: count from zero
    return {k: (v - old.get(k, 0.0) if v >= old.get(k, 0.0) else v) for k, v in new.items()}


def _merge_buckets(per_key: Iterable[Mapping[float, float]]) -> dict[float, float]:
    out: dict[float, float] = {}
    for buckets in per_key:
        for le, n in buckets.items():
            out[le] = out.get(le, 0.0) + n
    return out


def _own(route: str) -> bool:
    return route.startswith(OWN_ROUTES)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


@dataclass
class Point:
    """What happened between two consecutive snapshots (rates per second, latency in ms), computed once when the
    newer snapshot is taken, so a dashboard poll only assembles lists."""

    at: float
    requests: dict[str, float]  # route → requests/s
    errors: dict[str, float]  # "4xx" / "5xx" → errors/s
    latency: dict[str, float | None]  # "p50" / "p95" / "p99" → ms over every route
    fallbacks: dict[str, float]  # kind → fallbacks/s
    coverage: float | None


def point(old: Snapshot, new: Snapshot) -> Point:
    """The interval from `old` to `new`, the dashboard's own routes left out."""
    dt = max(new.at - old.at, 1e-9)
    req = {k: n for k, n in _minus(new.requests, old.requests).items() if not _own(k[0])}
    routes: dict[str, float] = {}
    for (route, _), n in req.items():
        routes[route] = routes.get(route, 0.0) + n
    errors = {cls: round(sum(n for (_, s), n in req.items() if s.startswith(cls[0])) / dt, 4) for cls in ("4xx", "5xx")}
    merged = _merge_buckets(_minus(b, old.buckets.get(k, {})) for k, b in new.buckets.items() if not _own(k[0]))
    return Point(new.at, {r: round(n / dt, 4) for r, n in routes.items()}, errors,
                 {name: _ms(quantile(q, merged)) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
                 {k: round(n / dt, 4) for k, n in _minus(new.fallbacks, old.fallbacks).items()}, new.coverage)


class Sampler:
    """Snapshots of serving's metrics every `interval_s` seconds, the newest `capacity` kept (default: one hour),
    with the interval between each two as a Point.

    `read` gives the registry to read: the app's own, or, with several server processes, a collector over all of
    them (so every process's dashboard shows the whole server)."""

    def __init__(self, read: Callable[[], CollectorRegistry], interval_s: float = 5.0, capacity: int = 720,
                 clock: Callable[[], float] = time.time):
        self.read, self.interval_s, self.clock = read, interval_s, clock
        self.samples: deque[Snapshot] = deque(maxlen=capacity)
        self.points: deque[Point] = deque(maxlen=max(capacity - 1, 1))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at: float | None = None

    def sample(self) -> Snapshot:
        """Take one snapshot now and keep it (and the interval since the previous one)."""
        snap = snapshot(self.read(), self.clock())
        with self._lock:
            if self.samples:
                self.points.append(point(self.samples[-1], snap))
            self.samples.append(snap)
        return snap

    def start(self) -> None:
        """Sample now and then every `interval_s` in a daemon thread, until `stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self.started_at = self.clock()
        self._thread = threading.Thread(target=self._run, name="dashboard-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception as exc:  # a failed read costs one point, never the server
                log.warning("dashboard.sample_failed", error=f"{type(exc).__name__}: {exc}")
            if self._stop.wait(self.interval_s):
                return

    def series(self) -> dict[str, Any]:
        """Per interval between consecutive snapshots: requests per second by route, errors per second by class,
        latency p50/p95/p99 (ms) over every route, fallbacks per second by kind, coverage; and totals over the
        whole window (by route and by experiment variant). The dashboard's own routes are left out; so are routes
        and fallback kinds without any in the window."""
        with self._lock:
            snaps, points = [self.samples[0], self.samples[-1]] if self.samples else [], list(self.points)
        routes = sorted({r for p in points for r, n in p.requests.items() if n > 0})
        kinds = sorted({k for p in points for k, n in p.fallbacks.items() if n > 0})
        return {"interval_s": self.interval_s, "window_s": self.interval_s * (self.samples.maxlen or 0),
                "samples": len(points) + 1 if snaps else 0, "t": [round(p.at * 1000.0) for p in points],
                "requests_per_s": {r: [p.requests.get(r, 0.0) for p in points] for r in routes},
                "errors_per_s": {c: [p.errors[c] for p in points] for c in ("4xx", "5xx")},
                "latency_ms": {q: [p.latency[q] for p in points] for q in ("p50", "p95", "p99")},
                "fallbacks_per_s": {k: [p.fallbacks.get(k, 0.0) for p in points] for k in kinds},
                "coverage": [p.coverage for p in points], **self.totals(snaps)}

    def totals(self, snaps: list[Snapshot] | None = None) -> dict[str, Any]:
        """Counts and latency quantiles between the oldest and the newest snapshot held."""
        if snaps is None:
            with self._lock:
                snaps = [self.samples[0], self.samples[-1]] if self.samples else []
        if len(snaps) < 2:
            return {"totals": {"requests": 0, "errors_4xx": 0, "errors_5xx": 0, "fallbacks": 0, "error_rate": None,
                               "p50_ms": None, "p99_ms": None, "seconds": 0.0}, "routes": [], "variants": {}}
        first, last = snaps[0], snaps[-1]
        req = {k: n for k, n in _minus(last.requests, first.requests).items() if n > 0 and not _own(k[0])}
        buckets = {k: _minus(b, first.buckets.get(k, {})) for k, b in last.buckets.items() if not _own(k[0])}
        total = sum(req.values())
        e4 = sum(n for (_, s), n in req.items() if s.startswith("4"))
        e5 = sum(n for (_, s), n in req.items() if s.startswith("5"))
        merged = _merge_buckets(buckets.values())
        routes = []
        for route in sorted({r for r, _ in req}):
            n = sum(v for (r, _), v in req.items() if r == route)
            errs = sum(v for (r, s), v in req.items() if r == route and s[:1] in ("4", "5"))
            lat = _merge_buckets(b for (r, _), b in buckets.items() if r == route)
            routes.append({"route": route, "requests": int(n), "errors": int(errs),
                           "p50_ms": _ms(quantile(0.5, lat)), "p99_ms": _ms(quantile(0.99, lat))})
        variants = {}
        for variant in sorted({v for _, v in buckets}):
            lat = _merge_buckets(b for (_, v), b in buckets.items() if v == variant)
            count = max(lat.values()) if lat else 0.0
            if count > 0:
                variants[variant] = {"requests": int(count), "p99_ms": _ms(quantile(0.99, lat))}
        return {"totals": {"requests": int(total), "errors_4xx": int(e4), "errors_5xx": int(e5),
                           "fallbacks": int(sum(_minus(last.fallbacks, first.fallbacks).values())),
                           "error_rate": e5 / total if total else None,
                           "p50_ms": _ms(quantile(0.5, merged)), "p99_ms": _ms(quantile(0.99, merged)),
                           "seconds": round(last.at - first.at, 3)},
                "routes": routes, "variants": variants}
