"""One settings root for the whole system: a `streamrec.toml` profile plus STREAMREC_* environment variables.

Precedence (highest first): explicit arguments, environment (STREAMREC_INGEST__UNKNOWN_TITLES=accept),
the chosen profile's table in streamrec.toml ([profile.NAME]), the file's top level, the defaults here.
Each seam is a discriminated config (type: "duckdb" | "spark" ...; settings/backends.py); the stages' own settings
are in settings/stages.py; unknown keys are rejected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streamrec.errors import ConfigError
from streamrec.experiments.config import ExperimentConfig, check_layers
from streamrec.settings.backends import (
    DuckDBEventStoreConfig,
    EngineConfig,
    EventBusConfig,
    EventStoreConfig,
    InProcessEventBusConfig,
    MemoryOnlineStoreConfig,
    OnlineStoreConfig,
    RedisEventBusConfig,
    RedisOnlineStoreConfig,
    SparkConfig,
    SparkEventStoreConfig,
)
from streamrec.settings.stages import (
    CategoricalDistribution,
    Distribution,
    FilterPolicy,
    FixedValue,
    FloatDistribution,
    IngestConfig,
    IntDistribution,
    LoggingConfig,
    PipelineConfig,
    PreprocessConfig,
    RankerConfig,
    RegistryConfig,
    ServingConfig,
    SplitConfig,
    TrainConfig,
    TuningConfig,
)

__all__ = [
    "CategoricalDistribution", "Distribution", "DuckDBEventStoreConfig", "EngineConfig", "EventBusConfig",
    "EventStoreConfig", "FilterPolicy", "FixedValue", "FloatDistribution", "InProcessEventBusConfig", "IngestConfig",
    "IntDistribution", "LoggingConfig", "MemoryOnlineStoreConfig", "OnlineStoreConfig", "PipelineConfig",
    "PreprocessConfig", "RankerConfig", "RedisEventBusConfig", "RedisOnlineStoreConfig", "RegistryConfig",
    "ServingConfig", "Settings", "SparkConfig", "SparkEventStoreConfig", "SplitConfig", "TrainConfig", "TuningConfig",
    "dump_settings", "load_settings", "restore_settings",
]


class Settings(BaseSettings):
    """The settings root. Build one with `load_settings()`."""

    model_config = SettingsConfigDict(env_prefix="STREAMREC_", env_nested_delimiter="__", extra="forbid")

    profile: str = "default"
    data_dir: Path = Field(Path("data"), description="where stores, models and reports live")
    seed: int = 42
    event_store: EventStoreConfig = Field(default_factory=DuckDBEventStoreConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    event_bus: EventBusConfig = Field(default_factory=InProcessEventBusConfig)
    online_store: OnlineStoreConfig = Field(default_factory=MemoryOnlineStoreConfig)
    experiments: list[ExperimentConfig] = Field(default_factory=list, description="A/B tests ([[experiments]])")

    @model_validator(mode="after")
    def _experiment_layers(self) -> Settings:
        check_layers(self.experiments)
        return self

    @property
    def event_store_path(self) -> Path:
        if self.event_store.path:
            return Path(self.event_store.path)
        return self.data_dir / ("lake" if self.event_store.type == "spark" else "events.duckdb")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML profile is passed in through init kwargs by load_settings, under the environment.
        return env_settings, init_settings


def _read_profile(path: Path, profile: str) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read settings: {exc}") from exc
    profiles = raw.pop("profile", {})
    if profile != "default" and profile not in profiles:
        raise ConfigError(f"{path}: no [profile.{profile}] table (have: {', '.join(profiles) or 'none'})")
    merged = _deep_merge(raw, profiles.get(profile, {}))
    merged["profile"] = profile
    return merged


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_settings(config: Path | str | None = None, profile: str | None = None, **overrides: Any) -> Settings:
    """Settings from the TOML file (`config`, else $STREAMREC_CONFIG, else ./streamrec.toml if present),
    its profile (`profile`, else $STREAMREC_PROFILE, else "default"), the environment and `overrides`.

    Raises:
        ConfigError: the file is unreadable, the profile missing, or a value invalid (names the key).
    """
    path = Path(config or os.environ.get("STREAMREC_CONFIG", "streamrec.toml"))
    profile = profile or os.environ.get("STREAMREC_PROFILE", "default")
    values: dict[str, Any] = {}
    if path.is_file():
        values = _read_profile(path, profile)
    elif config is not None:
        raise ConfigError(f"{path}: settings file not found")
    values = _deep_merge(values, {k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings ({path if path.is_file() else 'defaults'}): {problems}") from exc


def dump_settings(settings: Settings) -> str:
    """The settings as JSON, secrets included (for a child process's environment, never for a file or a log)."""
    import json

    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return json.dumps(plain(settings.model_dump(by_alias=True)))


def restore_settings(text: str) -> Settings:
    """Settings from `dump_settings` (the environment still overrides, as everywhere)."""
    import json

    return Settings(**json.loads(text))
