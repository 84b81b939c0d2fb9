"""Request and response bodies of the API (documented in its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from streamrec.experiments.config import ExperimentConfig

VARIANT = "default"  # the variant of a response in no experiment


class Attributed(BaseModel):
    """What every response carries, so impressions and later plays can be attributed."""

    request_id: str
    model_version: str | None = Field(description="the served model's version (None: no model loaded)")
    experiment: str | None = Field(None, description="the experiment that decided this answer (None: none)")
    variant: str = Field(VARIANT, description="its variant ('default' outside experiments)")


class Title(BaseModel):
    item_id: str
    score: float | None = None
    source: str = Field(description="what proposed the title: a model source, trending, continue_watching ...")
    explanation: str | None = None


class Recommendations(Attributed):
    user_id: str
    region: str | None
    fallback: str | None = Field(description="None: the ranked path; else candidate_scores, trending, cold_start "
                                                 "or store_unavailable")
    items: list[Title]


class Row(BaseModel):
    id: str = Field(description="continue_watching, top_picks, because_you_watched, trending, new_releases")
    title: str
    items: list[Title]


class HomePage(Attributed):
    user_id: str
    region: str | None
    fallback: str | None
    rows: list[Row]


class Similar(Attributed):
    item_id: str
    fallback: str | None
    items: list[Title]


class EventBatch(BaseModel):
    events: list[dict[str, Any]] = Field(
        description="canonical events (event_id, user_id, item_id, type, ts, ...), validated as ingestion does",
        json_schema_extra={"example": [{"event_id": "e1", "user_id": "u000001", "item_id": "t000001",
                                        "type": "play", "ts": "2024-01-01T12:00:00Z"}]})


class Rejected(BaseModel):
    index: int = Field(description="position of the event in the batch (0-based)")
    field: str
    reason: str
    detail: str


class EventsAccepted(Attributed):
    accepted: int
    held: int = 0  # of the accepted, how many wait in the server's outbox (on disk) until the event bus is back
    duplicates: int
    rejected: list[Rejected]


class ServedInfo(BaseModel):
    version: str
    kind: str
    ref: str
    loaded_at: datetime


class RegistryVersion(BaseModel):
    version: int
    aliases: list[str]
    model: str | None = None
    metrics: dict[str, float] = {}


class Models(Attributed):
    served: ServedInfo | None
    problem: str | None
    registry: list[RegistryVersion] | None
    registry_error: str | None = None


class ReloadRequest(BaseModel):
    model: str | None = Field(None, min_length=1, max_length=1000,
                              description="registry alias or version, or a saved model folder (default: the "
                                          "configured one, usually champion)")


class PromoteRequest(BaseModel):
    version: str = Field(min_length=1, max_length=64, description="the registry version (or alias) to make champion")
    reload: bool = Field(True, description="serve the new champion right away")


class Promoted(Attributed):
    champion: int
    previous: int | None
    served: ServedInfo | None


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str = Field(description="ready, or degraded (serving, with a problem named in reasons)")
    model_version: str | None
    reasons: list[str]


class Problem(BaseModel):
    where: str = Field(description="query.k, path.user_id, body.events.3.ts, header.x-api-key ...")
    what: str


class ErrorBody(Attributed):
    error: str
    message: str
    problems: list[Problem] = []


class ExperimentDefinitions(BaseModel):
    experiments: list[ExperimentConfig] = Field(max_length=100, description="every experiment to serve (replaces "
                                                                             "the current ones)")


class ExperimentList(Attributed):
    experiments: list[ExperimentConfig]


class ClockRequest(BaseModel):
    at: datetime = Field(description="the request time from now on (naive: UTC)")


class ClockSet(Attributed):
    now: datetime
