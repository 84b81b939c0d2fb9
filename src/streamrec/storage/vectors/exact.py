"""Exact inner-product search with numpy: blocked matmul, then a partition for the top k. The default index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse

from streamrec.errors import DataError
from streamrec.storage.vectors.base import BaseVectorIndex, ExactIndexConfig, top_k_positions


class ExactIndex(BaseVectorIndex):
    """Scores every vector for every query (float32 BLAS), a block of queries at a time; exact by construction."""

    kind = "exact"
    config_type = ExactIndexConfig
    config: ExactIndexConfig

    @property
    def dim(self) -> int:
        return self.vectors_.shape[1]

    def _build(self, vectors: np.ndarray) -> None:
        self.vectors_ = vectors

    def _search(self, queries: np.ndarray, width: int, mask: np.ndarray | sparse.csr_matrix | None
                ) -> tuple[np.ndarray, np.ndarray]:
        m, n = len(queries), len(self.vectors_)
        rows_per_block = max(1, (self.config.block_mb << 20) // (4 * n))
        positions = np.empty((m, width), np.int64)
        scores = np.empty((m, width), np.float32)
        for start in range(0, m, rows_per_block):
            block = slice(start, min(start + rows_per_block, m))
            s = queries[block] @ self.vectors_.T
            if isinstance(mask, np.ndarray):
                s[mask[block]] = -np.inf
            elif mask is not None:
                r, c = mask[block].nonzero()
                s[r, c] = -np.inf
            pos, val = top_k_positions(s, width)
            pos[np.isneginf(val)] = -1  # excluded: fewer than `width` items left for this query
            positions[block], scores[block] = pos, val
        return positions, scores

    def _write(self, folder: Path) -> list[str]:
        np.save(folder / "vectors.npy", self.vectors_, allow_pickle=False)
        return ["vectors.npy"]

    def _read(self, folder: Path) -> None:
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        if vectors.ndim != 2 or vectors.dtype != np.float32 or len(vectors) != len(self.ids_):
            raise DataError(str(folder / "vectors.npy"), f"expected {len(self.ids_)} float32 rows, got "
                            f"{vectors.shape} {vectors.dtype}")
        self.vectors_ = vectors
