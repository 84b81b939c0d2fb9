"""Bootstrap confidence intervals of per-user means (resampling users, percentile method, seeded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval (`low`, `high` are None when there were too few users to resample)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}

    @classmethod
    def from_dict(cls, data: dict) -> "Estimate":
        return cls(data["mean"], data.get("low"), data.get("high"), data.get("n", 0))


def bootstrap_means(values: np.ndarray, n_boot: int = 1000, seed: int = 0, max_cells: int = 20_000_000) -> np.ndarray:
    """Means of `n_boot` resamples (users drawn with replacement) of each column of `values`.

    Args:
        values: per-user values, shape (n_users,) or (n_users, n_metrics); every column uses the same resamples.
        max_cells: resample weights are built in blocks of at most this many cells (memory bound).
    Returns:
        Shape (n_boot,) or (n_boot, n_metrics).
    """
    values = np.asarray(values, dtype=np.float64)
    flat = values.ndim == 1
    matrix = values[:, None] if flat else values
    n = len(matrix)
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, max_cells // n))
    out = np.empty((n_boot, matrix.shape[1]))
    for start in range(0, n_boot, block):
        size = min(block, n_boot - start)
        draws = rng.integers(0, n, size=(size, n))
        flat_index = (draws + (np.arange(size, dtype=np.int64) * n)[:, None]).ravel()
        weights = np.bincount(flat_index, minlength=size * n).reshape(size, n).astype(np.float64)
        out[start:start + size] = weights @ matrix / n
    return out[:, 0] if flat else out


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> list[Estimate]:
    """Mean and percentile-bootstrap interval of each column of `values` (per-user rows), one Estimate per column.

    Fewer than two users give an Estimate without an interval.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = np.asarray(values, dtype=np.float64)
    matrix = values[:, None] if values.ndim == 1 else values
    n = len(matrix)
    if n == 0:
        return [Estimate(float("nan"), None, None, 0) for _ in range(matrix.shape[1])]
    means = matrix.mean(axis=0)
    if n < 2 or n_boot < 1:
        return [Estimate(float(m), None, None, n) for m in means]
    boots = bootstrap_means(matrix, n_boot=n_boot, seed=seed)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail], axis=0)
    return [Estimate(float(m), float(lo), float(hi), n) for m, lo, hi in zip(means, low, high)]
