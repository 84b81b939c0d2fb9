"""`evaluate`: fit each model on a split's train part, recommend for every test user over the full catalog with
seen items excluded, and measure accuracy (with bootstrap intervals and per-segment breakdowns), beyond-accuracy
metrics, training time and scoring latency."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError, DataError
from streamrec.evaluation import metrics as M
from streamrec.evaluation.bootstrap import Estimate, bootstrap_ci
from streamrec.evaluation.segments import Segments
from streamrec.evaluation.splits import Split
from streamrec.logs import get_logger
from streamrec.models.base import Recommender

log = get_logger(__name__)

ModelSpec = Recommender | tuple[str, Mapping[str, Any] | None]


@dataclass
class ModelResult:
    """One model's numbers. Metric keys are '<metric>@<k>' (e.g. 'ndcg@10'); `segments` maps a segment name to
    metric estimates at the main k; `vs_best` is the paired bootstrap estimate of (this − best) on the main metric."""

    name: str
    model: str
    config: dict[str, Any]
    fit_seconds: float
    metrics: dict[str, Estimate]
    segments: dict[str, dict[str, Estimate]]
    latency: dict[str, float]
    vs_best: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "config": self.config,
            "fit_seconds": self.fit_seconds,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "segments": {s: {k: v.to_dict() for k, v in m.items()} for s, m in self.segments.items()},
            "latency": self.latency,
            "vs_best": self.vs_best.to_dict() if self.vs_best else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelResult":
        return cls(
            name=data["name"],
            model=data["model"],
            config=dict(data["config"]),
            fit_seconds=data["fit_seconds"],
            metrics={k: Estimate.from_dict(v) for k, v in data["metrics"].items()},
            segments={s: {k: Estimate.from_dict(v) for k, v in m.items()} for s, m in data["segments"].items()},
            latency=dict(data["latency"]),
            vs_best=Estimate.from_dict(data["vs_best"]) if data.get("vs_best") else None,
        )


@dataclass
class EvaluationResult:
    """Everything `evaluate` measured; `to_json` / `load` round-trip it."""

    split: dict[str, Any]
    k: int
    ks: tuple[int, ...]
    n_users: int
    n_items: int
    counts: dict[str, int]
    settings: dict[str, Any]
    models: dict[str, ModelResult] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def main_metric(self) -> str:
        return f"ndcg@{self.k}"

    def best(self, metric: str | None = None) -> str:
        """Name of the model with the highest mean of `metric` (default NDCG at the main k)."""
        metric = metric or self.main_metric
        return max(self.models, key=lambda name: self.models[name].metrics[metric].mean)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "k": self.k,
            "ks": list(self.ks),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "counts": self.counts,
            "settings": self.settings,
            "created_at": self.created_at,
            "models": {name: m.to_dict() for name, m in self.models.items()},
        }

    def to_json(self, path: Path | str | None = None) -> str:
        """JSON text (NaN written as null); also written to `path` when given."""
        text = json.dumps(_finite(self.to_dict()), indent=2, allow_nan=False)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvaluationResult":
        return cls(
            split=data["split"],
            k=data["k"],
            ks=tuple(data["ks"]),
            n_users=data["n_users"],
            n_items=data["n_items"],
            counts=dict(data["counts"]),
            settings=dict(data["settings"]),
            models={name: ModelResult.from_dict(m) for name, m in data["models"].items()},
            created_at=data["created_at"],
        )

    @classmethod
    def load(cls, path: Path | str) -> "EvaluationResult":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class EvalData:
    """The test side of a split mapped onto the training vocabulary (built once, shared by every model).

    `relevant` has a column per training item plus one per test item unknown to training (never recommendable,
    but still counted as relevant, so recall and NDCG are not flattered).
    """

    train: Interactions
    user_ids: np.ndarray
    rows: np.ndarray
    history: sparse.csr_matrix
    relevant: sparse.csr_matrix
    counts: dict[str, int]


def prepare(split: Split, weight_col: str | None = "weight", drop_unknown_items: bool = False) -> EvalData:
    """Build the training Interactions (vocabulary from train) and each test user's history and relevant items.

    History = the user's training rows plus their fold-in rows (strong generalization). Test rows on items
    absent from training stay relevant unless `drop_unknown_items`; either way they are counted.
    """
    train_table = split.train
    ts_col = next((c for c in ("last_ts", "ts") if c in train_table.column_names), None)
    train = Interactions.from_table(train_table, weight_col=weight_col, ts_col=ts_col)
    if train.nnz == 0:
        raise DataError(f"split '{split.name}'", "the train part has no interactions")
    test = split.test
    for col in ("user_id", "item_id"):
        if col not in test.column_names:
            raise DataError(f"split '{split.name}' test", f"missing column '{col}'")
    users = test.column("user_id").cast(pa.string())
    items = test.column("item_id").cast(pa.string())
    user_ids = np.asarray(pc.unique(users).drop_null().sort().to_pylist(), dtype=object)
    if len(user_ids) == 0:
        raise DataError(f"split '{split.name}'", "the test part has no rows")
    user_pos = pc.index_in(users, value_set=pa.array(user_ids, pa.string())).to_numpy(zero_copy_only=False)
    item_col = pc.index_in(items, value_set=pa.array(train.item_ids, pa.string())).fill_null(-1)
    cols = item_col.to_numpy(zero_copy_only=False).astype(np.int64)
    unknown = cols < 0
    counts = {"test_rows": test.num_rows, "test_rows_unknown_item": int(unknown.sum())}
    if unknown.any():
        if drop_unknown_items:
            cols = cols[~unknown]
            user_pos = user_pos[~unknown]
        else:
            codes = pc.dictionary_encode(items.filter(pa.array(unknown))).combine_chunks().indices
            cols[unknown] = train.n_items + codes.to_numpy(zero_copy_only=False).astype(np.int64)
    n_cols = int(max(cols.max(initial=-1) + 1, train.n_items))
    relevant = sparse.csr_matrix((np.ones(len(cols), np.float32), (user_pos.astype(np.int64), cols)),
                                 shape=(len(user_ids), n_cols))
    relevant.sum_duplicates()
    relevant.data[:] = 1.0
    has_relevant = np.diff(relevant.indptr) > 0
    counts["test_users_without_relevant"] = int((~has_relevant).sum())
    user_ids, relevant = user_ids[has_relevant], relevant[has_relevant]

    rows = train.users_to_rows(user_ids)
    history = train.history(rows).astype(np.float32)
    if split.fold_in is not None and split.fold_in.num_rows:
        fold_in = Interactions.from_table(split.fold_in, weight_col=weight_col, ts_col=None,
                                          user_ids=user_ids, item_ids=train.item_ids)
        history = (history + fold_in.matrix).tocsr()
    counts["test_users"] = len(user_ids)
    counts["test_users_unknown_to_training"] = int((rows < 0).sum())
    counts["relevant_pairs"] = int(relevant.nnz)
    return EvalData(train, user_ids, rows, sparse.csr_matrix(history), relevant.tocsr(), counts)


def evaluate(
    models: Mapping[str, ModelSpec],
    split: Split,
    k: int = 10,
    ks: Sequence[int] = (10, 20),
    *,
    weight_col: str | None = "weight",
    exclude_seen: bool = True,
    drop_unknown_items: bool = False,
    item_genres: Mapping[str, Sequence[str]] | None = None,
    segments: Segments | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk_size: int = 256,
    latency_users: int = 100,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Fit and evaluate each model on `split`.

    Args:
        models: display name → a Recommender instance (unfitted or to be refitted) or (registry name, config)
            for `streamrec.models.create_model`.
        k: the main cut-off (segments, comparisons); metrics are computed at every k in `ks` and at `k`.
        weight_col: training weight column (None or absent: every interaction weighs 1).
        exclude_seen: never recommend a user's history items (training + fold-in).
        item_genres: item id → genres, enables intra-list diversity.
        segments: user segments by history size (default: new < 10 ≤ regular < 100 ≤ heavy).
        n_boot, level, seed: bootstrap over users (the same resamples for every model: paired).
        chunk_size: users scored per call; per-user latency is each chunk's time / its users.
        latency_users: users also scored one at a time (request-like latency), 0 to skip.
        on_progress: called as (users scored so far, total) over all models.
    Returns:
        EvaluationResult with per-model metrics ('ndcg@10', ...), segments, latency and fit time.
    """
    if not models:
        raise ConfigError("evaluate: no models given")
    all_ks = tuple(sorted({int(x) for x in ks} | {int(k)}))
    if all_ks[0] < 1:
        raise ConfigError(f"evaluate: cut-offs must be positive, got {all_ks}")
    segments = segments or Segments()
    data = prepare(split, weight_col=weight_col, drop_unknown_items=drop_unknown_items)
    genres = M.genre_matrix(data.train.item_ids, item_genres)[0] if item_genres else None
    popularity = np.bincount(data.train.matrix.indices, minlength=data.train.n_items)
    history_sizes = np.diff(data.history.indptr)
    segment_of = segments.assign(history_sizes)
    n_users = len(data.user_ids)
    total = n_users * len(models)
    done = 0
    settings = {
        "weight_col": weight_col, "exclude_seen": exclude_seen, "drop_unknown_items": drop_unknown_items,
        "n_boot": n_boot, "level": level, "seed": seed, "chunk_size": chunk_size, "latency_users": latency_users,
        "segments": {"thresholds": list(segments.thresholds), "names": list(segments.names),
                     "labels": segments.describe()},
        "diversity": genres is not None,
    }
    result = EvaluationResult(split.summary(), int(k), all_ks, n_users, data.train.n_items, data.counts, settings)
    per_user_main: dict[str, np.ndarray] = {}

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(done, total)

    for name, spec in models.items():
        model = _resolve(spec)
        began = time.perf_counter()
        model.fit(data.train)
        fit_seconds = time.perf_counter() - began
        recs, chunk_ms, seconds = _recommend_all(model, data, max(all_ks), exclude_seen, chunk_size, progress)
        latency = _latency(model, data, max(all_ks), exclude_seen, chunk_ms, seconds, latency_users, seed)
        names, values, coverage = _per_user_metrics(recs, data, all_ks, popularity, genres)
        estimates = dict(zip(names, bootstrap_ci(values, n_boot=n_boot, level=level, seed=seed)))
        for key, value in coverage.items():
            estimates[key] = Estimate(value, None, None, n_users)
        main = [i for i, n in enumerate(names) if n.endswith(f"@{k}")]
        by_segment: dict[str, dict[str, Estimate]] = {}
        for s, seg_name in enumerate(segments.names):
            mask = segment_of == s
            ests = bootstrap_ci(values[mask][:, main], n_boot=n_boot, level=level, seed=seed)
            by_segment[seg_name] = {names[i]: e for i, e in zip(main, ests)}
        per_user_main[name] = values[:, names.index(f"ndcg@{k}")]
        result.models[name] = ModelResult(name, getattr(model, "name", type(model).__name__),
                                          _config_dict(model), fit_seconds, estimates, by_segment, latency)
        log.info("evaluation.model", model=name, fit_seconds=round(fit_seconds, 3),
                 ndcg=round(estimates[f"ndcg@{k}"].mean, 4), ms_per_user_p50=latency["batch_ms_per_user_p50"])
    best = result.best()
    for name, values in per_user_main.items():
        result.models[name].vs_best = bootstrap_ci(values - per_user_main[best], n_boot=n_boot, level=level,
                                                   seed=seed)[0]
    return result


# --- steps ----------------------------------------------------------------------------------------------------
def _resolve(spec: ModelSpec) -> Recommender:
    if isinstance(spec, Recommender):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        from streamrec.models import create_model  # the registry; imported only when asked for by name

        return create_model(spec[0], dict(spec[1]) if spec[1] else None)
    raise ConfigError(f"evaluate: a model must be a Recommender or (name, config), got {spec!r}")


def _recommend_all(model: Recommender, data: EvalData, k: int, exclude_seen: bool, chunk_size: int,
                   progress: Callable[[int], None]) -> tuple[np.ndarray, list[float], float]:
    """Top-k columns for every test user (-1 where fewer than k items could be recommended), the
    milliseconds per user of each chunk, and the total seconds spent recommending."""
    n = len(data.user_ids)
    recs = np.full((n, k), -1, dtype=np.int64)
    chunk_ms: list[float] = []
    total = 0.0
    for start in range(0, n, max(1, chunk_size)):
        stop = min(n, start + max(1, chunk_size))
        history, users = data.history[start:stop], data.rows[start:stop]
        began = time.perf_counter()
        idx, scores = model.recommend(history, k, users=users, exclude_seen=exclude_seen)
        elapsed = time.perf_counter() - began
        total += elapsed
        chunk_ms.append(elapsed * 1000 / (stop - start))
        recs[start:stop, :idx.shape[1]] = np.where(np.isfinite(scores), idx, -1)
        progress(stop - start)
    return recs, chunk_ms, total


def _latency(model: Recommender, data: EvalData, k: int, exclude_seen: bool, chunk_ms: list[float],
             seconds: float, latency_users: int, seed: int) -> dict[str, float]:
    batch = np.asarray(chunk_ms)
    n = len(data.user_ids)
    out = {
        "batch_ms_per_user_p50": float(np.percentile(batch, 50)),
        "batch_ms_per_user_p99": float(np.percentile(batch, 99)),
        "throughput_users_per_s": float(n / max(seconds, 1e-12)),
    }
    if latency_users > 0:
        pick = np.sort(np.random.default_rng(seed).choice(n, size=min(latency_users, n), replace=False))
        single = []
        for i in pick:
            began = time.perf_counter()
            model.recommend(data.history[i:i + 1], k, users=data.rows[i:i + 1], exclude_seen=exclude_seen)
            single.append((time.perf_counter() - began) * 1000)
        out["single_ms_p50"] = float(np.percentile(single, 50))
        out["single_ms_p99"] = float(np.percentile(single, 99))
    return out


def _per_user_metrics(recs: np.ndarray, data: EvalData, ks: tuple[int, ...], popularity: np.ndarray,
                      genres: np.ndarray | None) -> tuple[list[str], np.ndarray, dict[str, float]]:
    names: list[str] = []
    columns: list[np.ndarray] = []
    coverage: dict[str, float] = {}
    n_train_users = data.train.n_users
    for k in ks:
        for metric, fn in M.ACCURACY_METRICS.items():
            names.append(f"{metric}@{k}")
            columns.append(fn(recs, data.relevant, k))
        names.append(f"novelty@{k}")
        columns.append(M.novelty(recs, popularity, n_train_users, k))
        names.append(f"popularity_percentile@{k}")
        columns.append(M.popularity_percentile(recs, popularity, k))
        names.append(f"arp@{k}")
        columns.append(M.average_popularity(recs, popularity, k))
        if genres is not None:
            names.append(f"diversity@{k}")
            columns.append(M.intra_list_diversity(recs, genres, k))
        coverage[f"coverage@{k}"] = M.catalog_coverage(recs, data.train.n_items, k)
    return names, np.column_stack(columns), coverage


def _config_dict(model: Recommender) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is None:
        return {}
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return asdict(config) if hasattr(config, "__dataclass_fields__") else dict(config)


def _finite(value: Any) -> Any:
    """Replace NaN and infinities with None, recursively, so the JSON is strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value
