"""Everything a running API holds: settings, the world (catalog, online store, popularity, clock, events path),
the model holder, metrics, and the registry (opened on first use)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from streamrec.errors import StreamrecError
from streamrec.events.bus import EventBus
from streamrec.logs import get_logger
from streamrec.monitoring.served import ServedLog, served_folder
from streamrec.serving.experiments import Experiments
from streamrec.serving.metrics import ServingMetrics
from streamrec.serving.models import ModelHolder, ReloadFailed, model_loader
from streamrec.serving.world import ServingWorld, build_world
from streamrec.settings import Settings
from streamrec.storage.online import OnlineStore

log = get_logger(__name__)


@dataclass
class ServingState:
    settings: Settings
    world: ServingWorld
    holder: ModelHolder
    metrics: ServingMetrics = field(default_factory=ServingMetrics)
    experiments: Experiments | None = None
    served: ServedLog | None = None  # the sample of answered lists for `streamrec monitor` (None: off)
    _registry: Any = None
    _registry_lock: threading.Lock = field(default_factory=threading.Lock)

    def registry(self):
        """The model registry (MLflow), opened once on first use."""
        with self._registry_lock:
            if self._registry is None:
                from streamrec.registry import open_registry

                self._registry = open_registry(self.settings)
            return self._registry

    def log_outcomes(self, events) -> None:
        """Bus subscriber: outcome events into the current experiments' exposure log."""
        current = self.experiments
        if current is not None and current.assigner.experiments:
            current.log(events)

    def close(self) -> None:
        """Write what the exposure and served-lists logs still buffer, and stop the outbox's thread (its held batches
        stay on disk for the next start), on shutdown."""
        if self.world.outbox is not None:
            self.world.outbox.close()
        if self.experiments is not None:
            self.experiments.close()
        if self.served is not None:
            self.served.close()

    def set_experiments(self, experiments: list) -> Experiments:
        """Replace the experiment definitions (validated; variant models loaded first), swapped atomically; the old
        exposure log is flushed. Lasts until the process restarts: the settings file stays the source of truth.

        Raises:
            ConfigError: the definitions are inconsistent (repeated names, a layer's traffic over 1).
        """
        from streamrec.errors import ConfigError
        from streamrec.experiments.config import check_layers

        try:
            check_layers(list(experiments))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        settings = self.settings.model_copy(update={"experiments": list(experiments)})
        new = Experiments(settings, self.world, self.holder.loader)
        new.load_models()
        old, self.experiments = self.experiments, new
        if old is not None:
            old.close()
        log.info("experiments.replaced", experiments=[e.name for e in experiments])
        return new

    def reload(self, ref: str | None = None, log_failure: bool = True):
        """Load `ref` (default: the configured model) and swap it in; counted and shown in metrics.

        Raises:
            ReloadFailed: the old model (if any) is kept.
        """
        try:
            served = self.holder.load(ref or self.settings.serving.model, log_failure)
        except ReloadFailed:
            self.metrics.reloads.labels("failed").inc()
            raise
        self.metrics.reloads.labels("ok").inc()
        self.metrics.served(served.version, served.kind)
        return served


def build_state(settings: Settings, store: OnlineStore | None = None, bus: EventBus | None = None,
                load_model: bool = True) -> ServingState:
    """Read the event store (read-only, then closed), fill the online store's histories, and load the configured
    model. A model that cannot be loaded leaves the API up, serving trending titles, with /readyz degraded."""
    from streamrec.features import events_relation
    from streamrec.features.materialize import materialize
    from streamrec.storage.events import open_event_store

    with open_event_store(settings, read_only=True) as events_store:
        con = events_store.con
        world = build_world(con, settings, store, bus)
        materialize(con, world.store, world.clock(), events_relation(con), [], histories=True)

    def fill_features(definitions: list) -> None:
        with open_event_store(settings, read_only=True) as again:
            materialize(again.con, world.store, world.clock(), events_relation(again.con), definitions,
                        histories=False)

    loader = model_loader(settings, world, fill_features)
    state = ServingState(settings, world, ModelHolder(loader))
    state.experiments = Experiments(settings, world, loader)
    if settings.serving.served_sample > 0:
        state.served = ServedLog(served_folder(settings.data_dir), settings.serving.served_sample)
    if world.apply_live:  # the worker beside the API: its counts on this app's /metrics
        state.metrics.embedded_worker(world.applier, world.bus)
    world.bus.subscribe(state.log_outcomes)
    if load_model:
        try:
            state.reload()
        except StreamrecError:
            pass  # logged and kept as the holder's problem; /readyz reports it
        state.experiments.load_models()
    return state
