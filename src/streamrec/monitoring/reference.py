"""The training-time reference of monitoring, saved by every training run beside its model: the scores of the top-k
lists serving answers with for a sample of users (scores.parquet: user_id, rank, score) and, with the event store, the
feature snapshot of that moment (users.parquet, titles.parquet), under DATA_DIR/monitoring/references/MODEL_DIR_NAME/
with reference.json (model, kind, registry version, time). `streamrec monitor` picks the reference of the model that
served recently, so it compares serving against training without being handed two snapshots."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamrec.errors import DataError
from streamrec.logs import get_logger

log = get_logger(__name__)

SCORES_FILE = "scores.parquet"
META_FILE = "reference.json"
SCORES_SCHEMA = pa.schema([("user_id", pa.string()), ("rank", pa.int32()), ("score", pa.float64())])
REFERENCE_K = 10  # the top of each list, as the lists served are (their first 10 titles are compared)
REFERENCE_USERS = 2000


@dataclass(frozen=True)
class Reference:
    """One saved reference: where it is and what it describes."""

    folder: str
    model: str  # the model folder's name (what serving reports as its version when it serves a folder)
    kind: str  # 'pipeline' or a model name
    version: str | None  # registry version, when registered
    created: str  # ISO time (UTC)
    scores: int  # scores saved
    features: bool  # users.parquet and titles.parquet saved

    @property
    def path(self) -> Path:
        return Path(self.folder)

    def matches(self, served_version: str | None) -> bool:
        return served_version is not None and served_version in {self.version, self.model}


def references_dir(data_dir: Path | str) -> Path:
    return Path(data_dir) / "monitoring" / "references"


def _write(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def save_reference(data_dir: Path | str, model_dir: Path | str, kind: str, scores: pa.Table | None,
                   version: int | str | None = None, con: Any = None) -> Reference:
    """Write the reference of the model saved in `model_dir`: its `scores` (SCORES_SCHEMA) and, with an event store
    connection `con`, the feature snapshot as of its newest event. Returns what was written."""
    from streamrec.features.snapshot import build_snapshot

    folder = references_dir(data_dir) / Path(model_dir).name
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    if scores is not None:
        _write(scores.cast(SCORES_SCHEMA), folder / SCORES_FILE)
        n = scores.num_rows
    features = False
    if con is not None:
        try:
            build_snapshot(con, folder)
            features = True
        except DataError as exc:  # no events to snapshot: the scores alone are the reference
            log.warning("monitoring.reference_without_features", folder=str(folder), reason=str(exc))
    ref = Reference(str(folder), Path(model_dir).name, kind, None if version is None else str(version),
                    datetime.now(UTC).isoformat(timespec="microseconds"), n, features)
    (folder / META_FILE).write_text(json.dumps(asdict(ref), indent=1))
    log.info("monitoring.reference_saved", folder=str(folder), scores=n, features=features)
    return ref


def list_references(data_dir: Path | str) -> list[Reference]:
    """Every saved reference, newest first."""
    out = []
    for meta in references_dir(data_dir).glob(f"*/{META_FILE}"):
        try:
            out.append(Reference(**json.loads(meta.read_text())))
        except (ValueError, TypeError) as exc:
            raise DataError(str(meta), f"not a monitoring reference: {exc}") from exc
    return sorted(out, key=lambda r: r.created, reverse=True)


def find_reference(data_dir: Path | str, served_version: str | None = None) -> Reference | None:
    """The reference of the model that served (`served_version`: registry version or model folder name), else the
    newest one; None when no training run saved one."""
    refs = list_references(data_dir)
    return next((r for r in refs if r.matches(served_version)), refs[0] if refs else None)


def read_scores(ref: Reference | Path) -> np.ndarray:
    """The scores of a reference (or of a folder holding scores.parquet); empty when it has none."""
    path = (ref.path if isinstance(ref, Reference) else Path(ref)) / SCORES_FILE
    if not path.exists():
        return np.empty(0)
    try:
        return pq.read_table(path, columns=["score"]).column("score").to_numpy(zero_copy_only=False)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(str(path), f"cannot read the reference scores: {exc}") from exc


def _sample(user_ids: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(user_ids) <= n:
        return user_ids
    return np.sort(np.random.default_rng(seed).choice(user_ids, n, replace=False))


def model_scores(model: Any, data: Any, k: int = REFERENCE_K, users: int = REFERENCE_USERS,
                 seed: int = 0) -> pa.Table:
    """A single model's top-k scores for a sample of `users` users of `data` (Interactions), seen titles excluded as
    serving excludes them; users the model falls back for (popular titles) are left out."""
    from streamrec.training.batch import recommend_batch

    sample = _sample(np.asarray(data.user_ids, dtype=object), users, seed)
    table = recommend_batch(model, data, sample, k)
    table = table.filter(pc.equal(table["source"], "model"))
    return table.select(["user_id", "rank", "score"]).cast(SCORES_SCHEMA)


def ranker_scores(ranker: Any, features: np.ndarray, rows: np.ndarray, user_ids: np.ndarray,
                  k: int = REFERENCE_K, users: int = REFERENCE_USERS, seed: int = 0) -> pa.Table:
    """The ranker's top-k scores per user over candidate feature rows (`rows`: the user row of each candidate), for a
    sample of `users` users: the distribution a served ranked list's scores come from."""
    scores = np.asarray(ranker.score(features), dtype=np.float64)
    chosen = _sample(np.unique(rows), users, seed)
    keep = np.isin(rows, chosen)
    r, s = rows[keep], scores[keep]
    order = np.lexsort((-s, r))  # by user, best first
    r, s = r[order], s[order]
    starts = np.searchsorted(r, r, side="left")
    rank = np.arange(len(r)) - starts + 1
    top = rank <= k
    return pa.table({"user_id": pa.array(np.asarray(user_ids, dtype=object)[r[top]].astype(str), pa.string()),
                     "rank": pa.array(rank[top], pa.int32()), "score": pa.array(s[top], pa.float64())})


def save_training_reference(settings: Any, model_dir: Path | str, kind: str, version: int | str | None,
                            user_ids: Any, offline_scores: Callable[[], pa.Table], con: Any = None) -> Reference | None:
    """The reference of a model a training run just saved. With the event store (`con` when the caller holds it open,
    else the settings' duckdb store opened read-only, when it exists): the scores serving answers with
    (`serving_scores` for a sample of `user_ids`) and the feature snapshot; without one (a model trained from a CSV
    file), or when serving answers every sampled user by a fallback: `offline_scores()`. Never fails the training: a
    problem is logged and None returned."""
    from streamrec.errors import StreamrecError

    def save(store_con: Any) -> Reference:
        table = serving_scores(settings, store_con, model_dir, user_ids, seed=settings.seed) if store_con else None
        if table is None or table.num_rows == 0:
            table = offline_scores()
        return save_reference(settings.data_dir, model_dir, kind, table, version, store_con)

    try:
        if con is None and settings.event_store.type == "duckdb" and settings.event_store_path.exists():
            from streamrec.storage.events import open_event_store

            with open_event_store(settings, read_only=True) as store:
                return save(store.con)
        return save(con)
    except (StreamrecError, OSError, ValueError) as exc:
        log.warning("monitoring.reference_failed", model_dir=str(model_dir), error=str(exc)[:300])
        return None


def serving_scores(settings: Any, con: Any, model_dir: Path | str, user_ids: Any, k: int = REFERENCE_K,
                   users: int = 500, seed: int = 0) -> pa.Table:
    """The scores serving itself would answer with: the model in `model_dir` loaded as serving loads it, over a world
    read from the event store on `con` (an in-memory online store and bus; the request clock just after the newest
    event), asked for the lists (k titles, as GET /v1/users/{id}/recommendations answers) of a sample of `users` of
    `user_ids`. Lists served by a fallback are left out, as the served-lists drift leaves them out."""
    from datetime import timedelta as _td

    from streamrec.events.bus import InProcessEventBus
    from streamrec.features import events_relation
    from streamrec.features.materialize import materialize
    from streamrec.serving import answers
    from streamrec.serving.models import model_loader
    from streamrec.serving.world import build_world
    from streamrec.settings import MemoryOnlineStoreConfig
    from streamrec.storage.online import open_online_store

    served_settings = settings.model_copy(update={"serving": settings.serving.model_copy(
        update={"clock": "data", "land_events": False, "warm_pools": 0})})
    world = build_world(con, served_settings, open_online_store(MemoryOnlineStoreConfig()), InProcessEventBus())
    events = events_relation(con)
    at = world.clock()
    materialize(con, world.store, at, events, [], histories=True)
    model = model_loader(served_settings, world,
                         lambda defs: materialize(con, world.store, at, events, defs, histories=False))(str(model_dir))
    rows: dict[str, list] = {"user_id": [], "rank": [], "score": []}
    for user in _sample(np.asarray(user_ids, dtype=object), users, seed).tolist():
        answer = answers.one_list(world, model, str(user), k, None, (), False, at=at + _td(seconds=1))
        if answer.fallback is None:
            for rank, score in enumerate(answer.scores, 1):
                if score is not None:
                    rows["user_id"].append(str(user)), rows["rank"].append(rank), rows["score"].append(float(score))
    return pa.table(rows, schema=SCORES_SCHEMA)
