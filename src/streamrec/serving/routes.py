"""The versioned endpoints. Handlers are thin: they read the current model once, call serving.answers, count
fallbacks and shape the response; limits come from settings.serving.

Lists, homepages and similar titles are `async def`: they compute on the event loop, one request at a time per
worker process. Their work is CPU-bound (dictionary reads and numpy), so threads would only take turns on the GIL,
and under load the hand-offs cost more than the work (a py-spy profile of 2 workers: over half of the busy samples
were thread pool threads waiting to signal the loop or each other). Admin and registry calls, which wait on disk and
the registry, stay in the thread pool."""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Response

from streamrec.errors import BackendError, NotFound, ValidationError
from streamrec.serving import answers
from streamrec.serving.metrics import CONTENT_TYPE
from streamrec.serving.models import ServedModel
from streamrec.serving.schemas import (
    VARIANT,
    ErrorBody,
    EventBatch,
    EventsAccepted,
    ClockRequest,
    ClockSet,
    ExperimentDefinitions,
    ExperimentList,
    Health,
    HomePage,
    Models,
    Promoted,
    PromoteRequest,
    Ready,
    Recommendations,
    RegistryVersion,
    Rejected,
    ReloadRequest,
    Row,
    ServedInfo,
    Similar,
    Title,
)
from streamrec.serving.errors import REQUEST_ID
from streamrec.serving.experiments import ATTRIBUTION, Route
from streamrec.serving.security import key_checker
from streamrec.serving.state import ServingState

ERRORS = {code: {"model": ErrorBody} for code in (401, 404, 413, 422)}
ID = r"^[^\x00-\x1f\x7f]+$"  # ids: no control characters


def _attributed(model: ServedModel | None, route: Route | None = None) -> dict:
    """The attribution fields of a body; also what the middleware puts in the response headers."""
    version = model.version if model else None
    experiment, variant = (route.experiment, route.variant) if route is not None else (None, VARIANT)
    shown = ATTRIBUTION.get()
    if shown is not None:
        shown.update(model_version=version, experiment=experiment, variant=variant)
    return {"request_id": REQUEST_ID.get() or "", "model_version": version, "experiment": experiment,
            "variant": variant}


def _served(model: ServedModel | None) -> ServedInfo | None:
    return ServedInfo(version=model.version, kind=model.kind, ref=model.ref, loaded_at=model.loaded_at) \
        if model else None


def _titles(answer) -> list[Title]:
    texts = getattr(answer, "explanations", None) or [None] * len(answer.items)
    return [Title(item_id=i, score=s, source=src, explanation=t)
            for i, s, src, t in zip(answer.items, answer.scores, answer.sources, texts)]


def install(app: FastAPI, state: ServingState) -> None:
    cfg = state.settings.serving
    world, metrics = state.world, state.metrics
    if world.outbox is not None:
        world.outbox.on_published = metrics.events.labels("republished").inc
    catalog_size = len(world.filter.index)  # titles servable, for recommendation coverage
    admin = [Depends(key_checker(cfg.api_keys))]
    UserId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID, description="profile id")]
    Region = Annotated[str | None, Query(min_length=1, max_length=16, pattern=ID,
                                         description="region of the request (default: the profile's)")]
    v1 = APIRouter(prefix="/v1", responses=ERRORS)

    @v1.get("/users/{user_id}/recommendations", response_model=Recommendations, tags=["recommendations"])
    async def recommendations(
        user_id: UserId,
        region: Region = None,
        k: Annotated[int, Query(ge=1, le=cfg.max_k, description="titles in the list")] = 10,
        device: Annotated[str | None, Query(min_length=1, max_length=32, pattern=ID)] = None,
        exclude: Annotated[list[str], Query(max_length=cfg.max_exclude, description="title ids not to show")] = [],
        explain: Annotated[bool, Query(description="say why each title is there")] = False,
    ) -> Recommendations:
        """One ranked list for a user (unknown users get cold-start titles by region and popularity), from the
        model and settings of the user's experiment variant, if any."""
        at = world.clock()
        experiments = state.experiments
        route = experiments.route(user_id, region, at, state.holder.current)
        answer = answers.one_list(world, route.model, user_id, k, region, exclude, explain, at=at, device=device,
                                  diversity=route.diversity)
        experiments.exposed(route, user_id, at, REQUEST_ID.get())
        metrics.fallback(answer.fallback)
        metrics.counts(answer.counts)
        metrics.recommended(answer.items, catalog_size)
        if state.served is not None:
            state.served.record(at, REQUEST_ID.get(), "list", route.model.version if route.model else None,
                                route.experiment, route.variant, answer.fallback, answer.items, answer.scores)
        return Recommendations(**_attributed(route.model, route), user_id=user_id,
                               region=world.region_of(user_id, region), fallback=answer.fallback,
                               items=_titles(answer))

    @v1.get("/users/{user_id}/home", response_model=HomePage, tags=["recommendations"])
    async def homepage(user_id: UserId, region: Region = None,
                 device: Annotated[str | None, Query(min_length=1, max_length=32, pattern=ID)] = None) -> HomePage:
        """A whole homepage: rows in an order chosen for the user, no title in two rows."""
        at = world.clock()
        experiments = state.experiments
        route = experiments.route(user_id, region, at, state.holder.current)
        rows, fallback, counts = answers.home(world, route.model, user_id, cfg.row_size, region, at=at, device=device,
                                              diversity=route.diversity)
        experiments.exposed(route, user_id, at, REQUEST_ID.get())
        metrics.fallback(fallback)
        metrics.counts(counts)
        for row in rows:
            metrics.recommended(row.items, catalog_size)
            if state.served is not None:
                state.served.record(at, REQUEST_ID.get(), f"home:{row.id}", route.model.version if route.model
                                    else None, route.experiment, route.variant, fallback, row.items, row.scores)
        return HomePage(**_attributed(route.model, route), user_id=user_id, region=world.region_of(user_id, region),
                        fallback=fallback, rows=[Row(id=r.id, title=r.title, items=_titles(r)) for r in rows])

    @v1.get("/titles/{item_id}/similar", response_model=Similar, tags=["recommendations"])
    async def similar(item_id: Annotated[str, Path(min_length=1, max_length=128, pattern=ID)], region: Region = None,
                k: Annotated[int, Query(ge=1, le=cfg.max_k)] = 10) -> Similar:
        """Titles like one title, available in the region."""
        if item_id not in world.filter.index:
            raise NotFound("title", item_id, "not in the catalog")
        model = state.holder.current
        answer = answers.similar(world, model, item_id, k, region or world.default_region)
        metrics.fallback(answer.fallback)
        metrics.recommended(answer.items, catalog_size)
        return Similar(**_attributed(model), item_id=item_id, fallback=answer.fallback, items=_titles(answer))

    @v1.post("/events", response_model=EventsAccepted, status_code=202, dependencies=admin, tags=["events"])
    def post_events(batch: EventBatch) -> EventsAccepted:
        """A batch of events, validated exactly as ingestion validates, published to the event bus. Valid events
        are accepted; invalid ones are listed with their position, field and reason (all invalid: 422)."""
        if len(batch.events) > cfg.max_batch:
            raise ValidationError("body", None, "events", f"{len(batch.events)} events, over the limit of "
                                  f"{cfg.max_batch} (serving.max_batch)")
        checked = world.validator.check(batch.events)
        metrics.events.labels("rejected").inc(len(checked.rejected))
        for r in checked.rejected:
            metrics.rejected.labels(r.reason).inc()
        if checked.duplicates:
            metrics.events.labels("duplicate").inc(checked.duplicates)
        if batch.events and not checked.valid and checked.rejected:
            first = checked.rejected[0]
            raise ValidationError("body", None, f"events.{first.index}.{first.field}",
                                  f"{first.reason}: {first.detail}" + (f" (and {len(checked.rejected) - 1} more)"
                                                                       if len(checked.rejected) > 1 else ""))
        if world.landing is not None and checked.valid:  # stored for the event store before the answer says accepted
            try:
                world.landing(checked.valid)
            except OSError as exc:
                raise BackendError(f"events not accepted: writing them under {world.landing.folder} failed: "
                                   f"{exc}") from exc
        held = 0
        if world.outbox is None:
            world.bus.publish(checked.valid)
        else:  # the bus being down does not refuse the batch: it waits in the outbox, on disk
            try:
                held = 0 if world.outbox.publish(checked.valid) else len(checked.valid)
            except OSError as exc:
                raise BackendError(f"events not accepted: the event bus is down and holding them under "
                                   f"{world.outbox.folder} failed: {exc}") from exc
            if held:
                metrics.events.labels("held").inc(held)
        metrics.events.labels("accepted").inc(len(checked.valid))
        return EventsAccepted(**_attributed(state.holder.current), accepted=len(checked.valid), held=held,
                              duplicates=checked.duplicates,
                              rejected=[Rejected(index=r.index, field=r.field, reason=r.reason, detail=r.detail)
                                        for r in checked.rejected])

    @v1.get("/models", response_model=Models, tags=["models"])
    def models() -> Models:
        """The served model, why the last load failed (if it did), and the registry's versions."""
        model = state.holder.current
        versions, problem = None, None
        try:
            versions = [RegistryVersion(version=v.version, aliases=list(v.aliases), model=v.model,
                                        metrics={k: float(x) for k, x in v.metrics.items()})
                        for v in state.registry().list_versions()]
        except Exception as exc:  # the registry being down does not fail this page
            problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        return Models(**_attributed(model), served=_served(model), problem=state.holder.problem, registry=versions,
                      registry_error=problem)

    @v1.post("/admin/reload", response_model=Models, dependencies=admin, tags=["admin"])
    def reload(request: Annotated[ReloadRequest, Body()] = ReloadRequest()) -> Models:
        """Load a model and swap it in without failing a request; on failure the old model stays (422)."""
        model = state.reload(request.model)
        return Models(**_attributed(model), served=_served(model), problem=None, registry=None)

    @v1.post("/admin/promote", response_model=Promoted, dependencies=admin, tags=["admin"])
    def promote(request: PromoteRequest) -> Promoted:
        """Make a registry version champion (and serve it unless reload=false)."""
        change = state.registry().promote(request.version)
        model = state.reload("champion") if request.reload else state.holder.current
        return Promoted(**_attributed(model), champion=change.champion, previous=change.previous_champion, served=_served(model))

    @v1.post("/admin/clock", response_model=ClockSet, dependencies=admin, tags=["admin"])
    def set_clock(body: ClockRequest) -> ClockSet:
        """Move the request clock of a server run with `serving.clock = "data"` (a simulation over HTTP drives the
        service's day); a wall clock is refused (422)."""
        world.clock.set(body.at)
        return ClockSet(**_attributed(state.holder.current), now=world.clock())

    @v1.get("/experiments", response_model=ExperimentList, tags=["experiments"])
    def list_experiments() -> ExperimentList:
        """The experiments being served (definitions as validated)."""
        return ExperimentList(**_attributed(state.holder.current), experiments=state.experiments.assigner.experiments)

    @v1.put("/admin/experiments", response_model=ExperimentList, dependencies=admin, tags=["admin"])
    def set_experiments(body: ExperimentDefinitions) -> ExperimentList:
        """Replace the experiment definitions in this process (validated; variant models loaded before the swap).
        The settings file stays the source of truth across restarts."""
        new = state.set_experiments(body.experiments)
        return ExperimentList(**_attributed(state.holder.current), experiments=new.assigner.experiments)

    app.include_router(v1)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process answers."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready, tags=["health"])
    def readyz() -> Ready:
        """ready: a model is served and its last load worked; degraded: serving, with the problem named."""
        model = state.holder.current
        reasons = [state.holder.problem] if state.holder.problem else []
        if model is None and not reasons:
            reasons.append("no model loaded: serving trending titles")
        reasons += state.experiments.problems()
        if world.outbox is not None and (held := world.outbox.problem()):
            reasons.append(held)
        store = world.store_degraded()
        if store:
            reasons.append(store + " (lists fall back to trending titles until it is back)")
        return Ready(status="degraded" if reasons else "ready", model_version=model.version if model else None,
                     reasons=reasons)

    @app.get("/metrics", tags=["health"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
    def metrics_page() -> Response:
        """Prometheus metrics."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

