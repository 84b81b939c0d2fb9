"""The model zoo: every Recommender subclass in this package, found by name; create and load them by name."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import Any

from streamrec.errors import ConfigError, NotFound
from streamrec.models.base import Recommender, top_k


def _discover() -> dict[str, type[Recommender]]:
    """Import every module of this package and collect the concrete Recommender subclasses by `name`."""
    found: dict[str, type[Recommender]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, Recommender) or inspect.isabstract(cls) or cls.__module__ != module.__name__:
                continue
            other = found.get(cls.name)
            if other is not None and other is not cls:
                raise ConfigError(f"two models are named '{cls.name}': {other.__module__} and {cls.__module__}")
            found[cls.name] = cls
    return dict(sorted(found.items()))


MODELS: dict[str, type[Recommender]] = _discover()


def create_model(name: str, config: dict[str, Any] | None = None, **overrides: Any) -> Recommender:
    """An unfitted model by registry name.

    Args:
        name: a key of `MODELS` (e.g. "ease").
        config: hyperparameters; `overrides` win over it.
    Returns:
        The model, its config validated.
    Raises:
        ConfigError: unknown name (the message lists the known ones) or invalid hyperparameters.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; known models: {', '.join(MODELS)}")
    return MODELS[name](config, **overrides)


def load_model(folder: Path | str) -> Recommender:
    """Load a model saved with `Recommender.save`, picking its class from config.json.

    Args:
        folder: the folder `save` wrote.
    Returns:
        The fitted model (checksums verified).
    Raises:
        NotFound: no saved model there. ConfigError: the saved model's name is not in `MODELS`.
        ChecksumError: a file was altered.
    """
    meta_path = Path(folder) / "config.json"
    if not meta_path.is_file():
        raise NotFound("saved model", str(folder))
    try:
        name = json.loads(meta_path.read_text())["model"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{meta_path}: not a saved model's config ({exc})") from exc
    if name not in MODELS:
        raise ConfigError(f"{folder} holds unknown model '{name}'; known models: {', '.join(MODELS)}")
    return MODELS[name].load(folder)


__all__ = ["MODELS", "Recommender", "create_model", "load_model", "top_k"]
