"""The asyncio client: the blocking client's methods, awaited (one per endpoint of the serving API, typed answers,
retries and timeouts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx2

from streamrec.client import calls
from streamrec.client.base import DEFAULT_TIMEOUT_S, Settings, answer, failed, refused, retrying
from streamrec.client.calls import Call
from streamrec.client.errors import ServerUnreachable
from streamrec.client.retry import NO_RETRY, Retry
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


class AsyncClient:
    """An asyncio client of a running `streamrec serve`, over one pool of kept-alive connections.

    Args:
        base_url: the server, e.g. http://127.0.0.1:8000.
        api_key: one of the server's serving.api_keys (needed by post_events and the admin calls).
        timeout: seconds for connecting, sending and each read, or an httpx2.Timeout.
        retry: the retry policy (default `Retry()`; `NO_RETRY` for none).
        headers: extra headers on every request.
        transport: an httpx2 transport instead of the network (e.g. `httpx2.ASGITransport(app)` to call an app
            in this process, or a mock in a test).

    Raises (from every call):
        ApiError: the server refused (InvalidRequest, Unauthorized, NotFoundError) or failed (Unavailable,
            ServerError); its message, problems and request id are on the exception.
        TransportError: no answer came (ServerUnreachable, RequestTimeout).

    Use it as an async context manager, or await `aclose()`.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout: float | httpx2.Timeout = DEFAULT_TIMEOUT_S, retry: Retry | None = None,
                 headers: dict[str, str] | None = None, transport: httpx2.AsyncBaseTransport | None = None):
        self.settings = Settings(base_url, api_key, timeout, retry, headers)
        self._http = httpx2.AsyncClient(base_url=self.settings.base_url, timeout=self.settings.timeout,
                                   headers=self.settings.headers, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call[T], retry: Retry | None = None) -> T:
        retry, safe, attempt = retry or self.settings.retry, call.endpoint.retry_safe, 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(**self.settings.request(call))
            except httpx2.TransportError as exc:
                pause = retry.after_error(attempt, safe, exc)
                if pause is None:
                    raise failed(call, exc, attempt) from exc
                why = type(exc).__name__
            else:
                if response.is_success:
                    return answer(call, response)
                pause = retry.after_status(attempt, safe, response)
                if pause is None:
                    raise refused(call, response, self.settings.api_key is not None)
                why = f"status {response.status_code}"
            retrying(call, attempt, pause, why)
            await asyncio.sleep(pause)

    # --- recommendations ---------------------------------------------------------------------------------------------
    async def recommendations(self, user_id: str, *, k: int = 10, region: str | None = None, device: str | None = None,
                        exclude: Sequence[str] = (), explain: bool = False,
                        request_id: str | None = None) -> Recommendations:
        """One ranked list for a user (GET /v1/users/{user_id}/recommendations).

        Args:
            user_id: the profile (an unknown one gets cold-start titles).
            k: titles in the list (at most the server's serving.max_k).
            region: the request's region (default: the profile's).
            device: the device, if the model uses it.
            exclude: title ids not to show.
            explain: ask for an explanation of each title.
            request_id: sent as X-Request-ID (the server makes one otherwise); it ties later impressions and plays
                to this list.
        """
        return await self._send(calls.recommendations(user_id, k, region, device, exclude, explain, request_id))

    async def home(self, user_id: str, *, region: str | None = None, device: str | None = None,
             request_id: str | None = None) -> HomePage:
        """A whole homepage: rows in an order chosen for the user, no title in two rows (GET /v1/users/{id}/home)."""
        return await self._send(calls.home(user_id, region, device, request_id))

    async def similar(self, item_id: str, *, k: int = 10, region: str | None = None,
                request_id: str | None = None) -> Similar:
        """Titles like one title (GET /v1/titles/{item_id}/similar); an unknown title raises NotFoundError."""
        return await self._send(calls.similar(item_id, k, region, request_id))

    # --- events ------------------------------------------------------------------------------------------------------
    async def post_events(self, events: Sequence[Mapping[str, Any]], *,
                          request_id: str | None = None) -> EventsAccepted:
        """Send canonical events (event_id, user_id, item_id, type, ts, ...; datetimes are sent as ISO 8601, naive
        ones as UTC) in one batch (POST /v1/events, at most the server's serving.max_batch). Invalid events are
        listed in `rejected`; a batch with no valid event raises InvalidRequest. Needs the API key. Retried like a
        read: the server drops an event_id it has seen."""
        return await self._send(calls.post_events(events, request_id))

    # --- models ------------------------------------------------------------------------------------------------------
    async def models(self) -> Models:
        """The served model, why the last load failed (if it did), and the registry's versions (GET /v1/models)."""
        return await self._send(calls.models())

    async def reload(self, model: str | None = None) -> Models:
        """Load a model (a registry alias or version, or a saved model folder; default the configured one) and swap
        it in (POST /v1/admin/reload). A model that cannot load raises InvalidRequest; the old one stays."""
        return await self._send(calls.reload(model))

    async def promote(self, version: str | int, *, reload: bool = True) -> Promoted:
        """Make a registry version champion, and serve it unless reload=False (POST /v1/admin/promote). Not sent
        again after a 5xx or a timeout: check `models()` before promoting again."""
        return await self._send(calls.promote(version, reload))

    async def set_clock(self, at: datetime) -> ClockSet:
        """Move the request clock of a server run with `--clock data` (POST /v1/admin/clock); a wall-clock server
        refuses (InvalidRequest)."""
        return await self._send(calls.set_clock(at))

    # --- experiments -------------------------------------------------------------------------------------------------
    async def experiments(self) -> ExperimentList:
        """The experiments being served (GET /v1/experiments)."""
        return await self._send(calls.experiments())

    async def set_experiments(self, definitions: Sequence[ExperimentConfig | Mapping[str, Any]]) -> ExperimentList:
        """Replace every experiment this server process serves (PUT /v1/admin/experiments); the settings file stays
        the source of truth across restarts."""
        return await self._send(calls.set_experiments(definitions))

    # --- health ------------------------------------------------------------------------------------------------------
    async def health(self) -> Health:
        """The process answers (GET /healthz)."""
        return await self._send(calls.health())

    async def ready(self) -> Ready:
        """ready, or degraded with the reasons named (GET /readyz)."""
        return await self._send(calls.ready())

    async def metrics(self) -> str:
        """The Prometheus metrics, as text (GET /metrics)."""
        return await self._send(calls.metrics())

    async def wait_until_healthy(self, timeout_s: float = 30.0, interval_s: float = 0.2) -> Health:
        """Poll /healthz until the server answers (a server still starting refuses connections).

        Raises:
            ServerUnreachable: no answer within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return await self._send(calls.health(), NO_RETRY)
            except ServerUnreachable:
                if time.monotonic() + interval_s > deadline:
                    raise
                await asyncio.sleep(interval_s)
