"""The app factory: `create_app(settings)` reads the stores and loads the model; `create_app(settings, state=...)`
serves a prepared state (tests). Every response carries X-Request-ID, X-Model-Version and X-Experiment-Variant."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid

from fastapi import FastAPI

from streamrec.serving import errors, routes
from streamrec.logs import get_logger
from streamrec.monitoring.dashboard import Dashboard
from streamrec.serving.errors import REQUEST_ID, internal_error_body
from streamrec.serving.experiments import ATTRIBUTION, DEFAULT_VARIANT
from streamrec.serving.follow import AliasFollower
from streamrec.serving.schemas import VARIANT
from streamrec.serving.security import BodyLimit
from streamrec.serving.state import ServingState, build_state
from streamrec.settings import Settings

_GOOD_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
log = get_logger(__name__)


class RequestContext:
    """ASGI middleware: a request id (the caller's X-Request-ID when well formed, else a new one), attribution
    headers on every response, request counts by route template and status, and latency by route template and
    experiment variant."""

    def __init__(self, app, state: ServingState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"")
        request_id = given.decode() if _GOOD_ID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        shown: dict = {}
        shown_token = ATTRIBUTION.set(shown)
        began, status, started = time.perf_counter(), [500], [False]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
                current = self.state.holder.current
                version = shown["model_version"] if "model_version" in shown else (current.version if current else None)
                headers = list(message.get("headers", []))
                headers += [(b"x-request-id", request_id.encode()),
                            (b"x-model-version", (version or "none").encode()),
                            (b"x-experiment-variant", shown.get("variant", VARIANT).encode())]
                if shown.get("experiment"):
                    headers.append((b"x-experiment", shown["experiment"].encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # a bug: logged with its trace under the request id; the client gets only the id
            log.error("http.internal_error", request_id=request_id, path=scope.get("path"),
                      error=type(exc).__name__, exc_info=exc)
            if status[0] != 500 or started[0]:
                raise
            current = self.state.holder.current
            body = json.dumps(internal_error_body(current.version if current else None)).encode()
            await send_with_headers({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send_with_headers({"type": "http.response.body", "body": body})
        finally:
            REQUEST_ID.reset(token)
            ATTRIBUTION.reset(shown_token)
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.state.metrics.requests.labels(template, str(status[0])).inc()
            self.state.metrics.latency.labels(template, shown.get("variant") or DEFAULT_VARIANT).observe(
                time.perf_counter() - began)


def create_app(settings: Settings, state: ServingState | None = None) -> FastAPI:
    """The serving API over `state` (default: built from the settings' stores and model)."""
    state = state or build_state(settings)
    cfg = settings.serving
    dashboard = Dashboard(state)
    follower = AliasFollower(state, cfg.follow_alias_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        dashboard.sampler.start()  # the dashboard's time series: a snapshot of the metrics every few seconds
        follower.start()  # a newly promoted champion reaches every process by itself (serving.follow_alias_s)
        yield
        follower.stop()
        dashboard.sampler.stop()
        state.close()  # what the exposure and served-lists logs still buffer is written on shutdown

    app = FastAPI(title="streamrec", version="1", description="Recommendations for a video-streaming service: "
                  "lists, homepages, similar titles, events in, models out.", lifespan=lifespan)
    app.state.serving = state
    errors.install(app)
    routes.install(app, state)
    app.state.dashboard = dashboard
    app.state.follower = follower
    dashboard.install(app)
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Content-Type", "X-Request-ID"])
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    app.add_middleware(RequestContext, state=state)
    log.info("serving.ready", model=state.holder.current.version if state.holder.current else None,
                              problem=state.holder.problem)
    return app


SETTINGS_VARIABLE = "_STREAMREC_SERVE_SETTINGS"  # the parent's merged settings, for `serve --workers N`


def app_from_environment() -> FastAPI:
    """An app from the settings `streamrec serve` passed in SETTINGS_VARIABLE (else the environment and
    streamrec.toml): uvicorn's factory for several workers."""
    import os

    from streamrec.logs import configure_from_settings
    from streamrec.settings import load_settings, restore_settings

    passed = os.environ.get(SETTINGS_VARIABLE)
    settings = restore_settings(passed) if passed else load_settings()
    configure_from_settings(settings.logging)
    return settle(create_app(settings))


def settle(app: FastAPI) -> FastAPI:
    """Move everything built at start (catalog, models, warm pools) out of the garbage collector's reach: a full
    collection over those millions of objects would otherwise stall requests for tens of milliseconds at random."""
    import gc

    gc.collect()
    gc.freeze()
    return app
