"""Automatic feature selection for the ranker, on validation inside its own training period (never the test period).

The ranker's training period (before the pipeline's test cut) is split once more by time: the ranker learns on the
earlier part ("fit": candidates and features as of a cut, labels from what was watched after it) and is scored on
the later part ("validation": the rows `evaluate_pipeline` itself trains on). One LightGBM ranker on the base
features plus every candidate orders the candidates by gain; then, in that order, a candidate is kept only when
adding it to the base and those already kept raises validation NDCG@10 by more than a tolerance. Feature columns
are computed once for every definition and sliced, so each try costs one LightGBM fit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from streamrec.errors import ConfigError, DataError, NotFound
from streamrec.features.definitions import BUILTIN, Definition, Feature
from streamrec.logs import get_logger
from streamrec.settings import FilterPolicy, SplitConfig


log = get_logger(__name__)


class SelectionConfig(BaseModel, extra="forbid"):
    """How many candidates are tried and kept, and what counts as an improvement."""

    max_tries: int = Field(20, ge=1, description="candidates tried, best LightGBM gain first")
    max_selected: int = Field(8, ge=1, description="most candidates kept")
    tolerance: float = Field(0.001, ge=0, description="validation NDCG@10 gain a candidate must exceed to be kept")
    min_z: float = Field(1.0, ge=0, description="... and by this many standard errors of the per-user differences")
    n_estimators: int = Field(100, ge=1, le=10_000, description="trees of each selection ranker")
    learning_rate: float = Field(0.1, gt=0, le=1)
    seed: int = 42
    num_threads: int = Field(0, ge=0, description="LightGBM threads (0: all cores)")


@dataclass
class Step:
    """One try: validation NDCG@10 with the candidate added to the base and those kept so far."""

    name: str
    gain: float  # the candidate's LightGBM gain in the ranker on everything
    ndcg: float
    delta: float  # over the best validation NDCG@10 before it (mean of the per-user differences)
    stderr: float  # standard error of that mean: what chance alone moves it by
    kept: bool


@dataclass
class SelectionReport:
    """What `select_features` tried and kept, with validation NDCG@10 of the base vs base + selected."""

    candidates: list[Feature] = field(default_factory=list)  # generated and considered (tried: `steps`)
    steps: list[Step] = field(default_factory=list)
    selected: list[Feature] = field(default_factory=list)
    base_ndcg: float = 0.0
    selected_ndcg: float = 0.0
    periods: dict[str, datetime] = field(default_factory=dict)  # fit cut, validation cut and end, test cut
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def gain(self) -> float:
        """Validation NDCG@10 of base + selected over the base alone, relative."""
        return self.selected_ndcg / self.base_ndcg - 1 if self.base_ndcg else 0.0

    def summary(self) -> dict:
        """JSON-ready: the selected names, the steps, the validation numbers, the periods."""
        return {"candidates": [f.name for f in self.candidates], "selected": [f.name for f in self.selected],
                "base_ndcg@10": self.base_ndcg, "selected_ndcg@10": self.selected_ndcg, "gain": self.gain,
                "steps": [vars(s) for s in self.steps],
                "periods": {k: v.isoformat() for k, v in self.periods.items()},
                "counts": self.counts, "seconds": round(self.seconds, 2)}


def select_features(con: duckdb.DuckDBPyConnection, table: pa.Table, candidates: Sequence[Feature] | None = None,
                    split: SplitConfig | None = None, config: SelectionConfig | None = None,
                    events: str = "events", quotas: dict[str, int] | None = None,
                    base: Sequence[Definition] = BUILTIN, policy: FilterPolicy | None = None) -> SelectionReport:
    """Choose which `candidates` (default: the default templates' features) to add to `base` for the ranker.

    Args:
        con: DuckDB connection with the `events` relation (and the catalog, when there is one).
        table: the interactions (user_id, item_id, weight, last_ts) the pipeline evaluates on; only rows and events
            before its temporal test cut (`split.quantile`, as in `evaluate_pipeline`) are read.
        quotas, policy: the pipeline's candidate quotas and filters (as `evaluate_pipeline` takes them).
    Returns:
        The SelectionReport (selected features in the order kept).
    Raises:
        DataError: no watched title among the fit or validation candidates (too little data before the test cut).
        ConfigError: a candidate named like a base feature.
    """
    from streamrec.evaluation.splits import temporal_split
    from streamrec.features.templates import candidates as default_candidates
    from streamrec.pipeline.stages import ranked_ndcg, ranker_examples

    began = time.perf_counter()
    split = split or SplitConfig()
    config = config or SelectionConfig()
    pool = list(default_candidates(exclude=base) if candidates is None else candidates)
    clash = sorted({f.name for f in pool} & {f.name for f in base})
    if clash:
        raise ConfigError(f"candidate features named like base features: {clash}")
    test = temporal_split(table, quantile=split.quantile)  # the pipeline's test period: never read below
    validation = temporal_split(test.train, quantile=split.quantile)  # the ranker's own training rows
    fit = temporal_split(validation.train, quantile=split.quantile)
    fit_rows = ranker_examples(con, fit, events, quotas, [*base, *pool], policy)
    val_rows = ranker_examples(con, validation, events, quotas, [*base, *pool], policy)
    for name, rows in (("fit", fit_rows), ("validation", val_rows)):
        if not (rows.labels > 0).any():
            raise DataError("feature selection", f"no watched title among the {name} period's candidates")
    report = SelectionReport(candidates=pool)
    names = {f.name for f in pool}
    report.periods = {"fit_cut": fit_rows.at, "validation_cut": val_rows.at,
                      "validation_end": _latest(validation.test), "test_cut": _cut(test)}
    x, y, groups = _with_positives(fit_rows)
    log.info("feature_selection.rows", fit=len(y), validation=len(val_rows.labels), columns=len(fit_rows.names),
             seconds=round(time.perf_counter() - began, 1))
    report.counts = {"fit_rows": int(len(y)), "fit_users": int(len(groups)),
                     "validation_rows": int(len(val_rows.labels)), "validation_users": len(val_rows.data.user_ids)}
    column = {name: i for i, name in enumerate(fit_rows.names)}
    base_cols = [i for name, i in column.items() if name not in names]

    def score(extra: list[str]) -> tuple[np.ndarray, dict[str, float]]:
        """Per validation user NDCG@10 of a ranker fitted on the base and `extra`; its gain per feature."""
        cols = base_cols + [column[n] for n in extra]
        model = _ranker(config).fit(x[:, cols], y, groups, [fit_rows.names[i] for i in cols])
        return ranked_ndcg(val_rows, model.score(val_rows.features[:, cols])), model.importance()

    _, gains = score([f.name for f in pool])
    order = sorted((f.name for f in pool if gains.get(f.name, 0) > 0), key=lambda n: -gains[n])
    best, _ = score([])
    report.base_ndcg = float(best.mean())
    kept: list[str] = []
    for name in order[:config.max_tries]:
        if len(kept) >= config.max_selected:
            break
        ndcg, _ = score([*kept, name])
        diff = ndcg - best  # paired: the same users, so their own difficulty cancels out
        delta, stderr = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        step = Step(name, gains[name], float(ndcg.mean()), delta, stderr,
                    delta > config.tolerance and delta > config.min_z * stderr)
        report.steps.append(step)
        log.info("feature_selection.step", feature=name, delta=round(delta, 5), stderr=round(stderr, 5),
                 kept=step.kept, seconds=round(time.perf_counter() - began, 1))
        if step.kept:
            kept.append(name)
            best = ndcg
    by_name = {f.name: f for f in pool}
    report.selected = [by_name[n] for n in kept]
    report.selected_ndcg = float(best.mean())
    report.seconds = time.perf_counter() - began
    return report


def _ranker(config: SelectionConfig):
    from streamrec.pipeline.ranker import Ranker

    return Ranker(n_estimators=config.n_estimators, learning_rate=config.learning_rate, seed=config.seed,
                  num_threads=config.num_threads)


def _with_positives(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fit rows of users with a watched candidate only: LambdaMART learns nothing from a group without one
    (zero gradients), and leaving them out makes each of the many fits several times cheaper."""
    starts = np.concatenate([[0], np.cumsum(rows.groups)])
    positive = np.add.reduceat((rows.labels > 0).astype(np.int64), starts[:-1]) > 0
    keep = np.repeat(positive, rows.groups)
    return rows.features[keep], rows.labels[keep], rows.groups[positive]


def _cut(split) -> datetime:
    """A temporal split's cut time as naive UTC."""
    return pd.Timestamp(split.params["at"]).tz_convert("UTC").tz_localize(None).floor("us").to_pydatetime()


def _latest(table: pa.Table) -> datetime:
    """The newest interaction time of a period, as naive UTC."""
    value = pc.max(table.column("last_ts")).as_py()
    return value.replace(tzinfo=None) if value.tzinfo else value


# --- the selected set, persisted for the pipeline ------------------------------------------------------------
def save_selection(path: Path, report: SelectionReport) -> Path:
    """Write the selected definitions (and the report's numbers) as JSON; `load_selection` reads them back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"features": [f.model_dump(mode="json") for f in report.selected], "report": report.summary()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)  # a reader sees the old file or the new one
    return path


def load_selection(path: Path, base: Sequence[Definition] = BUILTIN) -> tuple[Feature, ...]:
    """The feature definitions saved by `save_selection` (each validated again), to use beside `base`.

    Raises:
        NotFound: no such file.
        ConfigError: not a selection file, a definition that is not valid, or a name used twice or by `base`.
    """
    import pydantic

    if not path.is_file():
        raise NotFound("feature selection file", str(path))
    try:
        doc = json.loads(path.read_text())
        features = tuple(Feature.model_validate(f) for f in doc["features"])
    except (ValueError, KeyError, TypeError, pydantic.ValidationError) as exc:
        raise ConfigError(f"{path}: not a feature selection file ({exc})") from exc
    names = [f.name for f in (*base, *features)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{path}: feature names used twice (or by the built-in features): {twice}")
    return features
