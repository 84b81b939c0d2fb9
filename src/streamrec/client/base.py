"""What the sync and async clients share: settings (base URL, API key, timeout, retry policy), the request for a
call, reading its answer, and the exceptions for calls that failed."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2

import streamrec
from streamrec.client.calls import Call
from streamrec.client.errors import (
    ApiError,
    ClientError,
    RequestTimeout,
    ServerUnreachable,
    TransportError,
    Unauthorized,
    error_from_response,
)
from streamrec.client.retry import Retry
from streamrec.errors import ConfigError
from streamrec.logs import get_logger

T = TypeVar("T")
log = get_logger(__name__)
DEFAULT_TIMEOUT_S = 10.0


class Settings:
    """The options both clients take.

    Args:
        base_url: the server, e.g. http://127.0.0.1:8000 (a path prefix, for a server behind a proxy, is kept).
        api_key: one of the server's serving.api_keys, sent as X-API-Key on the calls that need it (POST /v1/events
            and /v1/admin/*); never on the others.
        timeout: seconds to wait for connecting, sending and each read (a float), or an httpx2.Timeout.
        retry: the retry policy (default `Retry()`: 4 tries, backoff from 0.2 s; `NO_RETRY` for none).
        headers: extra headers on every request.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float | httpx2.Timeout = DEFAULT_TIMEOUT_S,
                 retry: Retry | None = None, headers: dict[str, str] | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"streamrec client: base_url '{base_url}' is not an http(s)://host[:port] address")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.timeout = timeout if isinstance(timeout, httpx2.Timeout) else httpx2.Timeout(timeout)
        self.retry = retry or Retry()
        self.headers = {"User-Agent": f"streamrec-client/{streamrec.__version__}", "Accept": "application/json",
                        **(headers or {})}

    def request(self, call: Call[Any]) -> dict[str, Any]:
        """Keyword arguments of httpx2's `request` for `call`."""
        headers = dict(call.headers)
        if call.endpoint.admin and self.api_key:
            headers["X-API-Key"] = self.api_key
        return {"method": call.endpoint.method, "url": call.url, "params": call.params or None,
                "content": call.body, "headers": headers}


def answer(call: Call[T], response: httpx2.Response) -> T:
    """The typed answer of a successful response."""
    try:
        return call.read(response)
    except ValueError as exc:  # not JSON, or not the shape of the response model: a server of another version?
        raise ClientError(f"{call.label}: the answer ({response.status_code}, {len(response.content)} bytes) is not "
                          f"what this client expects: {str(exc)[:300]}") from exc


def refused(call: Call[Any], response: httpx2.Response, has_key: bool) -> ApiError:
    error = error_from_response(call.label, response)
    if isinstance(error, Unauthorized) and call.endpoint.admin and not has_key:
        error.args = (f"{error.args[0]} (this client was made without an api_key)",)
    return error


def failed(call: Call[Any], error: httpx2.TransportError, attempts: int) -> TransportError:
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if isinstance(error, httpx2.TimeoutException) and not isinstance(error, httpx2.ConnectTimeout):
        return RequestTimeout(call.label, reason, attempts)
    if isinstance(error, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.UnsupportedProtocol):
        return ServerUnreachable(call.label, reason, attempts)
    return TransportError(call.label, reason, attempts)


def retrying(call: Call[Any], attempt: int, pause: float, why: str) -> None:
    log.warning("client.retry", call=call.label, attempt=attempt, pause_s=round(pause, 3), why=why)
