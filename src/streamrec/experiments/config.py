"""Experiment definitions: what is tested (variants: a registry model and/or request-time pipeline settings), on whom
(traffic share, eligibility by region and new users), when (start, stop), in which layer (experiments of one layer
never share a user; layers are independent), and how it is judged (a primary metric and guardrails).

Defined in `streamrec.toml` under `[[experiments]]` or through the admin API; validated here, with every mistake named.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class VariantConfig(BaseModel, extra="forbid"):
    """One arm: `model` (a registry alias or version, or a saved model folder; None: the served model) and request-time
    pipeline settings (`diversity`: the MMR weight; None: the model's own)."""

    name: str = Field(pattern=NAME)
    weight: float = Field(1.0, gt=0, description="share of the experiment's users, relative to the other variants")
    model: str | None = Field(None, min_length=1, description="registry alias/version or model folder")
    diversity: float | None = Field(None, ge=0, le=1, description="MMR weight for this variant's lists")


class GuardrailConfig(BaseModel, extra="forbid"):
    """Limits a variant must keep for a ship decision."""

    latency_p99_ms: float | None = Field(250.0, gt=0, description="p99 of the variant's list requests")
    error_rate: float | None = Field(0.01, ge=0, le=1, description="share of the variant's requests that failed or "
                                                                    "fell back to trending")
    coverage_min: float | None = Field(None, ge=0, le=1, description="least share of the catalog the variant shows")


class ExperimentConfig(BaseModel, extra="forbid", validate_assignment=False):
    name: str = Field(pattern=NAME)
    variants: list[VariantConfig] = Field(min_length=2)
    salt: str | None = Field(None, min_length=1, max_length=100, description="hash salt (default: the name); a new "
                                                                           "salt reshuffles the users")
    layer: str = Field("default", pattern=NAME, description="experiments of one layer never share a user")
    traffic: float = Field(1.0, gt=0, le=1, description="share of the layer's eligible users in this experiment")
    regions: list[str] | None = Field(None, description="only users of these regions (None: all)")
    new_users_only: bool = Field(False, description="only users who signed up within new_user_days")
    new_user_days: float = Field(14.0, gt=0)
    start: datetime | None = None
    stop: datetime | None = None
    primary_metric: Literal["play_rate", "ctr", "watch_minutes"] = "play_rate"
    guardrails: GuardrailConfig = Field(default_factory=GuardrailConfig)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment '{self.name}': variant names repeat: {names}")
        for edge in ("start", "stop"):  # compared with request times: naive UTC
            value = getattr(self, edge)
            if value is not None and value.tzinfo is not None:
                setattr(self, edge, value.astimezone(UTC).replace(tzinfo=None))
        if self.start and self.stop and self.stop <= self.start:
            raise ValueError(f"experiment '{self.name}': stop {self.stop} is not after start {self.start}")
        return self

    @property
    def hash_salt(self) -> str:
        return self.salt or self.name

    def allocation(self) -> dict[str, float]:
        """Each variant's expected share of the experiment's users."""
        total = sum(v.weight for v in self.variants)
        return {v.name: v.weight / total for v in self.variants}


def check_layers(experiments: list[ExperimentConfig]) -> list[ExperimentConfig]:
    """Names are unique and each layer's traffic adds up to at most 1 (experiments of a layer take consecutive,
    disjoint slices of it, in the order given)."""
    names = [e.name for e in experiments]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"experiment names repeat: {repeated}")
    layers: dict[str, float] = {}
    for e in experiments:
        layers[e.layer] = layers.get(e.layer, 0.0) + e.traffic
    over = {layer: round(t, 6) for layer, t in layers.items() if t > 1 + 1e-9}
    if over:
        raise ValueError(f"layers with more than all of their traffic: {over} (the experiments of a layer share it)")
    return experiments
