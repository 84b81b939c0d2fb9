"""How simulated viewers reach the service: one small Protocol, two transports.

- `HttpTransport`: a running `streamrec serve` over HTTP (one kept-alive connection, the standard library's client),
  events posted with an API key. A remote server's clock is its own: run it with `--clock data` so it starts just
  after the world's newest event; the simulator cannot move it (see `HttpTransport.set_time`).
- `InProcessTransport`: the same FastAPI app over a ServingState in this process (ASGI calls on its own event
  loop), so every request takes the whole request path: routes, experiment assignment, validation, the event bus
  and the worker beside the API. Its clock is replaced by a `SimulatedClock` that the simulator moves, so each
  simulated day is the service's day too.

Both send the simulator's own X-Request-ID (the service echoes a well-formed one), which keeps runs reproducible."""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit

from streamrec.errors import BackendError, ConfigError
from streamrec.serving.world import Clock


@dataclass(frozen=True)
class Served:
    """One answered request: the list and what the response said about who served it."""

    request_id: str
    items: list[str]
    model_version: str | None = None
    experiment: str | None = None
    variant: str | None = None
    fallback: str | None = None


@dataclass
class Posted:
    """The service's answer to posted events, summed over batches."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


class Transport(Protocol):
    """What the simulator needs from the service."""

    def set_time(self, at: datetime) -> None:
        """Move the service's clock to `at` (naive UTC), where the transport can."""
        ...

    def recommend(self, user_id: str, k: int, request_id: str) -> Served:
        """The user's list of k titles, requested under `request_id`."""
        ...

    def post_events(self, events: Sequence[Mapping[str, Any]]) -> Posted:
        """Send events (canonical JSON objects) to POST /v1/events, in batches the service accepts."""
        ...

    def close(self) -> None: ...


def served_from(body: Mapping[str, Any]) -> Served:
    """A Served from a recommendations body (experiment/variant/model_version as the response gives them)."""
    return Served(str(body["request_id"]), [str(t["item_id"]) for t in body.get("items", [])],
                  body.get("model_version"), body.get("experiment"), body.get("variant"), body.get("fallback"))


def _add(total: Posted, status: int, body: Mapping[str, Any], offset: int) -> None:
    if status == 202:
        total.accepted += int(body.get("accepted", 0))
        total.duplicates += int(body.get("duplicates", 0))
        total.rejected += [{**r, "index": int(r["index"]) + offset} for r in body.get("rejected", [])]
    elif status == 422:  # every event of the batch was invalid
        total.rejected.append({"index": offset, "field": "batch", "reason": body.get("error", "invalid"),
                               "detail": body.get("message", "")})
    else:
        raise BackendError(f"POST /v1/events: status {status}: {str(body)[:300]}")


class SimulatedClock(Clock):
    """A service clock that stands where the simulator puts it (naive UTC)."""

    def __init__(self, at: datetime):
        super().__init__(at)
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class InProcessTransport:
    """The serving app over `state`, called in this process: each request is one ASGI call on this transport's own
    event loop (no server, no thread hand-offs), through the whole app: middleware, routes, experiment assignment,
    validation, the bus and the worker beside the API. The state's clock becomes a SimulatedClock; when its
    settings hold no API key, one is made for this transport (kept in the state's settings, which the routes read)."""

    def __init__(self, state, api_key: str | None = None):
        import asyncio

        from pydantic import SecretStr

        from streamrec.serving import create_app

        keys = [k.get_secret_value() for k in state.settings.serving.api_keys if k.get_secret_value()]
        if api_key is None and keys:
            api_key = keys[0]
        if api_key is None or api_key not in keys:
            api_key = api_key or secrets.token_hex(16)
            serving = state.settings.serving.model_copy(update={"api_keys": [*state.settings.serving.api_keys,
                                                                             SecretStr(api_key)]})
            state.settings = state.settings.model_copy(update={"serving": serving})
        self.state, self.key = state, api_key
        self.clock = SimulatedClock(state.world.clock())
        state.world.clock = self.clock
        self.max_batch = state.settings.serving.max_batch
        self.app = create_app(state.settings, state)
        self.loop = asyncio.new_event_loop()

    def set_time(self, at: datetime) -> None:
        self.clock.at = at

    def call(self, method: str, path: str, query: str = "", body: Any = None,
             headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """One request through the app: (status, decoded JSON body)."""
        data = json.dumps(body).encode() if body is not None else b""
        head = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        if body is not None:
            head += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": unquote(path), "raw_path": path.encode(), "query_string": query.encode(),
                 "root_path": "", "headers": head, "client": ("127.0.0.1", 1), "server": ("simulation", 80)}
        sent = [False]
        status, chunks = [0], []

        async def receive():
            if sent[0]:
                return {"type": "http.disconnect"}
            sent[0] = True
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        self.loop.run_until_complete(self.app(scope, receive, send))
        payload = b"".join(chunks)
        return status[0], json.loads(payload) if payload else {}

    def recommend(self, user_id: str, k: int, request_id: str) -> Served:
        path = f"/v1/users/{quote(user_id, safe='')}/recommendations"
        status, body = self.call("GET", path, urlencode({"k": k}), headers={"X-Request-ID": request_id})
        if status != 200:
            raise BackendError(f"GET {path}: status {status}: {str(body)[:300]}")
        return served_from(body)

    def post_events(self, events: Sequence[Mapping[str, Any]]) -> Posted:
        total = Posted()
        for lo in range(0, len(events), self.max_batch):
            status, body = self.call("POST", "/v1/events", body={"events": list(events[lo:lo + self.max_batch])},
                                     headers={"X-API-Key": self.key})
            _add(total, status, body, lo)
        return total

    def close(self) -> None:
        self.state.close()  # what the exposure and served-lists logs buffer is written, as at a server's shutdown
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()


class HttpTransport:
    """A running server at `url` (http://host:port), over one kept-alive connection."""

    def __init__(self, url: str, api_key: str, batch: int = 500, timeout_s: float = 30.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--url: '{url}' is not an http(s)://host[:port] address")
        if not api_key:
            raise ConfigError("posting events needs an API key (--api-key, or serving.api_keys in the settings)")
        self.url, self.key, self.batch = url, api_key, batch
        self.base = parts.path.rstrip("/")
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = kind(parts.hostname, parts.port, timeout=timeout_s)
        self._clock_refused = False

    def set_time(self, at: datetime) -> None:
        """Move the server's clock (POST /v1/admin/clock; a server run with serving.clock = "data"), so its day is
        the simulation's. A wall-clock server refuses: its clock stays its own, and events stamped past it count as
        watched at once (exclusions) but join the ranker's history only when its clock reaches them."""
        if self._clock_refused:
            return
        status, body = self._call("POST", "/v1/admin/clock", {"at": at.isoformat()}, {"X-API-Key": self.key})
        if status == 422:
            self._clock_refused = True
        elif status != 200:
            raise BackendError(f"POST {self.url}/v1/admin/clock: status {status}: {str(body)[:300]}")

    def _call(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None):
        data = json.dumps(body).encode() if body is not None else None
        head = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            head["Content-Type"] = "application/json"
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more, on a new one
            try:
                self.conn.request(method, self.base + path, body=data, headers=head)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, json.loads(payload) if payload else {}
            except (http.client.HTTPException, ConnectionError) as exc:
                self.conn.close()
                if attempt:
                    raise BackendError(f"{method} {self.url}{path}: {exc}") from exc
            except OSError as exc:
                self.conn.close()
                raise BackendError(f"{method} {self.url}{path}: {exc}") from exc
        raise AssertionError("unreachable")

    def recommend(self, user_id: str, k: int, request_id: str) -> Served:
        path = f"/v1/users/{quote(user_id, safe='')}/recommendations"
        status, body = self._call("GET", f"{path}?{urlencode({'k': k})}", headers={"X-Request-ID": request_id})
        if status != 200:
            raise BackendError(f"GET {self.url}{path}: status {status}: {str(body)[:300]}")
        return served_from(body)

    def post_events(self, events: Sequence[Mapping[str, Any]]) -> Posted:
        total = Posted()
        for lo in range(0, len(events), self.batch):
            status, body = self._call("POST", "/v1/events", {"events": list(events[lo:lo + self.batch])},
                                      {"X-API-Key": self.key})
            _add(total, status, body, lo)
        return total

    def close(self) -> None:
        self.conn.close()
