"""The served model and its hot swap.

A `ServedModel` is immutable once built: a request takes `holder.current` once and uses that object to the end,
so a reload that swaps the reference meanwhile cannot fail it (zero failed requests). A reload builds the new model
completely (download, checksums, load, warm-up request) before the swap; when any step fails, the old model stays
and the failure is kept as the holder's `problem` (shown by /readyz and logged).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy import sparse

from streamrec.errors import StreamrecError
from streamrec.logs import get_logger
from streamrec.models import Recommender
from streamrec.pipeline.serving import ENGAGED, OnlinePipeline, RankedList
from streamrec.serving.world import ServingWorld

log = get_logger(__name__)


class SingleModelServer:
    """A single model as champion: top-k scored from the user's fresh history (folded in), filtered by the catalog."""

    def __init__(self, model: Recommender, world: ServingWorld):
        self.model, self.world = model, world
        self.item_ids = np.asarray(model.item_ids_, dtype=object)
        self.index = {item: i for i, item in enumerate(self.item_ids.tolist())}
        self.to_catalog = np.array([world.filter.index.get(i, -1) for i in self.item_ids.tolist()], dtype=np.int64)

    def history_row(self, user_id: str, at: datetime) -> sparse.csr_matrix:
        cols = sorted({self.index[e.item_id] for e in self.world.store.history(user_id)
                       if e.ts < at and e.type in ENGAGED and e.item_id in self.index})
        return sparse.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols), np.int64), cols)),
                                 shape=(1, len(self.item_ids)))

    def recommend(self, user_id: str, k: int = 10, at: datetime | None = None, region: str | None = None,
                  exclude: Iterable[str] = (), explain_items: bool = False,
                  diversity: float | None = None, device: str | None = None) -> RankedList:
        """`device` is accepted for the same signature as the pipeline; a single model does not use context."""
        at = at or datetime.now(UTC).replace(tzinfo=None)
        row = self.history_row(user_id, at)
        scores = np.asarray(self.model.score(row, np.full(1, -1, np.int64)), dtype=np.float64).reshape(-1)
        allowed, _ = self.world.filter.allowed(self.world.context(user_id, region, list(exclude)), at)
        ok = (self.to_catalog >= 0) & allowed[np.maximum(self.to_catalog, 0)] & np.isfinite(scores)
        cols = np.flatnonzero(ok)
        best = cols[np.argsort(-scores[cols], kind="stable")[:k]]
        name = self.model.name
        return RankedList(user_id, self.item_ids[best].tolist(), scores[best].tolist(), [name] * len(best))


@dataclass(frozen=True)
class ServedModel:
    """One loaded model: `version` (registry version, or the folder's name), `kind` ('pipeline' or a model name)."""

    version: str
    kind: str
    ref: str
    pipeline: OnlinePipeline | None = None
    single: SingleModelServer | None = None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def recommend(self, user_id: str, **kwargs) -> RankedList:
        return (self.pipeline or self.single).recommend(user_id, **kwargs)  # type: ignore[union-attr]

    def scorer(self) -> Recommender:
        """The model that scores title-to-title similarity: the pipeline's EASE (else its first source)."""
        if self.single is not None:
            return self.single.model
        models = self.pipeline.bundle.models  # type: ignore[union-attr]
        return models.get("ease") or next(iter(models.values()))


class ReloadFailed(StreamrecError):
    """A new model could not be loaded; the old one is still served."""


Loader = Callable[[str], ServedModel]


class ModelHolder:
    """The current model, swapped atomically; reloads run one at a time."""

    def __init__(self, loader: Loader):
        self.loader = loader
        self._current: ServedModel | None = None
        self._reloading = threading.Lock()
        self.problem: str | None = None  # why the last load failed (None: it did not)

    @property
    def current(self) -> ServedModel | None:
        return self._current

    def load(self, ref: str, log_failure: bool = True) -> ServedModel:
        """Load `ref` and swap it in; `log_failure=False` leaves logging a failure to the caller (a caller that
        retries logs each failing version once).

        Raises:
            ReloadFailed: the model could not be loaded (the old one, if any, is kept).
        """
        with self._reloading:
            try:
                new = self.loader(ref)
            except Exception as exc:
                kept = self._current.version if self._current else None
                self.problem = f"loading model '{ref}' failed ({type(exc).__name__}: {exc}); " + \
                    (f"still serving version {kept}" if kept else "no model loaded: serving trending titles")
                if log_failure:
                    log.error("model.load_failed", ref=ref, error=type(exc).__name__, detail=str(exc)[:300],
                              kept=kept)
                raise ReloadFailed(self.problem) from exc
            old, self._current, self.problem = self._current, new, None
        log.info("model.loaded", ref=ref, version=new.version, kind=new.kind,
                 replaced=old.version if old else None)
        return new


def model_loader(settings, world: ServingWorld, fill_features: Callable[[list], None]) -> Loader:
    """Loads a registry alias/version or a saved folder (bundle or single model), checksums verified, into a
    ServedModel over `world`; `fill_features(definitions)` materializes a bundle's features first."""

    def load(ref: str) -> ServedModel:
        from streamrec.models import load_model
        from streamrec.pipeline.bundle import PipelineBundle, is_bundle

        from streamrec.registry import model_folder

        with tempfile.TemporaryDirectory(prefix="streamrec-model-") as tmp:
            folder, version = model_folder(settings, ref, tmp)
            if is_bundle(folder):
                bundle = PipelineBundle.load(folder)
                fill_features(bundle.definitions)
                cfg = settings.serving
                pipeline = OnlinePipeline(bundle, world.catalog, world.store, timedelta(seconds=cfg.max_feature_age_s),
                                          settings.preprocess, ranked_ttl_s=cfg.ranked_ttl_s,
                                          pool_size=cfg.ranked_pool, name=version)
                served = ServedModel(version, "pipeline", ref, pipeline=pipeline)
            else:
                model = load_model(folder)
                served = ServedModel(version, model.name, ref, single=SingleModelServer(model, world))
        served.recommend("__warm_up__", k=1, at=world.clock())  # a model that cannot answer is not swapped in
        if served.pipeline is not None and settings.serving.ranked_ttl_s > 0 and settings.serving.warm_pools:
            warm_pools(served.pipeline, world, settings.serving.warm_pools)
        return served

    return load


def warm_pools(pipeline: OnlinePipeline, world: ServingWorld, n: int) -> int:
    """The batch refresh path: rank and keep the pools of the `n` most recently active profiles for requests without
    region or device (the context most requests carry). Returns how many were ranked."""
    import time

    began = time.perf_counter()
    last: list[tuple[datetime, str]] = []
    for user in world.profiles:
        history = world.store.history(user)
        if history:
            last.append((history[-1].ts, user))
    last.sort(reverse=True)
    at = world.clock()
    for _, user in last[:n]:  # each pool aged by up to half the TTL: they expire over its second half, not at once
        pipeline.refresh(user, at, region=world.region_of(user, None), age_s=pipeline.ranked_ttl_s / 2 * _share(user))
    done = min(n, len(last))
    log.info("pools.warmed", users=done, seconds=round(time.perf_counter() - began, 2))
    return done


def _share(user: str) -> float:
    """A stable number in [0, 1) per user (crc32 of the id)."""
    import zlib

    return zlib.crc32(user.encode()) / 2**32
