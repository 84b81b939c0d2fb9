"""What the client raises: the server's error body (serving/errors.py) as an exception per kind of refusal, and the
failures where no answer came (connection refused, timed out), each naming the call."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from streamrec.errors import BackendError, StreamrecError
from streamrec.serving.schemas import ErrorBody, Problem

if TYPE_CHECKING:
    import httpx2


class ClientError(StreamrecError):
    """Base of every error the streamrec client raises."""


class TransportError(ClientError, BackendError):
    """No HTTP answer came (after the retries the call was allowed)."""

    def __init__(self, call: str, reason: str, attempts: int):
        super().__init__(f"{call}: {reason} (after {attempts} attempt{'s' if attempts != 1 else ''})")
        self.call, self.reason, self.attempts = call, reason, attempts


class ServerUnreachable(TransportError):
    """The server could not be reached: connection refused or reset before the request was sent, DNS, TLS."""


class RequestTimeout(TransportError):
    """The server did not answer within the client's timeout."""


class ApiError(ClientError):
    """The server answered with an error: its status, error code, message, the problems (where and what) and the
    request id under which the server logged it."""

    def __init__(self, call: str, status: int, body: ErrorBody | None, text: str = ""):
        self.call, self.status, self.body = call, status, body
        self.error = body.error if body else "http_error"
        self.message = body.message if body else (text.strip()[:300] or f"HTTP {status}")
        self.problems: list[Problem] = list(body.problems) if body else []
        self.request_id = body.request_id if body else None
        said = [f"{p.where}: {p.what}" for p in self.problems[:3] if p.what not in self.message]
        where = f" [{'; '.join(said)}]" if said else ""
        rid = f" (request_id {self.request_id})" if self.request_id else ""
        super().__init__(f"{call}: {status} {self.error}: {self.message}{where}{rid}")


class InvalidRequest(ApiError):
    """The request was refused as it stands (400, 405, 409, 413, 415, 422): `problems` say where and what."""


class Unauthorized(ApiError):
    """A missing or wrong API key (401, 403): admin calls and POST /v1/events need one of serving.api_keys."""


class NotFoundError(ApiError):
    """The user, title, model or route does not exist (404)."""


class Unavailable(ApiError, BackendError):
    """The server or a backend behind it is down or full (502, 503, 504); nothing was accepted. Retried for calls
    that are safe to repeat; raised once the retries are spent."""


class ServerError(ApiError):
    """The server failed (500 and any other 5xx); its log has the trace under `request_id`."""


def _kind(status: int) -> type[ApiError]:
    if status in (401, 403):
        return Unauthorized
    if status == 404:
        return NotFoundError
    if status in (502, 503, 504):
        return Unavailable
    if status >= 500:
        return ServerError
    return InvalidRequest


def error_from_response(call: str, response: httpx2.Response) -> ApiError:
    """The exception for an error response: the server's JSON error body when it sent one (a proxy's HTML page, or
    any other body, becomes the message)."""
    body = None
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValueError:  # pydantic's ValidationError is a ValueError; so is a body that is not JSON
        pass
    if body is None:
        try:  # a JSON body of another shape (FastAPI's default {"detail": ...}) still says something
            data = json.loads(response.content)
            text = str(data.get("detail", data)) if isinstance(data, dict) else str(data)
        except ValueError:
            text = response.text
        return _kind(response.status_code)(call, response.status_code, None, text)
    return _kind(response.status_code)(call, response.status_code, body)
