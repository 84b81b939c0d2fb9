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
