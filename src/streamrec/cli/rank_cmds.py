"""`streamrec rank USER`: one user's list from the ranked pipeline as serving computes it — the bundle loaded
(registry alias, version or folder, checksums verified), the online store filled from the event store, then one
request: fresh-history candidates, filters, features, ranker, diversity, and why each title is there."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, summary_table


def register(app: typer.Typer) -> None:
    @app.command()
    def rank(
        ctx: typer.Context,
        user: str = typer.Argument(..., help="user id"),
        k: int = typer.Option(10, min=1, max=100, help="titles"),
        model: str = typer.Option("champion", help="registry alias or version, or a saved pipeline folder"),
        region: Optional[str] = typer.Option(None, help="the request's region (default: the profile's)"),
        at: Optional[str] = typer.Option(None, help="request time, ISO UTC (default: just after the newest event)"),
    ) -> None:
        """Rank titles for one user with a pipeline bundle, as the serving path does, with explanations."""
        result, timings = rank_user(settings_of(ctx), user, k, model, region, at)
        print_ranked(result, timings)


def rank_user(settings, user: str, k: int = 10, model: str = "champion", region: str | None = None,
              at: str | None = None):
    """The ranked list of one user (and the load timings) from the bundle `model`."""
    import time

    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle(settings, model, Path(tmp))
    loaded = time.perf_counter()
    pipeline, when = online_pipeline(settings, bundle, at)
    filled = time.perf_counter()
    result = pipeline.recommend(user, k=k, at=when, region=region, explain_items=True)
    return result, {"load bundle s": loaded - began, "fill online store s": filled - loaded}


def online_pipeline(settings, bundle, at: str | None = None):
    """`bundle` ready to answer as serving does, over an online store filled from the event store.

    Returns:
        (the OnlinePipeline, the request time: `at`, or just after the newest event).
    """
    from datetime import datetime, timedelta

    from streamrec.features import events_relation
    from streamrec.features.materialize import materialize
    from streamrec.pipeline.serving import OnlinePipeline, ServingCatalog
    from streamrec.storage.events import open_event_store
    from streamrec.storage.online import MemoryOnlineStore

    with open_event_store(settings) as store:
        con = store.con
        events = events_relation(con)
        when = datetime.fromisoformat(at).replace(tzinfo=None) if at else \
            con.execute(f"SELECT max(ts) FROM {events}").fetchone()[0] + timedelta(seconds=1)
        online = MemoryOnlineStore()
        materialize(con, online, when, events, bundle.definitions)
        return OnlinePipeline(bundle, ServingCatalog.from_store(con), online), when


def rank_users(settings, bundle, user_ids, k: int, data, on_progress=None):
    """Batch top-k from a ranked pipeline: each user answered as serving answers them (user_id, rank, item_id,
    score, source), for `streamrec recommend` when the model is a pipeline. Users it has nothing for (no history,
    unknown) get the most popular titles of `data` (Interactions), source 'popular', as single models' batches do."""
    import numpy as np
    import pyarrow as pa

    counts = np.asarray(data.matrix.sum(axis=0)).ravel()
    top = np.argsort(-counts, kind="stable")[:k]
    popular = ([str(i) for i in data.item_ids[top]], [float(c) for c in counts[top]], ["popular"] * len(top))
    pipeline, when = online_pipeline(settings, bundle)
    users, ranks, items, scores, sources = [], [], [], [], []
    for i, user in enumerate(user_ids):
        result = pipeline.recommend(str(user), k=k, at=when)
        got = (result.items, result.scores, [result.fallback or source for source in result.sources])
        got = got if result.items else popular
        n = len(got[0])
        users += [str(user)] * n
        ranks += list(range(1, n + 1))
        items += got[0]
        scores += got[1]
        sources += got[2]
        if on_progress:
            on_progress(i + 1, len(user_ids))
    return pa.table({"user_id": pa.array(users, pa.string()), "rank": pa.array(ranks, pa.int32()),
                     "item_id": pa.array(items, pa.string()), "score": pa.array(scores, pa.float32()),
                     "source": pa.array(sources, pa.string())})


def load_bundle(settings, ref: str, tmp: Path):
    """A pipeline bundle from a folder or the registry (alias or version).

    Raises:
        ConfigError: the model there is a single model, not a pipeline.
    """
    from streamrec.errors import ConfigError
    from streamrec.pipeline.bundle import PipelineBundle, is_bundle

    from streamrec.registry import model_folder

    folder, _ = model_folder(settings, ref, tmp)
    if not is_bundle(folder):
        raise ConfigError(f"model '{ref}' is a single model, not a ranked pipeline: run `streamrec pipeline` to "
                          "train and register one, or pass --model with a pipeline's version or folder")
    return PipelineBundle.load(folder)


def print_ranked(result, timings: dict[str, float]) -> None:
    rows = [(f"{i + 1}. {item}", f"{score:.3f}  {e.text()}")
            for i, (item, score, e) in enumerate(zip(result.items, result.scores, result.explanations or []))]
    rows += [("fallback", result.fallback or "none (ranked)")]
    rows += [(key.replace("_", " "), f"{n:,}") for key, n in result.counts.items() if n]
    rows += [(f"{stage} ms", f"{ms:.2f}") for stage, ms in result.timings_ms.items()]
    rows += [(name, f"{seconds:.2f}") for name, seconds in timings.items()]
    console.print(summary_table(f"ranked pipeline for {result.user_id}", rows))
