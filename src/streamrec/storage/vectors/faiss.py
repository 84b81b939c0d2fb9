"""Approximate inner-product search with faiss (the `ann` extra): an HNSW graph, or a flat index for small catalogs.

faiss is imported only here, when a FaissIndex is built or loaded. Exclusions are served by over-fetching (k plus
the most items any query in the batch excludes) and filtering (a fetch of over half the catalog scans the stored
vectors instead of walking the graph, so k ≥ n is exact); scores of the returned items are recomputed exactly
from the stored vectors, and each row is re-sorted best first with ties to the lower id, as the exact index does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError as PydanticValidationError
from scipy import sparse

from streamrec.errors import ConfigError, DataError
from streamrec.storage.vectors.base import BaseVectorIndex, FaissIndexConfig


def import_faiss() -> Any:
    """The faiss module, or a ConfigError saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError("the faiss vector index needs faiss: pip install 'streamrec[ann]' (faiss-cpu)") from exc
    return faiss


class FaissIndex(BaseVectorIndex):
    """HNSW on inner products (or on L2 after the MIPS reduction), or faiss's flat inner-product index."""

    kind = "faiss"
    config_type = FaissIndexConfig
    config: FaissIndexConfig

    @property
    def dim(self) -> int:
        return self.dim_

    @property
    def structure(self) -> str:
        """The structure actually built: "hnsw" or "flat" ("auto" resolved by catalog size)."""
        return "hnsw" if isinstance(self.index_, self._faiss.IndexHNSW) else "flat"

    def _build(self, vectors: np.ndarray) -> None:
        faiss = self._faiss = import_faiss()
        n, self.dim_ = vectors.shape
        cfg = self.config
        flat = cfg.structure == "flat" or (cfg.structure == "auto" and n < cfg.flat_below)
        self._set_threads(n)
        if flat:
            index = faiss.IndexFlatIP(self.dim_)
        elif cfg.metric == "l2_reduction":
            index = faiss.IndexHNSWFlat(self.dim_ + 1, cfg.m, faiss.METRIC_L2)
            vectors = _mips_to_l2(vectors)
        else:
            index = faiss.IndexHNSWFlat(self.dim_, cfg.m, faiss.METRIC_INNER_PRODUCT)
        if not flat:
            index.hnsw.efConstruction = cfg.ef_construction
        index.add(vectors)  # labels are the sorted positions 0..n-1
        self.index_ = index
        self._configure()

    def _search(self, queries: np.ndarray, width: int, mask: np.ndarray | sparse.csr_matrix | None
                ) -> tuple[np.ndarray, np.ndarray]:
        m, n = len(queries), len(self.ids_)
        most_excluded = 0 if mask is None else int(mask.sum(axis=1).max())
        fetch = min(n, width + most_excluded)
        self._set_threads(m)
        index = self.index_
        if fetch * 2 > n and isinstance(index, self._faiss.IndexHNSW):
            index = self._faiss.downcast_index(index.storage)  # most of the catalog: a graph walk misses some, scan
        if index.d == self.dim_ + 1:  # the MIPS-to-L2 reduction: queries get a zero last coordinate
            _, labels = index.search(np.hstack([queries, np.zeros((m, 1), np.float32)]), fetch)
        else:
            _, labels = index.search(queries, fetch)
        found = labels >= 0
        safe = np.where(found, labels, 0)
        if mask is not None:
            rows = np.broadcast_to(np.arange(m)[:, None], labels.shape)
            excluded = mask[rows, safe] if isinstance(mask, np.ndarray) else \
                np.asarray(mask[rows.ravel(), safe.ravel()]).reshape(labels.shape)
            found &= ~excluded
        # exact float32 scores of what was found, from the stored vectors (for every structure and metric alike)
        stored = self._vectors(np.unique(safe))
        scores = np.einsum("mkd,md->mk", stored[1][np.searchsorted(stored[0], safe)], queries)
        scores = np.where(found, scores, -np.inf).astype(np.float32)
        positions = np.where(found, labels, n)  # not found: sorts last
        order = np.lexsort((positions, -scores), axis=1)[:, :width]
        positions = np.take_along_axis(positions, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        positions[positions == n] = -1
        return positions, scores

    def _write(self, folder: Path) -> list[str]:
        self._faiss.write_index(self.index_, str(folder / "index.faiss"))
        return ["index.faiss"]

    def _read(self, folder: Path) -> None:
        faiss = self._faiss = import_faiss()
        index = faiss.read_index(str(folder / "index.faiss"))
        if index.ntotal != len(self.ids_):
            raise DataError(str(folder / "index.faiss"), f"holds {index.ntotal} vectors, expected {len(self.ids_)}")
        reduced = self.config.metric == "l2_reduction" and isinstance(index, faiss.IndexHNSW)
        self.dim_ = index.d - 1 if reduced else index.d
        self.index_ = index
        self._configure()

    def tune(self, ef_search: int) -> None:
        """Change the search-time candidate list of a built HNSW index (no rebuild; a flat index ignores it)."""
        self._check_built()
        try:
            self.config = self.config_type(**{**self.config.model_dump(), "ef_search": ef_search})
        except PydanticValidationError as exc:
            raise ConfigError(f"vector index 'faiss': invalid ef_search: {exc}") from exc
        self._configure()

    # --- helpers ---------------------------------------------------------------------------------------
    def _configure(self) -> None:
        if isinstance(self.index_, self._faiss.IndexHNSW):
            self.index_.hnsw.efSearch = self.config.ef_search

    def _vectors(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, their stored vectors without the reduction's extra coordinate)."""
        vectors = self.index_.reconstruct_batch(positions.astype(np.int64))
        return positions, vectors[:, : self.dim_]

    def _set_threads(self, rows: int) -> None:
        """All configured threads for a batch; one for a single row (faiss splits work over queries)."""
        threads = self.config.threads or os.cpu_count() or 1
        self._faiss.omp_set_num_threads(1 if rows <= 1 else threads)


def _mips_to_l2(vectors: np.ndarray) -> np.ndarray:
    """Append sqrt(max|x|² - |x|²): every vector then has the same norm, so the nearest in L2 to (q, 0) is the
    largest inner product with q (Bachrach et al. 2014)."""
    norms = np.einsum("nd,nd->n", vectors, vectors)
    extra = np.sqrt(np.maximum(norms.max() - norms, 0.0)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([vectors, extra[:, None]]))
