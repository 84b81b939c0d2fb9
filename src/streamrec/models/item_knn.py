"""Item-based k-nearest neighbours: shrunk cosine similarity, top-N neighbours per title, score = history @ S."""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, Field
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.models._neighbors import ItemItemModel, training_matrix, top_n_rows


class ItemKNNConfig(BaseModel, extra="forbid"):
    n_neighbors: int = Field(100, ge=1, le=10_000, description="similar titles kept per title")
    shrinkage: float = Field(
        10.0, ge=0, le=1e6,
        description="added to the cosine denominator: damps similarities resting on few co-viewers")
    weighting: Literal["none", "idf"] = Field(
        "none", description="'idf' down-weights heavy users (log(1 + n_items / titles the user watched))")
    binary: bool = Field(False, description="use 1 for every watched title instead of its weight (similarity only)")


class ItemKNN(ItemItemModel):
    """Sparse item-item cosine kNN (Sarwar et al. 2001) with shrinkage (Koren 2008) and optional user IDF."""

    name = "item_knn"
    config_type = ItemKNNConfig
    config: ItemKNNConfig
    learned = ("similarity_",)

    def fit(self, data: Interactions) -> Self:
        """Compute the top-N shrunk cosine neighbours of every title.

        Args:
            data: training interactions.
        Returns:
            self, with `similarity_` (n_items × n_items float32 CSR; row i holds i's neighbours).
        """
        self._check_data(data)
        matrix = training_matrix(data, self.config.binary)
        if self.config.weighting == "idf":
            per_user = np.diff(matrix.indptr).astype(np.float64)
            idf = np.log1p(data.n_items / np.maximum(per_user, 1.0)).astype(np.float32)
            matrix = sparse.csr_matrix(sparse.diags(idf) @ matrix)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel()).astype(np.float32)
        shrinkage = np.float32(self.config.shrinkage)

        def cosine(block: np.ndarray, start: int, stop: int) -> np.ndarray:
            denom = norms[start:stop, None] * norms[None, :] + shrinkage
            np.divide(block, denom, out=block, where=denom > 0)
            return block

        self.similarity_ = top_n_rows(matrix.T.tocsr(), matrix, self.config.n_neighbors, cosine)
        self.item_ids_ = np.asarray(data.item_ids, dtype=object)
        return self
