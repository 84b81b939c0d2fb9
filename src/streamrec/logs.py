"""structlog set-up. Library code only calls `get_logger`; only cli/ and serving/ call `configure_logging`.

Every line goes through the same processors, console or JSON: the id of the request being served (REQUEST_ID, set by
serving's middleware) is stamped on it, user ids are replaced by a salted hash (so one user's lines still group
together, but the log names nobody), and secrets are redacted: values of keys named like a key, password, secret or
token, the password of any URL (`redis://:pw@host` → `redis://:***@host`) and the values given to `never_log` (the
API keys), wherever they appear in a value."""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog

get_logger = structlog.get_logger

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
SALT_VARIABLE = "STREAMREC_LOG_SALT"
DEFAULT_SALT = "streamrec-log-salt-v1"
REDACTED = "***"

_USER_KEYS = frozenset({"user", "user_id", "user_ids"})
_SECRET_KEY = re.compile(r"api[_-]?key|passw(or)?d|secret|token|authori[sz]ation|credential|cookie", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^@\s/]+)(?=@)", re.IGNORECASE)
_USER_IN_PATH = re.compile(r"(/users/)([^/?#\s]+)")
_KNOWN_SECRETS: set[str] = set()


def never_log(*secrets: str) -> None:
    """Mask these values (API keys, passwords the process holds) wherever they appear in a logged value, even inside
    free text. Values under 4 characters are left alone: masking them would garble every line."""
    _KNOWN_SECRETS.update(s for s in secrets if s and len(s) >= 4)


def add_request_id(_logger: Any, _method: str, event: dict) -> dict:
    """The id of the request being served on every line logged while it is served (an explicit one wins)."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


class HashUserIds:
    """Values of user-id keys (user, user_id, user_ids) and the user segment of paths become `u:` + 16 hex digits of
    a salted sha256: stable within one salt, so a user's lines can still be followed, but not reversible by a lookup."""

    def __init__(self, salt: str) -> None:
        self.salt = salt.encode()

    def hashed(self, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, list | tuple | set | frozenset):
            return [self.hashed(v) for v in value]
        return "u:" + hashlib.sha256(self.salt + str(value).encode()).hexdigest()[:16]

    def _walk(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: self.hashed(v) if k in _USER_KEYS else self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        if isinstance(value, str) and "/users/" in value:
            return _USER_IN_PATH.sub(lambda m: m.group(1) + self.hashed(m.group(2)), value)
        return value

    def __call__(self, _logger: Any, _method: str, event: dict) -> dict:
        return self._walk(event)


def redacted(value: Any) -> Any:
    """`value` with secret-named keys masked and URL passwords cut out, through nested mappings and lists."""
    if isinstance(value, Mapping):
        return {k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v is not None else redacted(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    if isinstance(value, str):
        if "://" in value:
            value = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, value)
        for secret in _KNOWN_SECRETS:
            if secret in value:
                value = value.replace(secret, REDACTED)
    return value


def redact_secrets(_logger: Any, _method: str, event: dict) -> dict:
    return redacted(event)


def processors(user_salt: str | None = None) -> list[structlog.typing.Processor]:
    """The processors before the renderer (exceptions are formatted first, so their text is redacted too)."""
    salt = user_salt if user_salt is not None else os.environ.get(SALT_VARIABLE) or DEFAULT_SALT
    return [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        HashUserIds(salt),
        redact_secrets,
    ]


def configure_logging(level: str = "info", json_logs: bool = False, user_salt: str | None = None) -> None:
    """Key-value logs to stderr: colourless console lines for people, JSON lines for services. User ids are hashed
    with `user_salt` (default: the STREAMREC_LOG_SALT environment variable, else a fixed salt)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors(user_salt), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # sys.stderr is looked up per logger, not bound once: test runners swap (and close) it.
        logger_factory=lambda *args: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def configure_from_settings(config: Any) -> None:
    """`configure_logging` from a settings' `logging` section: level, json, and user_salt (a secret; when unset the
    STREAMREC_LOG_SALT environment variable, else the fixed salt, as before)."""
    salt = config.user_salt
    configure_logging(config.level, config.json_logs, salt.get_secret_value() if salt is not None else None)
