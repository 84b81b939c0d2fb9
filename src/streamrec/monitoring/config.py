"""Thresholds of the monitoring checks, as one typed config (loadable from a TOML file with `load_config`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator

from streamrec.errors import ConfigError


class DriftThresholds(BaseModel, extra="forbid"):
    """When a feature's distribution has moved between the reference (training) and the current (serving) one."""

    psi_warn: float = Field(0.1, gt=0, description="PSI at or above this warns")
    psi_alert: float = Field(0.2, gt=0, description="PSI at or above this alerts")
    bins: int = Field(10, ge=2, le=100, description="PSI bins: quantiles of the reference")
    epsilon: float = Field(1e-4, gt=0, lt=0.01, description="share given to an empty bin (keeps PSI finite)")
    ks_p: float = Field(0.01, gt=0, lt=1, description="two-sample KS p-value below this (with the effect) alerts")
    ks_min_effect: float = Field(0.1, gt=0, le=1, description="KS statistic (max CDF gap) needed for a KS alert, "
                                 "so that huge samples do not alert on negligible shifts")
    min_samples: int = Field(20, ge=2, description="features with fewer non-null values on either side are skipped")

    @model_validator(mode="after")
    def _ordered(self) -> "DriftThresholds":
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn ({self.psi_warn}) must not exceed psi_alert ({self.psi_alert})")
        return self


class QualityThresholds(BaseModel, extra="forbid"):
    """When an ingestion batch looks wrong."""

    batches: int = Field(5, ge=1, description="how many of the latest ingestion batches to check")
    max_rejection_rate: float = Field(0.05, ge=0, le=1, description="quarantined / read above this alerts")
    max_null_rate: dict[str, float] = Field(
        default_factory=lambda: {"event_id": 0.0, "user_id": 0.0, "item_id": 0.0, "type": 0.0, "ts": 0.0},
        description="column → highest allowed share of nulls among a batch's stored events")
    late_after_h: float = Field(24.0, gt=0, description="an event older than this before its batch's newest is late")
    max_late_share: float = Field(0.05, ge=0, le=1, description="late events / stored above this alerts")
    max_new_title_share: float = Field(0.5, ge=0, le=1, description="events on titles never seen in earlier batches / "
                                       "stored above this alerts (not checked on the first batch of a store)")
    min_rows: int = Field(1, ge=0, description="a batch storing fewer events than this alerts")
    volume_ratio: float = Field(10.0, gt=1, description="a batch storing more than this times, or less than 1/this "
                                "of, the median of the other checked batches alerts")


class OnlineThresholds(BaseModel, extra="forbid"):
    """When what serving recommends, and how viewers answer it, looks wrong (the latest day against earlier ones)."""

    attribution_window_h: float = Field(24.0, gt=0, description="a play counts for a response (same request_id) "
                                        "this many hours after it")
    min_responses: int = Field(100, ge=1, description="a variant's day with fewer responses is not judged")
    play_rate_drop: float = Field(0.5, gt=0, lt=1, description="a variant's latest play rate below this times the "
                                  "median of its earlier days alerts")
    top_fraction: float = Field(0.01, gt=0, le=1, description="the most recommended share of the catalog whose "
                                "share of recommended slots is watched (1%: the top 1% of titles)")
    max_top_share: float = Field(0.5, gt=0, le=1, description="the top titles taking more than this share of the "
                                 "latest day's recommended slots alerts")
    min_coverage: float = Field(0.01, ge=0, le=1, description="distinct titles recommended on the latest day over "
                                "the catalog below this warns")
    min_lists: int = Field(50, ge=1, description="a day with fewer served lists is not judged for concentration")


class MonitoringConfig(BaseModel, extra="forbid"):
    """All thresholds of `streamrec monitor`."""

    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    quality: QualityThresholds = Field(default_factory=QualityThresholds)
    online: OnlineThresholds = Field(default_factory=OnlineThresholds)
    recent_days: float = Field(7.0, gt=0, description="recent serving: the served lists and exposures of this many "
                               "days before the newest (serving's clock)")


def load_config(path: Path | None) -> MonitoringConfig:
    """Thresholds from a TOML file (tables [drift], [quality] and [online], key recent_days), or the defaults when
    `path` is None.

    Raises:
        ConfigError: the file is missing, not TOML, or has unknown or invalid keys.
    """
    if path is None:
        return MonitoringConfig()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such thresholds file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return MonitoringConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from exc
