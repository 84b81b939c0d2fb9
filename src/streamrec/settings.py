"""One settings root for the whole system: a `streamrec.toml` profile plus STREAMREC_* environment variables.

Precedence (highest first): explicit arguments, environment (STREAMREC_INGEST__UNKNOWN_TITLES=accept),
the chosen profile's table in streamrec.toml ([profile.NAME]), the file's top level, the defaults here.
Each seam is a discriminated config (type: "duckdb" | "spark" ...); unknown keys are rejected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streamrec.errors import ConfigError


class DuckDBEventStoreConfig(BaseModel, extra="forbid"):
    type: Literal["duckdb"] = "duckdb"
    path: str | None = Field(None, description="database file; default DATA_DIR/events.duckdb")
    memory_limit: str | None = Field(None, description="DuckDB memory_limit, e.g. '4GB'")
    threads: int | None = Field(None, ge=1, description="DuckDB threads (default: all cores)")


EventStoreConfig = Annotated[DuckDBEventStoreConfig, Field(discriminator="type")]


class IngestConfig(BaseModel, extra="forbid"):
    """Validation rules and policies for ingestion (shared by batch files and the events API)."""

    unknown_titles: Literal["quarantine", "accept"] = Field(
        "quarantine", description="events for titles not in the catalog (checked only once a catalog is loaded)"
    )
    unknown_users: Literal["accept", "quarantine"] = Field(
        "accept", description="events for users without a profile: accept (profile created later) or quarantine"
    )
    ts_floor: str = Field("1995-01-01", description="events before this UTC date are rejected")
    max_future_s: int = Field(300, ge=0, description="events more than this many seconds in the future are rejected")
    max_file_mb: int = Field(8192, ge=1, description="files larger than this are refused before reading")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)


class PreprocessConfig(BaseModel, extra="forbid"):
    """Cleaning and weighting of stored events before training."""

    session_gap_s: int = Field(30 * 60, gt=0, description="inactivity that starts a new session")
    bot_max_events_per_min: float = Field(60.0, gt=0, description="users above this sustained rate are bots")
    bot_min_events: int = Field(50, ge=1, description="only users with at least this many events are checked")
    min_user_interactions: int = Field(1, ge=1, description="k-core: users with fewer positives are dropped")
    min_item_interactions: int = Field(1, ge=1, description="k-core: titles with fewer positives are dropped")
    play_weight: float = Field(1.0, ge=0)
    complete_weight: float = Field(3.0, ge=0)
    add_to_list_weight: float = Field(1.0, ge=0)
    rating_weight: float = Field(1.0, ge=0, description="weight of a rating at the top of the scale")
    rating_scale_max: float | None = Field(
        None, gt=0, description="top of the rating scale; default: 5 if every rating is <= 5, else 10"
    )
    rating_neutral: float = Field(
        0.5, ge=0, lt=1, description="share of the scale that adds nothing; lower ratings subtract weight"
    )
    complete_fraction: float = Field(0.9, gt=0, le=1, description="progress at or above this counts as completed")
    bot_max_watch_ratio: float = Field(
        1.0, gt=0, description="bots watch more seconds than this many times a watch window's length"
    )
    bot_rate_types: list[Literal["impression", "play", "progress", "complete", "rating", "add_to_list"]] = Field(
        default_factory=lambda: ["impression", "play", "progress", "complete", "add_to_list"],
        description="event types counted by the event-rate check (impressions: one per request); ratings are "
        "left out by default because rating pages (MovieLens) legitimately produce bursts",
    )
    bot_watch_window_s: int = Field(24 * 3600, gt=0, description="length of the watch-time window (tumbling)")
    bot_max_titles_per_hour: int = Field(40, ge=1, description="users playing more distinct titles in an hour are bots")
    quality_late_after_h: float = Field(
        24.0, gt=0, description="quality: events older than this before a batch's newest event are late"
    )


class RegistryConfig(BaseModel, extra="forbid"):
    """MLflow tracking and model registry (aliases champion / challenger). A server is only a different URI."""

    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default sqlite:///DATA_DIR/mlflow.db")
    registry_uri: str | None = Field(None, description="MLflow model registry URI; default: the tracking URI")
    artifact_location: str | None = Field(
        None, description="artifact root of a new experiment; default DATA_DIR/mlartifacts for a local (sqlite/file) "
        "store, the server's own default otherwise"
    )
    experiment: str = Field("streamrec", min_length=1, description="MLflow experiment that training runs go to")
    model_name: str = Field("streamrec-recommender", min_length=1, description="registered model name")
    http_max_retries: int = Field(2, ge=0, description="retries of a request to a tracking server")
    http_timeout_s: int = Field(30, ge=1, description="seconds before a request to a tracking server fails")


class LoggingConfig(BaseModel, extra="forbid"):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_logs: bool = Field(False, alias="json", description="JSON lines (services) instead of console output")


class Settings(BaseSettings):
    """The settings root. Build one with `load_settings()`."""

    model_config = SettingsConfigDict(env_prefix="STREAMREC_", env_nested_delimiter="__", extra="forbid")

    profile: str = "default"
    data_dir: Path = Field(Path("data"), description="where stores, models and reports live")
    seed: int = 42
    event_store: EventStoreConfig = Field(default_factory=DuckDBEventStoreConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @property
    def event_store_path(self) -> Path:
        return Path(self.event_store.path) if self.event_store.path else self.data_dir / "events.duckdb"

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
