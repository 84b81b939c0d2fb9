"""Compute engines behind the training-engine seam: the embedded one lives in features/, models/, training/; Spark in
engines/spark (pyspark imported only when chosen)."""

from __future__ import annotations

from streamrec.errors import ConfigError
from streamrec.settings import Settings

ENGINES = ("embedded", "spark")


def engine_of(settings: Settings, flag: str | None = None) -> str:
    """The engine a command runs on: its --engine flag, else the setting engine.type.

    Raises:
        ConfigError: an unknown engine name.
    """
    engine = flag or settings.engine.type
    if engine not in ENGINES:
        raise ConfigError(f"--engine: unknown engine '{engine}'; use one of {', '.join(ENGINES)}")
    return engine


def event_store_settings(settings: Settings, flag: str | None) -> Settings:
    """The settings of a command that writes into the event store (ingest, preprocess): `--engine spark` chooses the
    Spark event store (DATA_DIR/lake), as event_store.type = "spark" does; without the flag the event_store setting
    decides (a Spark store is always written by Spark).

    Raises:
        ConfigError: an unknown engine name.
    """
    if flag is not None and engine_of(settings, flag) == "spark" and settings.event_store.type != "spark":
        from streamrec.settings import SparkEventStoreConfig

        return settings.model_copy(update={"event_store": SparkEventStoreConfig()})
    return settings
