"""Experiments in serving: each list request is assigned (by hashing; see streamrec.experiments.assign), answered with
its variant's model and pipeline settings, attributed (experiment and variant in the body and headers), and its exposure
logged. Outcome events posted to /v1/events reach the same log through the event bus."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from datetime import datetime

from streamrec.errors import StreamrecError
from streamrec.experiments.assign import Assigner, Assignment
from streamrec.experiments.config import VariantConfig
from streamrec.experiments.exposure import ExposureLog
from streamrec.logs import get_logger
from streamrec.serving.models import Loader, ModelHolder, ServedModel, ReloadFailed
from streamrec.serving.world import ServingWorld
from streamrec.settings import Settings

log = get_logger(__name__)

DEFAULT_VARIANT = "default"  # the variant of a request in no experiment
# what answered the current request, for the middleware's headers (a dict the route fills in, so it is seen across
# the task boundaries of the framework)
ATTRIBUTION: contextvars.ContextVar[dict | None] = contextvars.ContextVar("attribution", default=None)


@dataclass(frozen=True)
class Route:
    """How one request is answered: the assignment (None: no experiment), the model, and the variant's diversity."""

    assignment: Assignment | None
    model: ServedModel | None
    diversity: float | None = None

    @property
    def experiment(self) -> str | None:
        return self.assignment.experiment if self.assignment else None

    @property
    def variant(self) -> str:
        return self.assignment.variant if self.assignment else DEFAULT_VARIANT


class Experiments:
    def __init__(self, settings: Settings, world: ServingWorld, loader: Loader):
        self.world = world
        self.assigner = Assigner(settings.experiments)
        self.variants: dict[tuple[str, str], VariantConfig] = {
            (e.name, v.name): v for e in settings.experiments for v in e.variants}
        refs = sorted({v.model for v in self.variants.values() if v.model})
        self.holders = {ref: ModelHolder(loader) for ref in refs}
        self.log = ExposureLog(settings.data_dir / "experiments" / "exposures", self.assigner,
                               profile=lambda user: (world.region_of(user, None), world.signups.get(user)))

    def load_models(self) -> None:
        """Load every variant's model; one that fails is named in /readyz and its users get the served model."""
        for ref, holder in self.holders.items():
            try:
                holder.load(ref)
            except (ReloadFailed, StreamrecError):
                pass

    def problems(self) -> list[str]:
        return [f"experiment variant model: {h.problem}" for h in self.holders.values() if h.problem]

    def route(self, user_id: str, region: str | None, at: datetime, default: ServedModel | None) -> Route:
        """The user's first experiment (configuration order) decides the model and settings of the list."""
        found = self.assigner.assign(user_id, at, self.world.region_of(user_id, region),
                                     self.world.signups.get(user_id))
        if not found:
            return Route(None, default)
        a = found[0]
        variant = self.variants[(a.experiment, a.variant)]
        model = default
        if variant.model:
            model = self.holders[variant.model].current or default
        return Route(a, model, variant.diversity)

    def exposed(self, route: Route, user_id: str, at: datetime, request_id: str | None) -> None:
        if route.assignment is not None:
            self.log.exposure(at, user_id, route.assignment.experiment, route.assignment.variant, request_id)

    def close(self) -> None:
        self.log.close()
