"""Assignment: deterministic hashing, so a user's variant is sticky across requests, processes and restarts without
storing anything. A user's place in a layer is sha256("layer:" + layer + ":" + user) as a number in [0, 1): the layer's
experiments take consecutive slices of that range (mutually exclusive). Within an experiment, the variant comes from an
independent hash with the experiment's salt, split by the variants' weights. Different layers and salts hash
independently (tests/unit/test_experiments_assign.py checks uniformity with a chi-square over 1M ids, stickiness and
independence)."""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from streamrec.experiments.config import ExperimentConfig, check_layers


def unit_hash(key: str) -> float:
    """A uniform number in [0, 1) from the first 8 bytes of sha256(key)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    layer: str


class Assigner:
    """Assigns users to the configured experiments (immutable; replaced as a whole when definitions change)."""

    def __init__(self, experiments: list[ExperimentConfig]):
        self.experiments = check_layers(list(experiments))
        self.by_name = {e.name: e for e in self.experiments}
        self._slices: dict[str, list[tuple[float, float, ExperimentConfig]]] = {}
        for e in self.experiments:
            start = self._slices[e.layer][-1][1] if e.layer in self._slices else 0.0
            self._slices.setdefault(e.layer, []).append((start, start + e.traffic, e))
        self._cuts = {e.name: list(accumulate(e.allocation().values())) for e in self.experiments}

    def variant_of(self, experiment: ExperimentConfig, user_id: str) -> str:
        """The user's variant if they are in `experiment` (the traffic slice and eligibility aside)."""
        cuts = self._cuts[experiment.name]
        i = min(bisect_right(cuts, unit_hash(f"exp:{experiment.hash_salt}:{user_id}")), len(cuts) - 1)
        return experiment.variants[i].name

    def assign(self, user_id: str, at: datetime, region: str | None = None,
               signup: datetime | None = None) -> list[Assignment]:
        """The user's experiments at `at`, one at most per layer, in configuration order."""
        out = []
        for layer, slices in self._slices.items():
            point = unit_hash(f"layer:{layer}:{user_id}")
            for start, stop, e in slices:
                if start <= point < stop and _eligible(e, at, region, signup):
                    out.append(Assignment(e.name, self.variant_of(e, user_id), layer))
                    break
        return out


def _eligible(e: ExperimentConfig, at: datetime, region: str | None, signup: datetime | None) -> bool:
    if (e.start is not None and at < e.start) or (e.stop is not None and at >= e.stop):
        return False
    if e.regions is not None and region not in e.regions:
        return False
    if e.new_users_only and (signup is None or at - signup > timedelta(days=e.new_user_days)):
        return False
    return True
