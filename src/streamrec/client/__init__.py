"""A typed Python client of the serving API: `Client` (blocking) and `AsyncClient` (asyncio), on httpx2.

    from streamrec.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as api:
        for title in api.recommendations("u000001", k=5).items:
            print(title.item_id, title.score)

Answers are the pydantic models of the API's OpenAPI schema (streamrec.serving.schemas); errors are the exceptions of
streamrec.client.errors; calls that fail for want of a server, or because it is down or full, are retried where
sending them again is safe (streamrec.client.retry). Importing this package does not import FastAPI."""

from streamrec.client.aio import AsyncClient
from streamrec.client.calls import ENDPOINTS
from streamrec.client.errors import (
    ApiError,
    ClientError,
    InvalidRequest,
    NotFoundError,
    RequestTimeout,
    ServerError,
    ServerUnreachable,
    TransportError,
    Unauthorized,
    Unavailable,
)
from streamrec.client.retry import NO_RETRY, Retry
from streamrec.client.sync import Client
from streamrec.experiments.config import ExperimentConfig, VariantConfig
from streamrec.serving.schemas import (
    ClockSet,
    ErrorBody,
    EventsAccepted,
    ExperimentList,
    Health,
    HomePage,
    Models,
    Problem,
    Promoted,
    Ready,
    Recommendations,
    RegistryVersion,
    Rejected,
    Row,
    ServedInfo,
    Similar,
    Title,
)

__all__ = [
    "ENDPOINTS", "NO_RETRY", "ApiError", "AsyncClient", "Client", "ClientError", "ClockSet", "ErrorBody",
    "EventsAccepted", "ExperimentConfig", "ExperimentList", "Health", "HomePage", "InvalidRequest", "Models",
    "NotFoundError", "Problem", "Promoted", "Ready", "Recommendations", "RegistryVersion", "Rejected", "RequestTimeout",
    "Retry", "Row", "ServedInfo", "ServerError", "ServerUnreachable", "Similar", "Title", "TransportError",
    "Unauthorized", "Unavailable", "VariantConfig",
]
