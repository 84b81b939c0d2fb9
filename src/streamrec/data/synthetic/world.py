"""`generate_world`: draw a synthetic streaming world from its ground-truth taste model and write it as a
data set folder (titles, availability, users, time-ordered events, truth/)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from streamrec.data.dataset import DatasetInfo, DatasetWriter
from streamrec.data.synthetic.catalog_gen import Catalog, generate_catalog, genre_embeddings
from streamrec.data.synthetic.config import GENRES, LANGUAGES, REGIONS, WorldConfig, rng_for
from streamrec.data.synthetic.events_gen import WorldSimulator
from streamrec.data.synthetic.incumbent import build_incumbent
from streamrec.data.synthetic.taste import GroundTruth
from streamrec.data.synthetic.users_gen import Users, generate_users
from streamrec.events.schema import EVENT_TYPES
from streamrec.logs import get_logger

log = get_logger(__name__)

ROWS_PER_WRITE = 500_000  # days are gathered into batches of about this many events before writing


def build_truth(config: WorldConfig, catalog: Catalog, users: Users) -> GroundTruth:
    """Scale the drawn factors so the latent and genre terms have the configured spread over random pairs."""
    rng = rng_for(config.seed, "truth")
    a, b = rng.integers(0, users.n, 20_000), rng.integers(0, catalog.n, 20_000)
    dots = np.einsum("nd,nd->n", users.factors[a], catalog.factors[b])
    scale = np.sqrt(config.response.taste_std / max(float(dots.std()), 1e-9))
    genre_w = catalog.genre_weights
    genre_term = np.einsum("ng,ng->n", users.affinity[a], genre_w[b])
    affinity = users.affinity * (config.response.genre_std / max(float(genre_term.std()), 1e-9))
    truth = GroundTruth(
        user_ids=users.user_ids,
        item_ids=catalog.item_ids,
        user_factors=(users.factors * scale).astype(np.float32),
        title_factors=(catalog.factors * scale).astype(np.float32),
        user_genre_affinity=affinity.astype(np.float32),
        title_genres=genre_w,
        popularity=catalog.popularity,
        release_day=catalog.release_day,
        user_language=users.language,
        title_language=catalog.language,
        runtime_min=catalog.runtime_min,
        episodes=catalog.episodes,
        user_activity=users.activity,
        user_reference=np.zeros(users.n),
        start=config.start,
        params=config.response,
        genres=GENRES,
        languages=LANGUAGES,
    )
    truth.user_reference = truth.reference_levels()
    return truth


def generate_world(
    config: WorldConfig,
    out: Path | str,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> DatasetInfo:
    """Generate a synthetic world and write it to `out` atomically.

    Args:
        config: the world's size, seed and model parameters (same config → byte-identical Parquet files).
        out: the data set folder to write (see streamrec.data.dataset for the layout).
        overwrite: replace an existing folder at `out`.
        on_progress: called as (days simulated, total days) while events are generated.

    Returns:
        The data set's manifest: counts per table and the parameters, with events per type and the
        number of sessions under params.
    """
    began = time.perf_counter()
    embeddings = genre_embeddings(config)
    catalog = generate_catalog(config, embeddings)
    users = generate_users(config, embeddings)
    truth = build_truth(config, catalog, users)
    incumbent = build_incumbent(config, catalog, users, truth)
    sim = WorldSimulator(config, catalog, users, truth, incumbent)
    with DatasetWriter(out, overwrite=overwrite) as writer:
        writer.put_table("titles", catalog.titles_table())
        writer.put_table("availability", catalog.availability_table())
        writer.put_table("users", users.table())
        writer.put_events(_gather(sim.batches(on_progress), ROWS_PER_WRITE))
        params = {
            "generator": "streamrec.data.synthetic",
            "seed": config.seed,
            "start": _iso(config.start_us),
            "end": _iso(config.end_us),
            "regions": list(REGIONS),
            "activity_scale": sim.scale,
            "sessions": sim.sessions,
            "new_releases": int((catalog.release_day >= 0).sum()),
            "new_users": int((users.signup_us >= config.start_us).sum()),
            "events_by_type": {t: int(c) for t, c in zip(EVENT_TYPES, sim.by_type)},
            "config": config.model_dump(mode="json"),
        }
        truth.meta = {"regions": list(REGIONS), "activity_scale": sim.scale, "config": params["config"]}
        truth.save(writer.truth_dir())
        info = DatasetInfo(name=Path(out).name, source="synthetic", params=params)
        writer.commit(info)
    log.info(
        "synthetic.generated",
        out=str(out),
        events=info.counts["events"],
        sessions=sim.sessions,
        seconds=round(time.perf_counter() - began, 2),
    )
    return info


def _gather(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Concatenate consecutive small tables until each has at least `rows` rows (the last may have fewer)."""
    pending: list[pa.Table] = []
    size = 0
    for table in tables:
        pending.append(table)
        size += table.num_rows
        if size >= rows:
            yield pa.concat_tables(pending).combine_chunks()
            pending, size = [], 0
    if pending:
        yield pa.concat_tables(pending).combine_chunks()


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()
