"""Vector index seam: exact numpy search by default, faiss (HNSW) as the approximate backend.

    index = make_vector_index("faiss", m=32, ef_search=256).build(model.item_factors_)   # ids 0..n-1: item columns
    ids, scores = index.search(model.user_factors_[rows], k=100, exclude=history)        # history: seen, (m × n)

faiss is imported only when a faiss index is built or loaded (the `ann` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError as PydanticValidationError

from streamrec.errors import ConfigError
from streamrec.storage.vectors.base import (
    MISSING,
    BaseVectorIndex,
    ExactIndexConfig,
    Exclude,
    FaissIndexConfig,
    VectorIndex,
    VectorIndexConfig,
    read_manifest,
)
from streamrec.storage.vectors.exact import ExactIndex

KINDS = ("exact", "faiss")


def _backend(kind: str) -> type[BaseVectorIndex]:
    if kind == "exact":
        return ExactIndex
    if kind == "faiss":
        from streamrec.storage.vectors.faiss import FaissIndex

        return FaissIndex
    raise ConfigError(f"unknown vector index kind '{kind}' (choose from {', '.join(KINDS)})")


def make_vector_index(kind: str = "exact", **params: Any) -> BaseVectorIndex:
    """An unbuilt index of `kind` ("exact" | "faiss") with the parameters of its config class.

    Raises:
        ConfigError: an unknown kind or an invalid parameter.
    """
    return _backend(kind)(**params)


def open_vector_index(config: VectorIndexConfig | dict[str, Any]) -> BaseVectorIndex:
    """An unbuilt index from a discriminated config (`{"type": "faiss", "m": 16}` or a config object)."""
    if isinstance(config, dict):
        try:
            config = TypeAdapter(VectorIndexConfig).validate_python(config)
        except PydanticValidationError as exc:
            raise ConfigError(f"invalid vector index config: {exc}") from exc
    return _backend(config.type)(config)


def load_vector_index(folder: Path | str) -> BaseVectorIndex:
    """A saved index of whichever kind its manifest names (checksums verified; raises ChecksumError)."""
    return _backend(read_manifest(Path(folder))["kind"]).load(folder)


__all__ = ["MISSING", "ExactIndex", "ExactIndexConfig", "Exclude", "FaissIndexConfig", "KINDS", "VectorIndex",
           "VectorIndexConfig", "load_vector_index", "make_vector_index", "open_vector_index"]
