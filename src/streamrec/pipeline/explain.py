"""Why a title is on the list: the source that proposed it, the watched title it follows from ("because you watched
X"), its score, and the features that pushed the ranker's score up most (LightGBM's per-row SHAP contributions)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class Explanation:
    item_id: str
    source: str
    score: float
    because_you_watched: str | None = None
    top_features: list[tuple[str, float]] = field(default_factory=list)

    def text(self) -> str:
        parts = [f"from {self.source}"]
        if self.because_you_watched:
            parts.append(f"because you watched {self.because_you_watched}")
        if self.top_features:
            parts.append("driven by " + ", ".join(f"{name} ({value:+.2f})" for name, value in self.top_features))
        return "; ".join(parts)


def seed_titles(history: sparse.csr_matrix, cols: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """For one user: per recommended column, the history column contributing most to it (similarity[h, c] times
    the history weight), or -1 when nothing in the history points to it."""
    hist_cols, weights = history.indices, history.data
    if len(hist_cols) == 0 or len(cols) == 0:
        return np.full(len(cols), -1, dtype=np.int64)
    contribution = similarity[np.ix_(hist_cols, cols)] * weights[:, None]  # history × recommended
    best = contribution.argmax(axis=0)
    return np.where(contribution.max(axis=0) > 0, hist_cols[best], -1)


def explain(item_ids: np.ndarray, cols: np.ndarray, scores: np.ndarray, sources: list[str],
            history: sparse.csr_matrix, similarity: np.ndarray | None = None,
            contributions: np.ndarray | None = None, feature_names: list[str] | None = None,
            top: int = 3) -> list[Explanation]:
    """Explanations for one user's list.

    Args:
        item_ids: the catalog's ids by column.
        cols, scores, sources: the list's columns, final scores and proposing source names.
        history: the user's (1 × titles) history row.
        similarity: titles × titles item-item weights (e.g. EASE's B) for "because you watched".
        contributions: (len(cols) × features[+1]) per-feature contributions to each title's ranker score.
    """
    seeds = seed_titles(history, cols, similarity) if similarity is not None else np.full(len(cols), -1)
    out = []
    for i, (col, score, source) in enumerate(zip(cols, scores, sources)):
        drivers: list[tuple[str, float]] = []
        if contributions is not None and feature_names:
            values = contributions[i, :len(feature_names)]
            order = np.argsort(-values)[:top]
            drivers = [(feature_names[j], float(values[j])) for j in order if values[j] > 0]
        seed = item_ids[seeds[i]] if seeds[i] >= 0 else None
        out.append(Explanation(str(item_ids[col]), source, float(score), seed, drivers))
    return out
