"""User segments by training activity (new … heavy), for metric breakdowns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamrec.errors import ConfigError


@dataclass(frozen=True)
class Segments:
    """Bins of training-interaction counts: `thresholds` (ascending) cut them into len(thresholds) + 1 segments.

    Default: new (< 10 training interactions), regular (10–99), heavy (≥ 100).
    """

    thresholds: tuple[int, ...] = (10, 100)
    names: tuple[str, ...] = ("new", "regular", "heavy")

    def __post_init__(self) -> None:
        if len(self.names) != len(self.thresholds) + 1:
            raise ConfigError(f"segments: {len(self.thresholds)} thresholds need {len(self.thresholds) + 1} names, "
                              f"got {len(self.names)}")
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ConfigError(f"segments: thresholds must be strictly ascending, got {self.thresholds}")

    def describe(self) -> list[str]:
        """Each segment's name with its range, e.g. 'regular (10–99)'."""
        bounds = [0, *self.thresholds, None]
        out = []
        for name, low, high in zip(self.names, bounds[:-1], bounds[1:]):
            out.append(f"{name} ({low}–{high - 1})" if high is not None else f"{name} (≥{low})")
        return out

    def assign(self, train_counts: np.ndarray) -> np.ndarray:
        """Segment index (0..len(names)-1) of each user from their training interaction count."""
        return np.searchsorted(np.asarray(self.thresholds), np.asarray(train_counts), side="right")
