"""The ranked pipeline as one deployable artifact: the source models, the LightGBM ranker and the feature definitions
it reads, fitted together and saved as plain files with checksums (never pickle), so it is logged, registered,
promoted and served like any single model.

Layout of a saved bundle (a folder):
    config.json        {"model": "pipeline", "config": PipelineConfig}   (what the registry reads)
    definitions.json   the ranker's feature definitions
    sources/NAME/      each fitted source model (Recommender.save, its own checksums)
    ranker/            the ranker (LightGBM text model plus checksum)
    checksums.json     sha256 of config.json, definitions.json and ranker/ranker.json
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError, NotFound
from streamrec.integrity import sha256_file, verify_files
from streamrec.evaluation.splits import temporal_split
from streamrec.features.definitions import BUILTIN, Attribute, Definition, Feature, GenreMatch, Ratio
from streamrec.models import Recommender, load_model
from streamrec.pipeline.ranker import Ranker
from streamrec.pipeline.sources import MODEL_SOURCES, fit_model_sources
from streamrec.settings import PipelineConfig, SplitConfig

NAME = "pipeline"
_KINDS = {cls.__name__: cls for cls in (Feature, Attribute, GenreMatch, Ratio)}


@dataclass
class PipelineBundle:
    config: PipelineConfig
    models: dict[str, Recommender]  # the fitted model sources by name, in priority order
    ranker: Ranker
    definitions: list[Definition]
    counts: dict[str, int] = field(default_factory=dict)  # what the ranker learned from

    name = NAME

    @property
    def item_ids(self) -> np.ndarray:
        """The titles the sources know, by column."""
        return next(iter(self.models.values())).item_ids_

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in self.models.items():
            model.save(folder / "sources" / name)
        self.ranker.save(folder / "ranker")
        (folder / "config.json").write_text(json.dumps({"model": NAME, "config": self.config.model_dump(mode="json"),
                                                        "sources": list(self.models), "counts": self.counts}))
        (folder / "definitions.json").write_text(json.dumps(dump_definitions(self.definitions), indent=1))
        # ranker.json too: it names the ranker's features (ranker.txt is checked against it; the sources check their own)
        checksums = {f: sha256_file(folder / f) for f in ("config.json", "definitions.json", "ranker/ranker.json")}
        (folder / "checksums.json").write_text(json.dumps(checksums, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> PipelineBundle:
        """Read a saved bundle, verifying every checksum first.

        Raises:
            NotFound: not a saved bundle. ChecksumError: a file was altered. ConfigError: a saved model of another kind.
        """
        folder = Path(folder)
        if not (folder / "checksums.json").is_file():
            raise NotFound("saved pipeline", str(folder))
        verify_files(folder, json.loads((folder / "checksums.json").read_text()))
        meta = json.loads((folder / "config.json").read_text())
        if meta.get("model") != NAME:
            raise ConfigError(f"{folder} holds a '{meta.get('model')}' model, not a pipeline")
        models = {name: load_model(folder / "sources" / name) for name in meta["sources"]}
        definitions = load_definitions(json.loads((folder / "definitions.json").read_text()))
        return cls(PipelineConfig(**meta["config"]), models, Ranker.load(folder / "ranker"), definitions,
                   dict(meta.get("counts", {})))


def is_bundle(folder: Path | str) -> bool:
    """Whether a saved model folder holds a pipeline bundle (rather than a single model)."""
    try:
        return json.loads((Path(folder) / "config.json").read_text()).get("model") == NAME
    except (OSError, ValueError):
        return False


def fit_bundle(con: duckdb.DuckDBPyConnection, table: pa.Table, events: str = "events",
               config: PipelineConfig | None = None, split: SplitConfig | None = None,
               definitions: Sequence[Definition] = BUILTIN) -> PipelineBundle:
    """Fit the pipeline for serving: the ranker learns on the last period of `table` (candidates from sources fitted
    before it, labels from what was watched in it, filters applied), then the sources are refitted on everything.

    Raises:
        DataError: too little data for the ranker's period.
    """
    from streamrec.pipeline.stages import train_ranker  # stages imports this package's siblings

    config = config or PipelineConfig()
    unknown = [s for s in config.quotas if s not in MODEL_SOURCES and s not in ("continue_watching", "new_releases")]
    if unknown:
        raise ConfigError(f"pipeline.quotas: unknown sources {unknown}")
    period = temporal_split(table, quantile=(split or SplitConfig()).quantile)
    ranker, counts = train_ranker(con, period, events, config.quotas, config.ranker, config.filters, definitions,
                                  impressions=config.impression_negatives, vector_index=config.vector_index)
    models = {name: model for name, model in fit_model_sources(Interactions.from_table(table)).items()
              if name in config.quotas}
    return PipelineBundle(config, models, ranker, list(definitions), counts)


def dump_definitions(definitions: Sequence[Definition]) -> list[dict]:
    return [{"kind": type(d).__name__, **d.model_dump(mode="json")} for d in definitions]


def load_definitions(rows: list[dict]) -> list[Definition]:
    """Definitions from `dump_definitions` rows (validated again)."""
    out = []
    for row in rows:
        row = dict(row)
        kind = row.pop("kind", None)
        if kind not in _KINDS:
            raise ConfigError(f"feature definition of unknown kind {kind!r} (known: {', '.join(_KINDS)})")
        out.append(_KINDS[kind](**row))
    return out

