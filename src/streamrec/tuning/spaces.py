"""Search spaces: the built-in distributions per model, merged with streamrec.toml, checked against model configs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter

from streamrec.errors import ConfigError
from streamrec.settings import (
    CategoricalDistribution,
    Distribution,
    FixedValue,
    FloatDistribution,
    IntDistribution,
    TuningConfig,
)

Space = dict[str, Distribution]


def _f(low: float, high: float, log: bool = False) -> FloatDistribution:
    return FloatDistribution(low=low, high=high, log=log)


def _i(low: int, high: int, log: bool = False) -> IntDistribution:
    return IntDistribution(low=low, high=high, log=log)


def _c(*choices: Any) -> CategoricalDistribution:
    return CategoricalDistribution(choices=list(choices))


# Ranges a well-tuned model usually lands in on streaming/MovieLens-like data; override in streamrec.toml.
DEFAULT_SPACES: dict[str, Space] = {
    "popularity": {"half_life_days": _f(1.0, 3650.0, log=True), "measure": _c("weight", "count")},
    "item_knn": {"n_neighbors": _i(5, 1000, log=True), "shrinkage": _f(0.1, 1000.0, log=True),
                 "weighting": _c("none", "idf")},
    "ease": {"l2": _f(1.0, 1e5, log=True), "session_weight": _f(0.0, 20.0),
             "session_seconds": _f(30.0, 86_400.0, log=True)},
    "als": {"factors": _i(16, 256, log=True), "regularization": _f(1e-3, 10.0, log=True),
            "alpha": _f(0.5, 100.0, log=True), "iterations": _i(5, 50)},
    "bpr": {"factors": _i(16, 256, log=True), "learning_rate": _f(1e-3, 0.3, log=True),
            "regularization": _f(1e-5, 0.1, log=True), "iterations": _i(20, 300, log=True)},
    "rp3beta": {"alpha": _f(0.1, 2.0), "beta": _f(0.0, 1.0), "n_neighbors": _i(5, 1000, log=True)},
}

_ADAPTER: TypeAdapter[Distribution] = TypeAdapter(Distribution)


def search_space(model: str, config: TuningConfig | None = None) -> Space:
    """The search space of one model: its built-in space with the configured parameters merged over it.

    Args:
        model: a key of `streamrec.models.MODELS`.
        config: the tuning settings (`[tuning.spaces.MODEL]` overrides; None: built-in only).
    Returns:
        parameter -> distribution, every parameter checked against the model's config type (bounds included).
    Raises:
        ConfigError: unknown model (lists the known ones), a parameter the model does not have (names it and the
            ones it has), a range or choice the model's config rejects, or an empty space.
    """
    from streamrec.models import MODELS  # importing the registry imports every model module

    if model not in MODELS:
        raise ConfigError(f"tuning: unknown model '{model}'; known models: {', '.join(MODELS)}")
    space: Space = dict(DEFAULT_SPACES.get(model, {}))
    for param, spec in ((config.spaces if config else {}).get(model) or {}).items():
        space[param] = spec if isinstance(spec, BaseModel) else _ADAPTER.validate_python(spec)
    check_space(model, space, MODELS[model].config_type)
    if not any(not isinstance(d, FixedValue) for d in space.values()):
        raise ConfigError(f"tuning: model '{model}' has nothing to search (set [tuning.spaces.{model}] in "
                          "streamrec.toml)")
    return space


def check_space(model: str, space: Mapping[str, Distribution], config_type: type[BaseModel]) -> None:
    """Reject parameters `config_type` lacks and values at a range's ends (or choices) it would refuse.

    Raises:
        ConfigError: naming the model, the parameter and what is wrong.
    """
    fields = config_type.model_fields
    for param, dist in space.items():
        if param not in fields:
            raise ConfigError(f"tuning: model '{model}' has no parameter '{param}' "
                              f"(its parameters: {', '.join(fields)})")
        for value in _probe_values(dist):
            try:
                config_type(**{param: value})
            except ValueError as exc:  # pydantic's ValidationError
                first = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
                raise ConfigError(f"tuning: model '{model}', parameter '{param}': value {value!r} of the search "
                                  f"space is invalid: {first}") from exc


def _probe_values(dist: Distribution) -> list[Any]:
    if isinstance(dist, (FloatDistribution, IntDistribution)):
        return [dist.low, dist.high]
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.value]


def space_to_json(space: Mapping[str, Distribution]) -> dict[str, Any]:
    """A plain, comparable form of a space (stored with a study to detect a changed space)."""
    return {param: dist.model_dump(mode="json") for param, dist in sorted(space.items())}
