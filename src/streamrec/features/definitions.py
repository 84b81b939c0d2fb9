"""Feature definitions, declared once: name, entity, window, aggregation over which events. Offline (point in
time, DuckDB) and, later, online (incremental) computation both read these, so the two cannot drift apart."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from streamrec.errors import ConfigError
from streamrec.events.schema import EVENT_TYPES

Entity = Literal["user", "title", "context", "user_title"]
Aggregation = Literal["count", "sum", "mean", "days_since_last"]
VALUE_COLUMNS = ("watched_s", "fraction", "rating")  # the numeric event fields a sum or mean may aggregate


class Feature(BaseModel, frozen=True, extra="forbid"):
    """One aggregate of an entity's events strictly before a point in time.

    `count` counts matching events, `sum` / `mean` aggregate `value` over them, `days_since_last` is the age of the
    newest one in days. `window_days` limits the events to that many days before the time (None: all history).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    entity: Literal["user", "title"]
    aggregation: Aggregation
    events: tuple[str, ...] = Field(min_length=1, description="event types aggregated")
    value: str | None = Field(None, description="sum / mean: the event field aggregated")
    window_days: float | None = Field(None, gt=0, le=3650)
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Feature:
        unknown = [t for t in self.events if t not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"feature '{self.name}': unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        needs_value = self.aggregation in ("sum", "mean")
        if needs_value and self.value not in VALUE_COLUMNS:
            raise ValueError(f"feature '{self.name}': {self.aggregation} needs value in {VALUE_COLUMNS}, "
                             f"got {self.value!r}")
        if not needs_value and self.value is not None:
            raise ValueError(f"feature '{self.name}': {self.aggregation} takes no value")
        if self.aggregation == "days_since_last" and self.window_days is not None:
            raise ValueError(f"feature '{self.name}': days_since_last looks at all history (no window)")
        return self


class Attribute(BaseModel, frozen=True, extra="forbid"):
    """A fact about an entity at the time, not an aggregate of events: a catalog column of the `users` / `titles`
    table (alias `c`), possibly relative to the spine row's time `s.ts` (tenure, age of a title), or, for the
    "context" entity, a function of the request alone: its time `s.ts` and device `s.device` (hour, weekday,
    device)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    entity: Literal["user", "title", "context"]
    sql: str = Field(description="SQL expression over c.<catalog column> and s.ts (context: s.ts, s.device)")
    dtype: Literal["DOUBLE", "BIGINT", "BOOLEAN", "VARCHAR"] = "DOUBLE"
    description: str = ""


class GenreMatch(BaseModel, frozen=True, extra="forbid"):
    """How well a title's genres match what the user watched: the mean, over the title's genres, of the share of
    the user's matching events (in the window before the time) whose title had that genre. 0 for a user with no
    such events or a title without genres; genres come from the `titles` catalog."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    entity: Literal["user_title"] = "user_title"
    events: tuple[str, ...] = Field(min_length=1)
    window_days: float | None = Field(None, gt=0, le=3650)
    description: str = ""


class Ratio(BaseModel, frozen=True, extra="forbid"):
    """One windowed aggregate of an entity divided by another of the same entity (None when the denominator is 0),
    e.g. trending velocity: a title's plays in the last day over its plays in the last week. Both parts need a
    window, so online they are computed from the kept rows, exactly as offline."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    entity: Literal["user", "title"]
    numerator: Feature
    denominator: Feature
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Ratio:
        for part in (self.numerator, self.denominator):
            if part.entity != self.entity:
                raise ValueError(f"ratio '{self.name}': part '{part.name}' is a {part.entity} feature, not {self.entity}")
            if part.window_days is None or part.aggregation == "days_since_last":
                raise ValueError(f"ratio '{self.name}': part '{part.name}' needs a window and a count, sum or mean")
        return self

    @property
    def window_days(self) -> float:
        return max(self.numerator.window_days, self.denominator.window_days)  # type: ignore[type-var]


Definition = Feature | Attribute | GenreMatch | Ratio
CATALOG = {"user": "users", "title": "titles"}  # the table an entity's attributes come from


def _windowed(entity: Literal["user", "title"], stem: str, aggregation: Aggregation, events: tuple[str, ...], windows: tuple[int, ...],
              what: str, value: str | None = None) -> list[Feature]:
    return [Feature(name=f"{entity}_{stem}_{days}d", entity=entity, aggregation=aggregation, events=events,
                    value=value, window_days=days, description=f"{what} in the {days} days before")
            for days in windows]


ENGAGED = ("play", "progress", "complete")

# The built-in sets: activity and completion per user, popularity windows and completion per title.
BUILTIN: tuple[Definition, ...] = (
    *_windowed("user", "plays", "count", ("play",), (1, 7, 28), "plays"),
    *_windowed("user", "completes", "count", ("complete",), (7, 28), "finished titles"),
    *_windowed("user", "avg_completion", "mean", ("progress", "complete"), (28,), "mean watched fraction",
               "fraction"),
    Feature(name="user_days_since_last_play", entity="user", aggregation="days_since_last", events=ENGAGED,
            description="days since the user last watched anything (recency)"),
    Feature(name="user_events_all", entity="user", aggregation="count", events=ENGAGED,
            description="engagement events over all history (tenure of activity)"),
    *_windowed("title", "plays", "count", ("play",), (1, 7, 28), "plays"),
    *_windowed("title", "avg_completion", "mean", ("progress", "complete"), (28,), "mean watched fraction",
               "fraction"),
    Ratio(name="title_trending_velocity", entity="title",
          numerator=Feature(name="plays_1d", entity="title", aggregation="count", events=("play",), window_days=1),
          denominator=Feature(name="plays_7d", entity="title", aggregation="count", events=("play",), window_days=7),
          description="plays in the last day over plays in the last 7 days (1/7 for steady interest; more: rising)"),
    Feature(name="title_days_since_last_play", entity="title", aggregation="days_since_last", events=ENGAGED,
            description="days since anyone last watched the title"),
    Attribute(name="user_tenure_days", entity="user", sql="(epoch_us(s.ts) - epoch_us(c.signup_ts)) / 86400e6",
              description="days since the profile signed up"),
    Attribute(name="user_region", entity="user", sql="c.region", dtype="VARCHAR", description="the profile's region"),
    Attribute(name="title_days_since_release", entity="title",
              sql="(epoch_us(s.ts) - epoch_us(CAST(c.release_date AS TIMESTAMP))) / 86400e6",
              description="days since release (negative before it)"),
    Attribute(name="title_runtime_min", entity="title", sql="c.runtime_min", description="runtime in minutes"),
    Attribute(name="title_is_series", entity="title", sql="c.kind = 'series'", dtype="BOOLEAN",
              description="a series rather than a movie"),
    Attribute(name="title_n_genres", entity="title", sql="len(c.genres)", dtype="BIGINT",
              description="how many genres the title has"),
    GenreMatch(name="user_title_genre_match_28d", events=("play",), window_days=28,
               description="share of the user's plays in 28 days in the title's genres"),
    Attribute(name="context_hour", entity="context", sql="hour(s.ts)", dtype="BIGINT", description="hour of day, UTC"),
    Attribute(name="context_weekday", entity="context", sql="isodow(s.ts)", dtype="BIGINT",
              description="day of the week, 1 = Monday"),
    Attribute(name="context_device", entity="context", sql="s.device", dtype="VARCHAR",
              description="the device the request comes from (tv, mobile, web, tablet ...)"),
)


def select(names: list[str] | None = None, entity: Entity | None = None,
           features: tuple[Definition, ...] = BUILTIN) -> list[Definition]:
    """Features by name (all when None), optionally of one entity.

    Raises:
        ConfigError: a name that is not defined (the message lists the defined ones).
    """
    by_name = {f.name: f for f in features}
    if names is not None:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ConfigError(f"unknown features {unknown}; defined: {', '.join(by_name)}")
        chosen = [by_name[n] for n in names]
    else:
        chosen = list(features)
    return [f for f in chosen if entity is None or f.entity == entity]
