"""The dashboard's routes: the pages (/dashboard/PAGE), their JSON (/dashboard/api/PAGE), the static files; and the
sampler that keeps the overview's time series, started and stopped with the app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib import resources
from string import Template
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from streamrec.monitoring.dashboard.timeseries import Sampler

PAGES = {"overview": "Overview", "models": "Models", "experiments": "Experiments", "data": "Data"}
PREFIX = "/dashboard"


def _text(name: str) -> str:
    return resources.files(__package__).joinpath("pages", name).read_text(encoding="utf-8")


class Dashboard:
    """The dashboard of one serving app: its sampler, the page builders, and a short cache of their payloads (the
    registry, the exposure log and the event store are read at most once per `ttl_s` per page).

    Args:
        state: the app's ServingState.
        interval_s: seconds between two snapshots of the metrics.
        capacity: snapshots kept (720 × 5 s: the last hour).
        ttl_s: how long the models, experiments and data payloads are reused.
    """

    def __init__(self, state: Any, interval_s: float = 5.0, capacity: int = 720, ttl_s: float = 15.0):
        self.state, self.ttl_s = state, ttl_s
        self.sampler = Sampler(self._registry, interval_s, capacity)
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._locks = {page: threading.Lock() for page in PAGES}
        self.builders: dict[str, Callable[[], dict[str, Any]]] = {
            "overview": self.overview, "models": self.models, "experiments": self.experiments, "data": self.data}

    def _registry(self) -> CollectorRegistry:
        metrics = self.state.metrics
        if not metrics.multiprocess:
            return metrics.registry
        from prometheus_client import multiprocess  # every server process's values, as /metrics renders them

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=metrics.multiprocess)
        return registry

    # --- payloads ----------------------------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        from streamrec.monitoring.dashboard.jsonable import jsonable
        from streamrec.monitoring.dashboard.models import _served

        holder = self.state.holder
        return jsonable({**self.sampler.series(), "served": _served(holder.current), "problem": holder.problem,
                         "started_at": self.sampler.started_at})

    def models(self) -> dict[str, Any]:
        from streamrec.monitoring.dashboard import models

        return models.build(self.state)

    def experiments(self) -> dict[str, Any]:
        from streamrec.monitoring.dashboard import experiments

        current = self.state.experiments
        configured = list(current.assigner.experiments) if current is not None else []
        latency = {v: x["p99_ms"] for v, x in self.sampler.totals()["variants"].items()}
        return experiments.build(configured, self.state.settings.data_dir / "experiments" / "exposures", latency)

    def data(self) -> dict[str, Any]:
        from streamrec.monitoring.dashboard import data

        current = self.state.holder.current
        return data.build(self.state.settings, current.version if current else None)

    def payload(self, page: str) -> dict[str, Any]:
        """The JSON of `page` (overview fresh each time; the others cached for `ttl_s`)."""
        if page == "overview":
            return self.overview()
        with self._locks[page]:
            cached = self._cache.get(page)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            value = self.builders[page]()
            self._cache[page] = (time.monotonic() + self.ttl_s, value)
            return value

    # --- routes ------------------------------------------------------------------------------------------------
    def page_html(self, page: str) -> str:
        nav = "".join(f'<a href="{name}"{here}>{title}</a>' for name, title in PAGES.items()
                      for here in [' class="here"' if name == page else ""])
        return Template(_text("layout.html")).substitute(title=PAGES[page], page=page, nav=nav,
                                                         body=_text(f"{page}.html"))

    def install(self, app: FastAPI) -> None:
        """Mount the pages, their JSON and the static files under /dashboard (not in the OpenAPI schema)."""
        pages = {name: self.page_html(name) for name in PAGES}  # rendered once: the pages are static

        @app.get(PREFIX, include_in_schema=False)
        def dashboard_home(request: Request) -> RedirectResponse:
            return RedirectResponse(f"{request.scope.get('root_path', '')}{PREFIX}/overview")

        @app.get(PREFIX + "/api/{page}", include_in_schema=False)
        def dashboard_api(page: str) -> JSONResponse:
            if page not in PAGES:
                raise HTTPException(404, f"no dashboard data '{page}' (pages: {', '.join(PAGES)})")
            return JSONResponse(self.payload(page), headers={"Cache-Control": "no-store"})

        @app.get(PREFIX + "/{page}", include_in_schema=False, response_class=HTMLResponse)
        def dashboard_page(page: str) -> HTMLResponse:
            if page not in PAGES:
                raise HTTPException(404, f"no dashboard page '{page}' (pages: {', '.join(PAGES)})")
            return HTMLResponse(pages[page])

        static = resources.files(__package__).joinpath("static")
        app.mount(PREFIX + "/static", StaticFiles(directory=str(static)), name="dashboard-static")
