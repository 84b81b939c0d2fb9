"""Feature templates: entities × event groups × aggregations × value fields × windows, expanded into `Feature`
definitions with systematic names (`user_complete_count_7d`, `title_rating_mean_rating_28d`,
`user_add_to_list_days_since_last`), the candidates that feature selection (streamrec.features.selection) tries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import pydantic
from pydantic import BaseModel, Field, field_validator

from streamrec.events.schema import EVENT_TYPES
from streamrec.features.definitions import BUILTIN, VALUE_COLUMNS, Aggregation, Definition, Feature

# The numeric fields each event type carries (events/schema.py): a sum or mean of a field none of its events
# carry would always be empty, so the template skips it.
CARRIES: dict[str, tuple[str, ...]] = {"progress": ("watched_s", "fraction"), "complete": ("watched_s", "fraction"),
                                       "rating": ("rating",)}


class FeatureTemplate(BaseModel, frozen=True, extra="forbid"):
    """A declarative grid of candidate features; `expand()` yields the valid ones.

    `events` names each event group (a name becomes part of the feature names); `windows` are days, None for all
    history. `days_since_last` ignores `windows` (it looks at all history), `count` and `days_since_last` ignore
    `values`.
    """

    entities: tuple[Literal["user", "title"], ...] = ("user", "title")
    events: Mapping[str, tuple[str, ...]] = Field(min_length=1)
    aggregations: tuple[Aggregation, ...] = Field(min_length=1)
    values: tuple[str, ...] = VALUE_COLUMNS
    windows: tuple[int | None, ...] = (1, 7, 28, 90)

    @field_validator("events")
    @classmethod
    def _known_events(cls, groups: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
        for name, types in groups.items():
            if not name.replace("_", "").isalnum() or not name.islower():
                raise ValueError(f"event group name {name!r}: lower-case letters, digits and _ only")
            unknown = [t for t in types if t not in EVENT_TYPES]
            if unknown or not types:
                raise ValueError(f"event group {name!r}: unknown or no event types {unknown}; "
                                 f"known: {', '.join(EVENT_TYPES)}")
        return groups

    @field_validator("windows")
    @classmethod
    def _positive_windows(cls, windows: tuple[int | None, ...]) -> tuple[int | None, ...]:
        if any(w is not None and not 1 <= w <= 3650 for w in windows):
            raise ValueError(f"windows {windows}: days between 1 and 3650 (None: all history)")
        return windows

    def expand(self) -> list[Feature]:
        """Every valid combination as a Feature (invalid ones, by the Feature validator's rules or a value field
        none of the group's events carry, are left out)."""
        out = []
        for entity in self.entities:
            for group, types in self.events.items():
                for aggregation in self.aggregations:
                    values: tuple[str | None, ...] = (None,)
                    if aggregation in ("sum", "mean"):
                        values = tuple(v for v in self.values if any(v in CARRIES.get(t, ()) for t in types))
                    windows = (None,) if aggregation == "days_since_last" else self.windows
                    for value in values:
                        for window in windows:
                            feature = _feature(entity, group, types, aggregation, value, window)
                            if feature is not None:
                                out.append(feature)
        return out


def _feature(entity: str, group: str, types: tuple[str, ...], aggregation: str, value: str | None,
             window: int | None) -> Feature | None:
    name = "_".join(p for p in (entity, group, aggregation, value, f"{window}d" if window else
                                ("all" if aggregation in ("count", "sum", "mean") else None)) if p)
    what = f"{aggregation}{f' of {value}' if value else ''} over {', '.join(types)} events"
    span = f"in the {window} days before" if window else "over all history"
    try:
        return Feature(name=name, entity=entity, aggregation=aggregation, events=types,  # type: ignore[arg-type]
                       value=value, window_days=window, description=f"{what} {span} (generated)")
    except pydantic.ValidationError:  # a combination the definition rejects (e.g. a name too long)
        return None


def _key(feature: Feature) -> tuple:
    """What a feature computes, whatever its name: two features with one key are the same column."""
    return (feature.entity, feature.aggregation, frozenset(feature.events), feature.value, feature.window_days)


def candidates(templates: Iterable[FeatureTemplate] | None = None,
               exclude: Iterable[Definition] = BUILTIN) -> list[Feature]:
    """The templates' features (default DEFAULT_TEMPLATES), without those that compute the same thing as, or share
    a name with, one in `exclude` or an earlier one."""
    seen_names = {f.name for f in exclude}
    seen_keys = {_key(f) for f in exclude if isinstance(f, Feature)}
    out = []
    for template in DEFAULT_TEMPLATES if templates is None else templates:
        for feature in template.expand():
            if feature.name in seen_names or _key(feature) in seen_keys:
                continue
            seen_names.add(feature.name)
            seen_keys.add(_key(feature))
            out.append(feature)
    return out


# The default grid: counts of every event type over 1 to 90 days, recency of every event type, mean rating and
# mean watched fraction of progress events, seconds watched; for users and titles alike.
DEFAULT_TEMPLATES: tuple[FeatureTemplate, ...] = (
    FeatureTemplate(events={t: (t,) for t in EVENT_TYPES}, aggregations=("count", "days_since_last")),
    FeatureTemplate(events={"rating": ("rating",), "progress": ("progress",)}, aggregations=("mean",),
                    values=("rating", "fraction"), windows=(7, 28, 90)),
    FeatureTemplate(events={"watch": ("progress", "complete")}, aggregations=("sum",), values=("watched_s",),
                    windows=(7, 28)),
)
