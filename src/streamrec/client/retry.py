"""When the client sends a call again, and how long it waits first (exponential backoff with jitter, at least what
the server's Retry-After asks, at most `max_backoff_s`).

A request that never reached the server (connection refused, connect timeout, no free connection) is sent again
whatever the call. A request the server may have acted on (a 502/503/504 answer, a read timeout, a connection lost
mid-answer) is sent again only when repeating it is safe: reads, absolute writes (set the clock, replace the
experiments, load a model), and events, which carry an event_id that ingestion deduplicates."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx2

NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)  # the server saw nothing
MAYBE_SEEN = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)


@dataclass(frozen=True)
class Retry:
    """The retry policy of a client.

    Args:
        attempts: tries in all, the first included (1: never retry).
        backoff_s: the pause before the second try; it doubles before each later one.
        max_backoff_s: the longest pause, a Retry-After header included.
        statuses: answers worth another try (the server or a backend behind it is down or full).
        jitter: draw each pause from [pause/2, pause] so that many clients do not retry in step.
    """

    attempts: int = 4
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({502, 503, 504}))
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < 0:
            from streamrec.errors import ConfigError

            raise ConfigError(f"client retry: attempts must be >= 1 and pauses >= 0 (got attempts={self.attempts}, "
                              f"backoff_s={self.backoff_s}, max_backoff_s={self.max_backoff_s})")

    def pause(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        wait = self.backoff_s * 2.0 ** (attempt - 1)
        if self.jitter:
            wait *= random.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff_s)

    def after_error(self, attempt: int, safe: bool, error: Exception) -> float | None:
        """The pause before the next try after a transport error, or None: give up and raise."""
        if attempt >= self.attempts:
            return None
        if isinstance(error, NOT_SENT) or (safe and isinstance(error, MAYBE_SEEN)):
            return self.pause(attempt)
        return None

    def after_status(self, attempt: int, safe: bool, response: httpx2.Response) -> float | None:
        """The pause before the next try after an error answer, or None: give up and raise."""
        if attempt >= self.attempts or not safe or response.status_code not in self.statuses:
            return None
        return self.pause(attempt, retry_after(response))


NO_RETRY = Retry(attempts=1)


def retry_after(response: httpx2.Response) -> float | None:
    """The Retry-After header in seconds (the HTTP-date form is not used by streamrec and is ignored)."""
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
