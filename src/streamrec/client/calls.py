"""Every endpoint of the serving API once: its method and path template (as the OpenAPI schema names them), whether
it needs the API key, whether sending it twice is safe, and how a call to it is built and its answer read. The sync
and async clients only send what these builders make."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx2
from pydantic import BaseModel

from streamrec.experiments.config import ExperimentConfig
from streamrec.serving.schemas import (
    ClockSet,
    EventsAccepted,
    ExperimentList,
    Health,
    HomePage,
    Models,
    Promoted,
    Ready,
    Recommendations,
    Similar,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # the template of the OpenAPI schema: /v1/users/{user_id}/recommendations
    admin: bool = False  # sends the API key (X-API-Key)
    retry_safe: bool = True  # may be sent again after a 5xx or a timeout (the server may have acted on it)


# client method name → endpoint; tests check this against the app's OpenAPI schema, both ways
ENDPOINTS: dict[str, Endpoint] = {
    "recommendations": Endpoint("GET", "/v1/users/{user_id}/recommendations"),
    "home": Endpoint("GET", "/v1/users/{user_id}/home"),
    "similar": Endpoint("GET", "/v1/titles/{item_id}/similar"),
    "post_events": Endpoint("POST", "/v1/events", admin=True),  # safe: every event has an event_id, deduplicated
    "models": Endpoint("GET", "/v1/models"),
    "reload": Endpoint("POST", "/v1/admin/reload", admin=True),  # loading the same model twice serves the same
    # not safe: a second promote succeeds too, but answers with the new champion as the previous one
    "promote": Endpoint("POST", "/v1/admin/promote", admin=True, retry_safe=False),
    "set_clock": Endpoint("POST", "/v1/admin/clock", admin=True),  # an absolute time
    "experiments": Endpoint("GET", "/v1/experiments"),
    "set_experiments": Endpoint("PUT", "/v1/admin/experiments", admin=True),  # replaces all of them
    "health": Endpoint("GET", "/healthz"),
    "ready": Endpoint("GET", "/readyz"),
    "metrics": Endpoint("GET", "/metrics"),
}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, ready to send, and how to read a successful answer."""

    endpoint: Endpoint
    url: str  # the path with its parameters filled in
    read: Callable[[httpx2.Response], T]
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """How errors name the call: method and path."""
        return f"{self.endpoint.method} {self.url}"


def _model(kind: type[M]) -> Callable[[httpx2.Response], M]:
    def read(response: httpx2.Response) -> M:
        return kind.model_validate_json(response.content)

    return read


def _text(response: httpx2.Response) -> str:
    return response.text


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):  # naive times are UTC, as the API reads them
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise TypeError(f"a {type(value).__name__} cannot be sent as JSON")


def _json(body: Any) -> bytes:
    return json.dumps(body, default=_jsonable, separators=(",", ":")).encode()


def _call(name: str, read: Callable[[httpx2.Response], T], body: Any = None, request_id: str | None = None,
          params: Sequence[tuple[str, Any]] = (), **path: str) -> Call[T]:
    endpoint = ENDPOINTS[name]
    url = endpoint.path.format(**{k: quote(v, safe="") for k, v in path.items()})
    query = tuple((k, _param(v)) for k, v in params if v is not None)
    headers: tuple[tuple[str, str], ...] = (("X-Request-ID", request_id),) if request_id else ()
    if body is not None:
        headers += (("Content-Type", "application/json"),)
    return Call(endpoint, url, read, query, None if body is None else _json(body), headers)


def _param(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def recommendations(user_id: str, k: int, region: str | None, device: str | None, exclude: Sequence[str],
                    explain: bool, request_id: str | None) -> Call[Recommendations]:
    params = [("k", k), ("region", region), ("device", device), *(("exclude", x) for x in exclude)]
    if explain:
        params.append(("explain", True))
    return _call("recommendations", _model(Recommendations), None, request_id, params, user_id=user_id)


def home(user_id: str, region: str | None, device: str | None, request_id: str | None) -> Call[HomePage]:
    return _call("home", _model(HomePage), None, request_id, [("region", region), ("device", device)],
                 user_id=user_id)


def similar(item_id: str, k: int, region: str | None, request_id: str | None) -> Call[Similar]:
    return _call("similar", _model(Similar), None, request_id, [("k", k), ("region", region)], item_id=item_id)


def post_events(events: Sequence[Mapping[str, Any]], request_id: str | None) -> Call[EventsAccepted]:
    return _call("post_events", _model(EventsAccepted), {"events": [dict(e) for e in events]}, request_id)


def models() -> Call[Models]:
    return _call("models", _model(Models))


def reload(model: str | None) -> Call[Models]:
    return _call("reload", _model(Models), {"model": model} if model is not None else {})


def promote(version: str | int, reload: bool) -> Call[Promoted]:
    return _call("promote", _model(Promoted), {"version": str(version), "reload": reload})


def set_clock(at: datetime) -> Call[ClockSet]:
    return _call("set_clock", _model(ClockSet), {"at": at})


def experiments() -> Call[ExperimentList]:
    return _call("experiments", _model(ExperimentList))


def set_experiments(definitions: Sequence[ExperimentConfig | Mapping[str, Any]]) -> Call[ExperimentList]:
    listed = [d.model_dump(mode="json") if isinstance(d, BaseModel) else dict(d) for d in definitions]
    return _call("set_experiments", _model(ExperimentList), {"experiments": listed})


def health() -> Call[Health]:
    return _call("health", _model(Health))


def ready() -> Call[Ready]:
    return _call("ready", _model(Ready))


def metrics() -> Call[str]:
    return _call("metrics", _text)
