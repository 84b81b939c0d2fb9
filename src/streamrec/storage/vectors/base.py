"""The vector index seam: top-k inner-product search over item vectors (ALS item factors), with exclusions.

Every backend keeps the vectors in ascending id order (ties then go to the lower id in every backend), answers
`search` with (ids, scores) best first, marks a slot with no result as id -1 / score -inf, and saves into a folder
as plain arrays and a JSON manifest whose sha256 checksums are verified on load (nothing is ever unpickled).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, Self, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field, ValidationError as PydanticValidationError
from scipy import sparse

from streamrec.errors import ConfigError, DataError, NotFound
from streamrec.integrity import sha256_file, verify_files

MISSING = -1  # the id of a result slot that has no item (fewer items than k left after exclusions)
FORMAT = "streamrec.vectors/1"
MANIFEST = "manifest.json"


class ExactIndexConfig(BaseModel, extra="forbid"):
    """Exact inner-product search with numpy: the default, and the reference in tests."""

    type: Literal["exact"] = "exact"
    block_mb: int = Field(64, ge=1, le=65536, description="memory for one block of query × item scores, in MiB")


class FaissIndexConfig(BaseModel, extra="forbid"):
    """Approximate inner-product search with faiss (the `ann` extra): HNSW, or a flat index for small catalogs."""

    type: Literal["faiss"] = "faiss"
    structure: Literal["auto", "hnsw", "flat"] = Field(
        "auto", description="hnsw graph; flat (exact brute force inside faiss); auto: flat below `flat_below` items")
    flat_below: int = Field(20_000, ge=0, description="auto: catalogs smaller than this use a flat index")
    metric: Literal["inner_product", "l2_reduction"] = Field(
        "inner_product", description="hnsw: a graph on inner products directly, or on L2 distances after the "
        "MIPS-to-L2 reduction (one extra coordinate sqrt(max|x|² - |x|²)), which helps when vector norms vary")
    m: int = Field(32, ge=2, le=512, description="hnsw: graph neighbours per node (M)")
    ef_construction: int = Field(80, ge=1, le=100_000, description="hnsw: candidate list while building")
    ef_search: int = Field(256, ge=1, le=100_000, description="hnsw: candidate list while searching (at least k)")
    threads: int = Field(0, ge=0, le=1024, description="OpenMP threads for building and batch search (0: all "
                         "cores); a single query always runs on one thread")


VectorIndexConfig = Annotated[ExactIndexConfig | FaissIndexConfig, Field(discriminator="type")]

# what `search(exclude=...)` takes: a boolean mask over the built vectors, (n,) for every query or (m, n) per query
# (column j is the j-th vector given to build), the same as a sparse (m, n) matrix (nonzero = excluded, e.g. the
# users' seen history), or one collection of ids per query (ids not in the index are ignored)
Exclude = np.ndarray | sparse.spmatrix | sparse.sparray | Sequence[Collection[int]] | None


@runtime_checkable
class VectorIndex(Protocol):
    """Top-k inner-product search over a fixed set of vectors. Every backend passes tests/contract/test_vectors.py."""

    kind: ClassVar[str]

    @property
    def dim(self) -> int: ...

    def build(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> Self:
        """Index `vectors` (n × d, finite; stored as float32) under `ids` (n distinct ints ≥ 0; default 0..n-1)."""
        ...

    def search(self, queries: np.ndarray, k: int, exclude: Exclude = None) -> tuple[np.ndarray, np.ndarray]:
        """The k largest inner products per query, best first: (ids int64, scores float32), both
        (m × min(k, n)); slots without a result (exclusions left fewer than k items) hold id -1 and score -inf."""
        ...

    def __len__(self) -> int: ...

    def save(self, folder: Path | str) -> Path:
        """Write the index into `folder` (created): arrays or faiss's own file, and manifest.json with checksums."""
        ...


class BaseVectorIndex(ABC):
    """Shared validation, id mapping, exclusions and persistence; a backend adds `_build`, `_search`, `_write`,
    `_read`. Learned state (`ids_`, the sorted ids, and the backend's structure) is set only by build or load."""

    kind: ClassVar[str]
    config_type: ClassVar[type[BaseModel]]

    def __init__(self, config: BaseModel | dict[str, Any] | None = None, **overrides: Any):
        if isinstance(config, BaseModel):
            config = config.model_dump()
        try:
            self.config = self.config_type(**{**(config or {}), **overrides})
        except PydanticValidationError as exc:
            raise ConfigError(f"vector index '{self.kind}': invalid parameters: {exc}") from exc

    # --- the interface ---------------------------------------------------------------------------------
    def build(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> Self:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise DataError("vectors", f"expected a 2-d (items × dimensions) array, got shape {vectors.shape}")
        if len(vectors) == 0:
            raise DataError("vectors", "no vectors to index: an index needs at least one")
        if not np.issubdtype(vectors.dtype, np.number) or not np.isfinite(vectors).all():
            raise DataError("vectors", "must be finite numbers")
        ids = self._check_ids(ids, len(vectors))
        order = np.argsort(ids, kind="stable")
        identity = bool((order == np.arange(len(ids))).all())
        self.build_ids_ = ids
        self.order_ = None if identity else order  # sorted position p holds the vector given at row order_[p]
        self.ids_ = ids if identity else ids[order]
        sorted_vectors = vectors if identity else vectors[order]
        self._build(np.ascontiguousarray(sorted_vectors, dtype=np.float32))
        return self

    def search(self, queries: np.ndarray, k: int, exclude: Exclude = None) -> tuple[np.ndarray, np.ndarray]:
        self._check_built()
        queries = np.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise DataError("queries", f"expected shape (m, {self.dim}), got {queries.shape}")
        if not np.issubdtype(queries.dtype, np.number) or not np.isfinite(queries).all():
            raise DataError("queries", "must be finite numbers")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise DataError("k", f"must be an integer ≥ 0, got {k!r}")
        m, width = len(queries), min(int(k), len(self))
        if width == 0 or m == 0:
            return np.full((m, width), MISSING, np.int64), np.full((m, width), -np.inf, np.float32)
        mask = self._exclusion(exclude, m)
        positions, scores = self._search(np.ascontiguousarray(queries, dtype=np.float32), width, mask)
        found = positions >= 0
        ids = np.where(found, self.ids_[np.where(found, positions, 0)], MISSING)
        return ids.astype(np.int64, copy=False), np.where(found, scores, -np.inf).astype(np.float32, copy=False)

    def __len__(self) -> int:
        return len(self.ids_) if self.is_built else 0

    @property
    def is_built(self) -> bool:
        return hasattr(self, "ids_")

    def save(self, folder: Path | str) -> Path:
        self._check_built()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ids.npy", self.build_ids_, allow_pickle=False)
        names = ["ids.npy", *self._write(folder)]
        manifest = {"format": FORMAT, "kind": self.kind, "config": self.config.model_dump(), "count": len(self),
                    "dim": self.dim, "files": {name: sha256_file(folder / name) for name in names}}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> Self:
        """Read a saved index, verifying every file's checksum first (a changed file raises ChecksumError)."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest["kind"] != cls.kind:
            raise ConfigError(f"{folder} holds a '{manifest['kind']}' vector index, not '{cls.kind}'")
        index = cls(manifest["config"])
        ids = np.load(folder / "ids.npy", allow_pickle=False)
        index.build_ids_ = index._check_ids(ids, int(manifest["count"]))
        order = np.argsort(ids, kind="stable")
        identity = bool((order == np.arange(len(ids))).all())
        index.order_ = None if identity else order
        index.ids_ = ids if identity else ids[order]
        index._read(folder)
        if index.dim != manifest["dim"]:
            raise DataError(str(folder), f"index has {index.dim} dimensions, the manifest says {manifest['dim']}")
        return index

    # --- backend hooks ---------------------------------------------------------------------------------
    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def _build(self, vectors: np.ndarray) -> None:
        """Index float32 C-contiguous vectors already in sorted-id order (row p has id ids_[p])."""

    @abstractmethod
    def _search(self, queries: np.ndarray, width: int, mask: np.ndarray | sparse.csr_matrix | None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Sorted positions (-1: none) and scores, (m × width), best first, ties to the lower position;
        `mask` (m × n, over sorted positions) marks excluded items."""

    @abstractmethod
    def _write(self, folder: Path) -> list[str]:
        """Write the backend's files (in sorted-id order) into `folder`; returns their names."""

    @abstractmethod
    def _read(self, folder: Path) -> None:
        """Read what `_write` wrote (checksums are already verified)."""

    # --- helpers ---------------------------------------------------------------------------------------
    def _check_built(self) -> None:
        if not self.is_built:
            raise NotFound("built vector index", self.kind, "call build() or load() first")

    @staticmethod
    def _check_ids(ids: np.ndarray | None, n: int) -> np.ndarray:
        if ids is None:
            return np.arange(n, dtype=np.int64)
        ids = np.asarray(ids)
        if ids.shape != (n,) or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise DataError("ids", f"expected {n} integer ids (one per vector), got shape {ids.shape} {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        if n and ids.min() < 0:
            raise DataError("ids", f"must be ≥ 0 (-1 marks a missing result), got {ids.min()}")
        if len(np.unique(ids)) != n:
            raise DataError("ids", "must be distinct")
        return ids

    def _exclusion(self, exclude: Exclude, m: int) -> np.ndarray | sparse.csr_matrix | None:
        """`exclude` as an (m × n) boolean mask over sorted positions: dense, or sparse CSR (ids, sparse input)."""
        if exclude is None:
            return None
        n = len(self)
        if isinstance(exclude, np.ndarray) and exclude.dtype == bool:
            if exclude.shape not in ((n,), (m, n)):
                raise DataError("exclude", f"a mask must have shape ({n},) or ({m}, {n}), got {exclude.shape}")
            mask = np.broadcast_to(exclude, (m, n))
            return mask if self.order_ is None else mask[:, self.order_]
        if sparse.issparse(exclude):
            if exclude.shape != (m, n):
                raise DataError("exclude", f"a sparse mask must have shape ({m}, {n}), got {exclude.shape}")
            csr = sparse.csr_matrix(exclude, dtype=bool)
            csr.eliminate_zeros()
            return csr if self.order_ is None else csr[:, self.order_].tocsr()
        if isinstance(exclude, np.ndarray | str | bytes) or not isinstance(exclude, Sequence):
            raise DataError("exclude", "expected a boolean mask, a sparse matrix or one collection of ids per query, "
                            f"got {type(exclude).__name__}" + (f" {exclude.dtype}" if hasattr(exclude, "dtype") else ""))
        if len(exclude) != m:
            raise DataError("exclude", f"has {len(exclude)} id collections for {m} queries")
        per_query = [np.fromiter(ids, dtype=np.int64, count=len(ids)) for ids in exclude]
        rows = np.repeat(np.arange(m), [len(ids) for ids in per_query])
        wanted = np.concatenate(per_query) if per_query else np.zeros(0, np.int64)
        pos = np.searchsorted(self.ids_, wanted)
        known = pos < n
        known[known] &= self.ids_[pos[known]] == wanted[known]
        return sparse.csr_matrix((np.ones(known.sum(), bool), (rows[known], pos[known])), shape=(m, n))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a saved index after checking every file it lists against its sha256."""
    path = folder / MANIFEST
    if not path.is_file():
        raise NotFound("saved vector index", str(folder), f"no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(str(path), f"not a {FORMAT} manifest")
    verify_files(folder, manifest["files"])
    return manifest


def top_k_positions(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of the k largest scores per row (1 ≤ k ≤ columns), best first, ties to the lower column."""
    n_rows, n = scores.shape
    if k >= n:
        order = np.argsort(-scores, axis=1, kind="stable")
        return order, np.take_along_axis(scores, order, axis=1)
    kth = np.partition(scores, n - k, axis=1)[:, n - k]  # the k-th largest per row
    rows, cols = np.nonzero(scores >= kth[:, None])  # k per row, more where scores tie with the k-th
    vals = scores[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    counts = np.bincount(rows, minlength=n_rows)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = order[rank < k]  # rows ascending in `order`, so rank counts within each row
    return cols[keep].reshape(n_rows, k), vals[keep].reshape(n_rows, k)

